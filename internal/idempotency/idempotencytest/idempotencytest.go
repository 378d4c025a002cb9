// Package idempotencytest is the behaviour every idempotency.Store must
// show (docs/partner-api.md#safe-retries), run against each implementation by its own tests.
package idempotencytest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/idempotency"
)

// Run exercises stores made by newStore, a fresh and empty one for each
// subtest.
func Run(t *testing.T, newStore func(t *testing.T) idempotency.Store) {
	ctx := context.Background()
	const hold, window = time.Minute, time.Hour
	k := idempotency.Key{Webhook: "acme", Key: "k1"}

	claim := func(t *testing.T, s idempotency.Store, k idempotency.Key, fp, token string, hold time.Duration) idempotency.Claim {
		t.Helper()
		c, err := s.Claim(ctx, k, fp, token, hold)
		if err != nil {
			t.Fatalf("Claim: %v", err)
		}
		return c
	}
	want := func(t *testing.T, c idempotency.Claim, state idempotency.State, outcome string) {
		t.Helper()
		if c.State != state || string(c.Outcome) != outcome {
			t.Fatalf("Claim = %s %q, want %s %q", c.State, c.Outcome, state, outcome)
		}
	}
	save := func(t *testing.T, s idempotency.Store, k idempotency.Key, token string, rec idempotency.Record, window time.Duration) {
		t.Helper()
		if err := s.Save(ctx, k, token, rec, window); err != nil {
			t.Fatalf("Save: %v", err)
		}
	}
	// eventually polls until the store lets a new request claim k: what
	// the test waits for is the store's own expiry.
	eventually := func(t *testing.T, what string, s idempotency.Store, k idempotency.Key) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			c := claim(t, s, k, "fp-later", fmt.Sprintf("probe-%d", i), time.Minute)
			if c.State == idempotency.New {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: still %s after 10s", what, c.State)
			}
			// A probe that was refused holds nothing; one that was not
			// returned New above.
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("partner-api#safe-retries a new key is held by its first request and refused to others while held", func(t *testing.T) {
		s := newStore(t)
		want(t, claim(t, s, k, "fp", "t1", hold), idempotency.New, "")
		want(t, claim(t, s, k, "fp", "t2", hold), idempotency.InUse, "")
		want(t, claim(t, s, k, "other-fp", "t2", hold), idempotency.InUse, "")
		// A client retry of the same command by the holder changes nothing.
		want(t, claim(t, s, k, "fp", "t1", hold), idempotency.New, "")
	})

	t.Run("partner-api#safe-retries a final record answers every later claim without holding", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		save(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("out-1"), Final: true}, window)
		want(t, claim(t, s, k, "fp", "t2", hold), idempotency.Done, "out-1")
		want(t, claim(t, s, k, "fp", "t3", hold), idempotency.Done, "out-1")
		want(t, claim(t, s, k, "fp-2", "t4", hold), idempotency.Reused, "")
	})

	t.Run("partner-api#safe-retries a record with calls to attempt again is held by one retry at a time", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		save(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, window)
		want(t, claim(t, s, k, "fp", "t2", hold), idempotency.Retry, "half")
		want(t, claim(t, s, k, "fp", "t3", hold), idempotency.InUse, "")
		want(t, claim(t, s, k, "fp-2", "t3", hold), idempotency.Reused, "")
		save(t, s, k, "t2", idempotency.Record{Fingerprint: "fp", Outcome: []byte("whole"), Final: true}, window)
		want(t, claim(t, s, k, "fp", "t3", hold), idempotency.Done, "whole")
	})

	t.Run("partner-api#safe-retries release lets go without a record", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		if err := s.Release(ctx, k, "t2"); err != nil {
			t.Fatal(err)
		}
		want(t, claim(t, s, k, "fp", "t3", hold), idempotency.InUse, "")
		if err := s.Release(ctx, k, "t1"); err != nil {
			t.Fatal(err)
		}
		want(t, claim(t, s, k, "another-fp", "t3", hold), idempotency.New, "")
	})

	t.Run("partner-api#safe-retries a save by a request whose hold was taken over keeps the other's hold", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		if err := s.Release(ctx, k, "t1"); err != nil {
			t.Fatal(err)
		}
		claim(t, s, k, "fp", "t2", hold)
		save(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, window)
		want(t, claim(t, s, k, "fp", "t3", hold), idempotency.InUse, "")
	})

	t.Run("partner-api#safe-retries keys are scoped to their webhook and kept apart whatever they hold", func(t *testing.T) {
		s := newStore(t)
		keys := []idempotency.Key{
			{Webhook: "acme", Key: "k1"}, {Webhook: "other", Key: "k1"},
			{Webhook: "acme", Key: "a{b}c"}, {Webhook: "acme", Key: "a%7Bb%7Dc"}, {Webhook: "acme", Key: "a{b"},
			{Webhook: "acme:k1", Key: ""}, {Webhook: "acme", Key: ":k1"},
		}
		for i, k := range keys {
			want(t, claim(t, s, k, "fp", fmt.Sprint("t", i), hold), idempotency.New, "")
			save(t, s, k, fmt.Sprint("t", i), idempotency.Record{Fingerprint: "fp", Outcome: []byte(fmt.Sprint("out-", i)), Final: true}, window)
		}
		for i, k := range keys {
			want(t, claim(t, s, k, "fp", "later", hold), idempotency.Done, fmt.Sprint("out-", i))
		}
	})

	t.Run("partner-api#safe-retries a hold expires on its own", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "crashed", 100*time.Millisecond)
		eventually(t, "the hold of a request that never saved", s, k)
	})

	t.Run("partner-api#safe-retries a retry's hold expires on its own and keeps the record", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		save(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, window)
		want(t, claim(t, s, k, "fp", "crashed", 100*time.Millisecond), idempotency.Retry, "half")
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; ; i++ {
			c := claim(t, s, k, "fp", fmt.Sprintf("probe-%d", i), time.Minute)
			if c.State == idempotency.Retry {
				want(t, c, idempotency.Retry, "half")
				return
			}
			if c.State != idempotency.InUse || time.Now().After(deadline) {
				t.Fatalf("the hold of a retry that never saved: %s after %d probes", c.State, i+1)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("partner-api#safe-retries a record expires with its window, counted from its first save", func(t *testing.T) {
		s := newStore(t)
		claim(t, s, k, "fp", "t1", hold)
		save(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, 300*time.Millisecond)
		want(t, claim(t, s, k, "fp", "t2", hold), idempotency.Retry, "half")
		save(t, s, k, "t2", idempotency.Record{Fingerprint: "fp", Outcome: []byte("whole"), Final: true}, window)
		eventually(t, "a record past its window", s, k)
	})

	t.Run("partner-api#safe-retries of many concurrent claims of one key exactly one holds it", func(t *testing.T) {
		s := newStore(t)
		const n = 16
		var wg sync.WaitGroup
		states := make([]idempotency.State, n)
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.Claim(ctx, k, "fp", fmt.Sprint("t", i), hold)
				states[i], errs[i] = c.State, err
			}()
		}
		wg.Wait()
		held := 0
		for i, st := range states {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			switch st {
			case idempotency.New:
				held++
			case idempotency.InUse:
			default:
				t.Fatalf("claim %d: %s", i, st)
			}
		}
		if held != 1 {
			t.Fatalf("%d claims hold the key, want 1", held)
		}
	})
}
