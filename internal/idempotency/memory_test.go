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

// partner-api#safe-retries: a key let go of without a record leaves the
// bound at once, and the keys around it keep their order.
func TestMemoryReleasedKeyFreesItsPlace(t *testing.T) {
	ctx := context.Background()
	m := idempotency.NewMemory(3)
	key := func(i int) idempotency.Key { return idempotency.Key{Webhook: "acme", Key: fmt.Sprint("k", i)} }
	claim := func(i int, token string) idempotency.State {
		t.Helper()
		c, err := m.Claim(ctx, key(i), "fp", token, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return c.State
	}
	for i := range 3 {
		claim(i, "t")
	}
	if err := m.Release(ctx, key(1), "t"); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 2 {
		t.Fatalf("Len = %d after a release, want 2", m.Len())
	}
	// k3 takes k1's place without evicting; k4 then evicts k0, the oldest.
	claim(3, "t")
	claim(4, "t")
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
	}
	for _, i := range []int{2, 3, 4} {
		if st := claim(i, "other"); st != idempotency.InUse {
			t.Fatalf("key %d: %s, want in_use (still held)", i, st)
		}
	}
	// k0 was evicted: claiming it again is new, and evicts k2 in turn.
	if st := claim(0, "other"); st != idempotency.New {
		t.Fatalf("key 0: %s, want new (evicted)", st)
	}
	if st := claim(2, "other"); st != idempotency.New {
		t.Fatalf("key 2: %s, want new (evicted after key 0 came back)", st)
	}
}
