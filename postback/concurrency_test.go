package postback

import (
	"context"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	full := func(t *testing.T) *ConcurrencyLimit {
		l := NewConcurrencyLimit(2)
		if !l.Acquire(context.Background(), time.Time{}) || !l.Acquire(context.Background(), time.Time{}) {
			t.Fatal("two slots not granted")
		}
		return l
	}
	refused := func(t *testing.T, l *ConcurrencyLimit, ctx context.Context, deadline time.Time) {
		t.Helper()
		start := time.Now()
		if l.Acquire(ctx, deadline) {
			t.Fatal("a third slot was granted")
		}
		if waited := time.Since(start); waited < 15*time.Millisecond || waited > 2*time.Second {
			t.Errorf("waited %v, want until the end at 20ms", waited)
		}
	}
	t.Run("operations#connections-and-deadlines the limiter grants n slots and gives up when the context ends", func(t *testing.T) {
		t.Parallel()
		l := full(t)
		short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		refused(t, l, short, time.Time{})
	})
	t.Run("operations#connections-and-deadlines the limiter gives up at the request's deadline", func(t *testing.T) {
		t.Parallel()
		refused(t, full(t), context.Background(), time.Now().Add(20*time.Millisecond))
	})
	t.Run("operations#connections-and-deadlines a freed slot goes to the waiter", func(t *testing.T) {
		t.Parallel()
		l := full(t)
		done := make(chan bool)
		go func() { done <- l.Acquire(context.Background(), time.Now().Add(5*time.Second)) }()
		time.Sleep(10 * time.Millisecond)
		l.Release()
		select {
		case ok := <-done:
			if !ok {
				t.Error("a freed slot was not granted")
			}
		case <-time.After(time.Second):
			t.Fatal("a freed slot was not handed to the waiter")
		}
	})
}
