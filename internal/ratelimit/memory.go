package ratelimit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Memory keeps the buckets in this process, one golang.org/x/time/rate
// limiter per key.
type Memory struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	now     func() time.Time
}

// NewMemory returns an empty in-memory limiter.
func NewMemory() *Memory {
	return &Memory{buckets: make(map[string]*rate.Limiter), now: time.Now}
}

// Allow implements Limiter.
func (m *Memory) Allow(_ context.Context, key string, r Rate) (bool, time.Duration, error) {
	now := m.now()
	limit, burst := rate.Limit(float64(r.Events)/r.Per.Seconds()), max(r.Burst, 1)
	m.mu.Lock()
	b, ok := m.buckets[key]
	if !ok {
		b = rate.NewLimiter(limit, burst)
		m.buckets[key] = b
	}
	m.mu.Unlock()
	// A reload may have changed the rate of a bucket that outlives it.
	if b.Limit() != limit {
		b.SetLimitAt(now, limit)
	}
	if b.Burst() != burst {
		b.SetBurstAt(now, burst)
	}
	res := b.ReserveN(now, 1)
	if wait := res.DelayFrom(now); wait > 0 {
		res.CancelAt(now)
		return false, wait, nil
	}
	return true, 0, nil
}

var _ Limiter = (*Memory)(nil)
