package postback

import (
	"context"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	t.Run("§7.3 the limiter grants n slots and gives up when the context ends", func(t *testing.T) {
		l := NewConcurrencyLimit(2)
		ctx := context.Background()
		if !l.Acquire(ctx) || !l.Acquire(ctx) {
			t.Fatal("two slots not granted")
		}
		short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		start := time.Now()
		if l.Acquire(short) {
			t.Fatal("a third slot was granted")
		}
		if waited := time.Since(start); waited < 15*time.Millisecond || waited > 2*time.Second {
			t.Errorf("waited %v, want until the context ended at 20ms", waited)
		}
		done := make(chan bool)
		go func() { done <- l.Acquire(ctx) }()
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
