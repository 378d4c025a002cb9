package postback

import "context"

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
// done: that request goes on without a slot and fails fast at the call
// store, whose context has ended too.
func (l *ConcurrencyLimit) Acquire(ctx context.Context) bool {
	select {
	case l.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

// Release frees a slot that Acquire reported taken.
func (l *ConcurrencyLimit) Release() { <-l.slots }
