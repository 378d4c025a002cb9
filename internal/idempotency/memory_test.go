package idempotency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/internal/idempotency/idempotencytest"
)

func TestMemory(t *testing.T) {
	idempotencytest.Run(t, func(*testing.T) idempotency.Store { return idempotency.NewMemory(0) })
}

// partner-api#safe-retries: without Redis the store is bounded; past the bound the key first
// seen longest ago is forgotten first.
func TestMemoryEvictsOldestFirst(t *testing.T) {
	ctx := context.Background()
	m := idempotency.NewMemory(3)
	key := func(i int) idempotency.Key { return idempotency.Key{Webhook: "acme", Key: fmt.Sprint("k", i)} }
	for i := range 5 {
		if _, err := m.Claim(ctx, key(i), "fp", "t", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := m.Save(ctx, key(i), "t", idempotency.Record{Fingerprint: "fp", Outcome: []byte("out"), Final: true}, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
	}
	// The kept keys first: looking up a forgotten key holds it, a key like
	// any other, which pushes out the oldest.
	for _, i := range []int{2, 3, 4, 0, 1} {
		want := idempotency.Done
		if i < 2 {
			want = idempotency.New
		}
		c, err := m.Claim(ctx, key(i), "fp", "probe", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != want {
			t.Fatalf("key %d: %s, want %s", i, c.State, want)
		}
	}
}
