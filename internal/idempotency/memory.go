package idempotency

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Memory store made with a limit of zero.
const DefaultMaxKeys = 100000

// Memory is the store of one instance, bounded to a number of keys: past
// it, the key first seen longest ago goes first, whether or not its window
// has passed.
type Memory struct {
	mu      sync.Mutex
	maxKeys int
	keys    map[Key]*list.Element // of *memoryEntry
	order   *list.List            // oldest first
	// Now is the clock; tests move it.
	Now func() time.Time
}

type memoryEntry struct {
	key       Key
	rec       Record
	saved     bool
	expires   time.Time // of rec
	holder    string
	holdUntil time.Time
}

// NewMemory returns an empty store of at most maxKeys keys (DefaultMaxKeys
// when maxKeys is not positive).
func NewMemory(maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{maxKeys: maxKeys, keys: make(map[Key]*list.Element), order: list.New()}
}

func (m *Memory) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// live returns k's entry with what has expired taken out, or nil.
func (m *Memory) live(k Key, now time.Time) *memoryEntry {
	el, ok := m.keys[k]
	if !ok {
		return nil
	}
	e := el.Value.(*memoryEntry)
	if e.saved && !now.Before(e.expires) {
		e.saved, e.rec = false, Record{}
	}
	if e.holder != "" && !now.Before(e.holdUntil) {
		e.holder = ""
	}
	if !e.saved && e.holder == "" {
		m.order.Remove(el)
		delete(m.keys, k)
		return nil
	}
	return e
}

// insert adds an entry for k as the newest, evicting the oldest past the
// bound.
func (m *Memory) insert(k Key) *memoryEntry {
	e := &memoryEntry{key: k}
	m.keys[k] = m.order.PushBack(e)
	for m.order.Len() > m.maxKeys {
		oldest := m.order.Front()
		m.order.Remove(oldest)
		delete(m.keys, oldest.Value.(*memoryEntry).key)
	}
	return e
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, k Key, fingerprint, token string, hold time.Duration) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e := m.live(k, now)
	if e != nil && e.saved {
		switch {
		case e.rec.Fingerprint != fingerprint:
			return Claim{State: Reused}, nil
		case e.rec.Final:
			return Claim{State: Done, Outcome: e.rec.Outcome}, nil
		}
	}
	if e != nil && e.holder != "" && e.holder != token {
		return Claim{State: InUse}, nil
	}
	if e == nil {
		e = m.insert(k)
	}
	e.holder, e.holdUntil = token, now.Add(hold)
	if e.saved {
		return Claim{State: Retry, Outcome: e.rec.Outcome}, nil
	}
	return Claim{State: New}, nil
}

// Save implements Store.
func (m *Memory) Save(_ context.Context, k Key, token string, rec Record, window time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	e := m.live(k, now)
	if e == nil {
		e = m.insert(k)
	}
	if !e.saved {
		e.expires = now.Add(window)
	}
	rec.Outcome = append([]byte(nil), rec.Outcome...)
	e.rec, e.saved = rec, true
	if e.holder == token {
		e.holder = ""
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, k Key, token string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.live(k, m.now()); e != nil && e.holder == token {
		e.holder = ""
		m.live(k, m.now())
	}
	return nil
}

// Len is the number of keys held or remembered, expired ones included
// until they are next looked at or evicted.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.order.Len()
}

var _ Store = (*Memory)(nil)
