package queue

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Memory is a Queue held in this process: for development and a single
// instance only, since what it holds is lost on restart (operations#the-memory-queue).
type Memory struct {
	mu     sync.Mutex
	seq    uint64
	calls  map[string]*memCall
	leases map[string]memLease
	dead   map[string][]DeadEntry
	// settled holds the updates Settle declared not stored (call, NUL,
	// update ID). Memory never leaves an append's outcome unknown, so only
	// a caller that settles without need adds to it.
	settled map[string]bool
}

type memCall struct {
	entries []Entry
	due     time.Time
	attempt int
}

type memLease struct {
	owner string
	until time.Time
}

// NewMemory returns an empty in-memory queue.
func NewMemory() *Memory {
	return &Memory{
		calls:   make(map[string]*memCall),
		leases:  make(map[string]memLease),
		dead:    make(map[string][]DeadEntry),
		settled: make(map[string]bool),
	}
}

func (m *Memory) Append(_ context.Context, e *Entry, ifPending bool, due time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.append(e, AppendOptions{IfPending: ifPending, Due: due})
}

func (m *Memory) AppendAll(_ context.Context, entries []*Entry, opts AppendOptions) []AppendResult {
	m.mu.Lock()
	defer m.mu.Unlock()
	results := make([]AppendResult, len(entries))
	for i, e := range entries {
		results[i].Appended, results[i].Err = m.append(e, opts)
	}
	return results
}

// append is one append; the caller holds m.mu.
func (m *Memory) append(e *Entry, opts AppendOptions) (bool, error) {
	if id, ok := m.stored(e.CallLogID, e.UpdateID); ok {
		e.ID = id
		return true, nil
	}
	if m.settled[e.CallLogID+"\x00"+e.UpdateID] {
		return false, errSettled
	}
	c := m.calls[e.CallLogID]
	waiting := 0
	if c != nil {
		waiting = len(c.entries)
	}
	if opts.IfPending && waiting == 0 {
		return false, nil
	}
	if opts.MaxPending > 0 && waiting >= opts.MaxPending {
		return false, ErrTooManyPending
	}
	if c == nil {
		c = &memCall{due: opts.Due}
		m.calls[e.CallLogID] = c
	}
	m.seq++
	// Zero-padded so that IDs also sort as strings.
	e.ID = leftPad(strconv.FormatUint(m.seq, 10))
	c.entries = append(c.entries, *e)
	return true, nil
}

// stored finds an update among a call's entries, waiting or dead; the
// caller holds m.mu.
func (m *Memory) stored(callLogID, updateID string) (id string, ok bool) {
	if updateID == "" {
		return "", false
	}
	if c := m.calls[callLogID]; c != nil {
		for _, e := range c.entries {
			if e.UpdateID == updateID {
				return e.ID, true
			}
		}
	}
	for _, d := range m.dead[callLogID] {
		if d.UpdateID == updateID {
			return d.ID, true
		}
	}
	return "", false
}

// errSettled is the answer to an append that Settle declared not stored.
var errSettled = errors.New("queue: the update was declared not stored")

// Settle answers at once: an append to memory always has a known outcome.
func (m *Memory) Settle(_ context.Context, callLogID, updateID string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.stored(callLogID, updateID)
	if !ok && updateID != "" {
		m.settled[callLogID+"\x00"+updateID] = true
	}
	return ok, nil
}

func (m *Memory) Wake(_ context.Context, callLogID string, now time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls[callLogID]
	if c == nil {
		return false, nil
	}
	c.due, c.attempt = now, 0
	return true, nil
}

func (m *Memory) WakeAll(ctx context.Context, callLogIDs []string, now time.Time) ([]bool, error) {
	pending := make([]bool, len(callLogIDs))
	for i, id := range callLogIDs {
		pending[i], _ = m.Wake(ctx, id, now)
	}
	return pending, nil
}

func (m *Memory) Due(_ context.Context, now time.Time, limit int) ([]Due, error) {
	m.mu.Lock()
	type dueAt struct {
		Due
		at time.Time
	}
	var found []dueAt
	for id, c := range m.calls {
		if !c.due.After(now) {
			found = append(found, dueAt{Due{CallLogID: id, Attempt: c.attempt}, c.due})
		}
	}
	m.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].at.Before(found[j].at) })
	if len(found) > limit {
		found = found[:limit]
	}
	out := make([]Due, len(found))
	for i := range found {
		out[i] = found[i].Due
	}
	return out, nil
}

func (m *Memory) Schedule(_ context.Context, callLogID string, at time.Time, attempt int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.calls[callLogID]; c != nil {
		c.due, c.attempt = at, attempt
	}
	return nil
}

func (m *Memory) Claim(_ context.Context, callLogID, owner string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if l, ok := m.leases[callLogID]; ok && l.owner != owner && now.Before(l.until) {
		return false, nil
	}
	m.leases[callLogID] = memLease{owner: owner, until: now.Add(ttl)}
	return true, nil
}

func (m *Memory) Release(_ context.Context, callLogID, owner string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.leases[callLogID]; ok && l.owner == owner {
		delete(m.leases, callLogID)
	}
	return nil
}

func (m *Memory) Head(_ context.Context, callLogID string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls[callLogID]
	if c == nil || len(c.entries) == 0 {
		return Entry{}, false, nil
	}
	return c.entries[0], true, nil
}

// popHead removes entry id from the head of a call's list; the caller holds m.mu.
func (m *Memory) popHead(callLogID, owner, id string) (Entry, error) {
	l, ok := m.leases[callLogID]
	c := m.calls[callLogID]
	if !ok || l.owner != owner || time.Now().After(l.until) || c == nil || len(c.entries) == 0 || c.entries[0].ID != id {
		return Entry{}, ErrNotLeaseholder
	}
	e := c.entries[0]
	c.entries = c.entries[1:]
	if len(c.entries) == 0 {
		delete(m.calls, callLogID)
	}
	return e, nil
}

func (m *Memory) Ack(_ context.Context, callLogID, owner, id string) (Entry, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.popHead(callLogID, owner, id); err != nil {
		return Entry{}, false, err
	}
	if c := m.calls[callLogID]; c != nil && len(c.entries) > 0 {
		return c.entries[0], true, nil
	}
	return Entry{}, false, nil
}

func (m *Memory) Bury(_ context.Context, callLogID, owner, id, reason string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	e, err := m.popHead(callLogID, owner, id)
	if err != nil {
		return err
	}
	m.dead[callLogID] = append(m.dead[callLogID], DeadEntry{Entry: e, Reason: reason, DeadAt: at})
	return nil
}

func (m *Memory) Pending(_ context.Context, callLogID string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.calls[callLogID]
	if c == nil {
		return nil, nil
	}
	return append([]Entry(nil), c.entries...), nil
}

func (m *Memory) Dead(_ context.Context, callLogID string) ([]DeadEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]DeadEntry(nil), m.dead[callLogID]...), nil
}

func (m *Memory) Requeue(_ context.Context, callLogID string, due time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dead := m.dead[callLogID]
	if len(dead) == 0 {
		return 0, nil
	}
	delete(m.dead, callLogID)
	c := m.calls[callLogID]
	if c == nil {
		c = &memCall{}
		m.calls[callLogID] = c
	}
	back := make([]Entry, 0, len(dead)+len(c.entries))
	for _, d := range dead {
		back = append(back, d.Entry)
	}
	c.entries = append(back, c.entries...)
	c.due, c.attempt = due, 0
	return len(dead), nil
}

func (m *Memory) Stats(context.Context) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var s Stats
	for _, c := range m.calls {
		s.PendingCalls++
		s.PendingEntries += len(c.entries)
		if at := c.entries[0].AcceptedAt; s.OldestPending.IsZero() || at.Before(s.OldestPending) {
			s.OldestPending = at
		}
	}
	for _, d := range m.dead {
		s.DeadCalls++
		s.DeadEntries += len(d)
	}
	return s, nil
}

func leftPad(s string) string {
	const width = 20
	if len(s) >= width {
		return s
	}
	b := make([]byte, width)
	n := width - len(s)
	for i := 0; i < n; i++ {
		b[i] = '0'
	}
	copy(b[n:], s)
	return string(b)
}

var _ Queue = (*Memory)(nil)
