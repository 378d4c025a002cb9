package postback

import (
	"context"
	"time"
)

// ConcurrencyLimit bounds the call-store requests in flight across all postbacks,
// so that one partner's batches cannot take every connection.
type ConcurrencyLimit struct {
	slots chan struct{}
}

// NewConcurrencyLimit allows n requests at once.
func NewConcurrencyLimit(n int) *ConcurrencyLimit {
	return &ConcurrencyLimit{slots: make(chan struct{}, n)}
}

// Acquire waits for a slot and reports true, or reports false once ctx is
// done or deadline (zero: none) has passed: that request goes on without
// a slot and fails fast at the call store, whose deadline has passed too.
func (l *ConcurrencyLimit) Acquire(ctx context.Context, deadline time.Time) bool {
	// A free slot costs no timer.
	select {
	case l.slots <- struct{}{}:
		return true
	default:
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	select {
	case l.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-expired:
		return false
	}
}

// Release frees a slot that Acquire reported taken.
func (l *ConcurrencyLimit) Release() { <-l.slots }
