package caddymodule

import (
	"sync"
	"time"

	"go.uber.org/zap"
)

// defaultWarningInterval is how often a warning that would repeat on every
// request is logged (docs/operations.md#the-queue-in-production).
const defaultWarningInterval = 10 * time.Second

// throttledWarning logs a warning that would otherwise repeat on every
// request at most once per interval, with the count of occurrences since
// the last line.
type throttledWarning struct {
	interval time.Duration
	mu       sync.Mutex
	next     time.Time
	count    int
}

func (t *throttledWarning) warn(logger *zap.Logger, msg string, fields ...zap.Field) {
	interval := t.interval
	if interval == 0 {
		interval = defaultWarningInterval
	}
	now := time.Now()
	t.mu.Lock()
	t.count++
	if now.Before(t.next) {
		t.mu.Unlock()
		return
	}
	count := t.count
	t.count = 0
	t.next = now.Add(interval)
	t.mu.Unlock()
	logger.Warn(msg, append(fields, zap.Int("count", count), zap.Duration("interval", interval))...)
}
