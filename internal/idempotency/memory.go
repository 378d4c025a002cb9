package idempotency

import (
	"context"
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// DefaultMaxKeys bounds a Memory store made with a limit of zero.
const DefaultMaxKeys = 100000

// Memory is the store of one instance, bounded to a number of keys: past
// it, the key first seen longest ago goes first, whether or not its window
// has passed.
//
// A full store must cost the rest of the process little: its entries live
// in one slice, linked in the order their keys were first seen by index,
// not by pointer, and each key keeps two allocations that hold no pointers
// (its name, and its record's fingerprint and outcome), so a garbage
// collection has few pointers to follow through it.
type Memory struct {
	mu      sync.Mutex
	maxKeys int
	index   map[string]int32 // a key's name (appendIndexKey) to its slot
	slots   []memorySlot
	// free is the first unused slot, the others linked through next; -1: none.
	free int32
	// oldest and newest are the ends of the insertion order; -1: empty.
	oldest, newest int32
	// epoch is the origin of the slots' times: they are durations since it.
	epoch time.Time
	// Now is the clock; tests move it.
	Now func() time.Time
}

// memorySlot is one key's entry.
type memorySlot struct {
	key string // its name in index; "" in an unused slot
	// rec is the record's fingerprint (its first fpLen bytes), then its
	// outcome.
	rec       []byte
	holder    string
	expires   time.Duration // of rec
	holdUntil time.Duration
	// prev and next link the slots in insertion order; next also links
	// the unused ones.
	prev, next int32
	fpLen      int32
	saved      bool
	final      bool
}

// NewMemory returns an empty store of at most maxKeys keys (DefaultMaxKeys
// when maxKeys is not positive; slots are numbered by int32, so at most
// math.MaxInt32).
func NewMemory(maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	maxKeys = min(maxKeys, math.MaxInt32)
	return &Memory{
		maxKeys: maxKeys,
		index:   make(map[string]int32),
		free:    -1,
		oldest:  -1,
		newest:  -1,
		epoch:   time.Now(),
	}
}

// sinceEpoch is the clock's time as the slots keep it.
func (m *Memory) sinceEpoch() time.Duration {
	if m.Now != nil {
		return m.Now().Sub(m.epoch)
	}
	return time.Since(m.epoch)
}

// appendIndexKey appends the index's name of k: the length of its webhook,
// the webhook, then the key, so that no two keys share a name whatever
// they hold.
func appendIndexKey(dst []byte, k Key) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(k.Webhook)))
	return append(append(dst, k.Webhook...), k.Key...)
}

// live returns the slot of the key named ik with what has expired taken
// out, or -1.
func (m *Memory) live(ik []byte, now time.Duration) int32 {
	i, ok := m.index[string(ik)]
	if !ok {
		return -1
	}
	s := &m.slots[i]
	if s.saved && now >= s.expires {
		s.saved, s.final, s.rec, s.fpLen = false, false, nil, 0
	}
	if s.holder != "" && now >= s.holdUntil {
		s.holder = ""
	}
	if !s.saved && s.holder == "" {
		m.remove(i)
		return -1
	}
	return i
}

// insert gives the key named ik a slot as the newest, evicting the oldest
// at the bound.
func (m *Memory) insert(ik []byte) int32 {
	if len(m.index) >= m.maxKeys {
		m.remove(m.oldest)
	}
	i := m.free
	if i >= 0 {
		m.free = m.slots[i].next
	} else {
		if len(m.slots) == cap(m.slots) {
			// Doubling, but never past the bound, where append's growth
			// would leave up to a quarter of the slots unused for good.
			grown := make([]memorySlot, len(m.slots), min(max(2*len(m.slots), 64), m.maxKeys))
			copy(grown, m.slots)
			m.slots = grown
		}
		i = int32(len(m.slots))
		m.slots = append(m.slots, memorySlot{})
	}
	s := &m.slots[i]
	s.key, s.prev, s.next = string(ik), m.newest, -1
	if m.newest >= 0 {
		m.slots[m.newest].next = i
	} else {
		m.oldest = i
	}
	m.newest = i
	m.index[s.key] = i
	return i
}

// remove forgets slot i's key and puts the slot on the free list.
func (m *Memory) remove(i int32) {
	s := &m.slots[i]
	if s.prev >= 0 {
		m.slots[s.prev].next = s.next
	} else {
		m.oldest = s.next
	}
	if s.next >= 0 {
		m.slots[s.next].prev = s.prev
	} else {
		m.newest = s.prev
	}
	delete(m.index, s.key)
	*s = memorySlot{next: m.free}
	m.free = i
}

// Claim implements Store.
func (m *Memory) Claim(_ context.Context, k Key, fingerprint, token string, hold time.Duration) (Claim, error) {
	var buf [128]byte
	ik := appendIndexKey(buf[:0], k)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.sinceEpoch()
	i := m.live(ik, now)
	if i >= 0 {
		s := &m.slots[i]
		switch {
		case s.saved && string(s.rec[:s.fpLen]) != fingerprint:
			return Claim{State: Reused}, nil
		case s.saved && s.final:
			return Claim{State: Done, Outcome: s.outcome()}, nil
		case s.holder != "" && s.holder != token:
			return Claim{State: InUse}, nil
		}
	} else {
		i = m.insert(ik)
	}
	s := &m.slots[i]
	s.holder, s.holdUntil = token, now+hold
	if s.saved {
		return Claim{State: Retry, Outcome: s.outcome()}, nil
	}
	return Claim{State: New}, nil
}

// outcome is the saved record's outcome. Save replaces rec rather than
// writing into it, so a caller may read it after the lock is released.
func (s *memorySlot) outcome() []byte {
	return s.rec[s.fpLen:len(s.rec):len(s.rec)]
}

// Save implements Store.
func (m *Memory) Save(_ context.Context, k Key, token string, rec Record, window time.Duration) error {
	var buf [128]byte
	ik := appendIndexKey(buf[:0], k)
	// The copy, made before the lock is taken: the caller may reuse
	// rec.Outcome.
	b := make([]byte, 0, len(rec.Fingerprint)+len(rec.Outcome))
	b = append(append(b, rec.Fingerprint...), rec.Outcome...)
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.sinceEpoch()
	i := m.live(ik, now)
	if i < 0 {
		i = m.insert(ik)
	}
	s := &m.slots[i]
	if !s.saved {
		s.expires = now + window
	}
	s.rec, s.fpLen, s.final, s.saved = b, int32(len(rec.Fingerprint)), rec.Final, true
	if s.holder == token {
		s.holder = ""
	}
	return nil
}

// Release implements Store.
func (m *Memory) Release(_ context.Context, k Key, token string) error {
	var buf [128]byte
	ik := appendIndexKey(buf[:0], k)
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := m.live(ik, m.sinceEpoch()); i >= 0 && m.slots[i].holder == token {
		m.slots[i].holder = ""
		if !m.slots[i].saved {
			m.remove(i)
		}
	}
	return nil
}

// Len is the number of keys held or remembered, expired ones included
// until they are next looked at or evicted.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.index)
}

var _ Store = (*Memory)(nil)
