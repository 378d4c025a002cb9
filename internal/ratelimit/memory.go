package ratelimit

import (
	"context"
	"sync"
	"time"
)

// Memory keeps the buckets in this process.
type Memory struct {
	mu   sync.Mutex
	tats map[string]time.Time
	now  func() time.Time
}

// NewMemory returns an empty in-memory limiter.
func NewMemory() *Memory {
	return &Memory{tats: make(map[string]time.Time), now: time.Now}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, r Rate) (bool, time.Duration, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	ok, tat, wait := gcra(now, m.tats[key], r)
	m.tats[key] = tat
	return ok, wait, nil
}

var _ Limiter = (*Memory)(nil)
