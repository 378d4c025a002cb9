package redisqueue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

func appendCalls(t testing.TB, q *Queue, tag string, calls, perCall int, accepted time.Time) {
	t.Helper()
	ctx := context.Background()
	var batch []*queue.Entry
	flush := func() {
		for _, r := range q.AppendAll(ctx, batch, queue.AppendOptions{Due: time.Now()}) {
			if r.Err != nil || !r.Appended {
				t.Fatalf("append: %+v", r)
			}
		}
		batch = batch[:0]
	}
	for c := range calls {
		for u := range perCall {
			// Each call's first entry is a second younger than the last.
			at := accepted.Add(time.Duration(c) * time.Second)
			batch = append(batch, &queue.Entry{CallLogID: fmt.Sprintf("call-%06d", c), UpdateID: fmt.Sprintf("%s%d-%d", tag, c, u), AcceptedAt: at, Patch: []byte(`{"converted":true}`)})
			if len(batch) == 1000 {
				flush()
			}
		}
	}
	if len(batch) > 0 {
		flush()
	}
}

// operations#the-queue-in-production: a Redis written by earlier versions has no counters; the
// first Stats counts once and sets them, then the scripts keep them.
func TestCountsOfARedisWithoutCounters(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	accepted := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	appendCalls(t, q, "a", 3, 2, accepted)
	if err := c.Del(ctx, q.statsKey(), q.oldestKey()).Err(); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil || st.PendingCalls != 3 || st.PendingEntries != 6 || !st.OldestPending.Equal(accepted) {
		t.Fatalf("Stats = %+v, %v; want 3 calls, 6 entries, oldest %v", st, err, accepted)
	}
	appendCalls(t, q, "b", 4, 1, accepted) // one more entry for calls 0-2, a new call 3
	if st, _ := q.Stats(ctx); st.PendingCalls != 4 || st.PendingEntries != 10 {
		t.Fatalf("Stats after more appends = %+v", st)
	}
}

// operations#the-queue-in-production: what can drift is corrected: a lost difference by Recount,
// a stale oldest score by Stats itself.
func TestCountsDriftCorrected(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	accepted := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	appendCalls(t, q, "a", 2, 1, accepted)
	if _, err := q.Stats(ctx); err != nil { // the first Stats counts the fresh Redis
		t.Fatal(err)
	}
	// A follow-up lost (+5 entries that are not there), and two stale
	// oldest scores: an empty call, and call 1 scored before its entry.
	pipe := c.Pipeline()
	pipe.HIncrBy(ctx, q.statsKey(), fieldPendingEntries, 5)
	pipe.ZAdd(ctx, q.oldestKey(), redis.Z{Score: float64(accepted.Add(-2 * time.Hour).UnixMilli()), Member: "gone"})
	pipe.ZAdd(ctx, q.oldestKey(), redis.Z{Score: float64(accepted.Add(-time.Hour).UnixMilli()), Member: "call-000001"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil || !st.OldestPending.Equal(accepted) {
		t.Fatalf("oldest = %v, %v; want %v", st.OldestPending, err, accepted)
	}
	if st.PendingEntries != 7 {
		t.Fatalf("the drift this test made is not there: %+v", st)
	}
	if err := q.Recount(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Stats(ctx); st.PendingCalls != 2 || st.PendingEntries != 2 || !st.OldestPending.Equal(accepted) {
		t.Fatalf("Stats after Recount = %+v", st)
	}
}

// operations#the-queue-in-production: EnsureCounted counts a Redis that was never counted, and
// leaves one that was alone (its counters are kept by the scripts; a walk on a queue in use could
// count an update twice).
func TestEnsureCounted(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	appendCalls(t, q, "a", 2, 3, time.Now().Add(-time.Hour))
	if err := q.EnsureCounted(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.HMGet(ctx, q.statsKey(), fieldPendingEntries, fieldPendingCalls).Result(); fmt.Sprint(n) != "[6 2]" {
		t.Fatalf("counters after EnsureCounted = %v, want [6 2]", n)
	}
	if err := c.HSet(ctx, q.statsKey(), fieldPendingEntries, 7).Err(); err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureCounted(ctx); err != nil {
		t.Fatal(err)
	}
	if st, err := q.Stats(ctx); err != nil || st.PendingEntries != 7 {
		t.Fatalf("Stats = %+v, %v; EnsureCounted recounted a counted Redis", st, err)
	}
}

// Stats at 100 000 calls with one entry each (operations#the-queue-in-production), from the
// counters, against the full count (Recount) that Stats made before them.
func BenchmarkStats100kCalls(b *testing.B) {
	ctx := context.Background()
	q := New(newClient(b, redistest.Start(b).Addr()), "")
	appendCalls(b, q, "a", 100_000, 1, time.Now().Add(-time.Hour))
	b.Run("counters", func(b *testing.B) {
		// The first read of a Redis without counters counts once by walking.
		if _, err := q.Stats(ctx); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if st, err := q.Stats(ctx); err != nil || st.PendingCalls != 100_000 {
				b.Fatal(st, err)
			}
		}
	})
	b.Run("full-count", func(b *testing.B) {
		for b.Loop() {
			if err := q.Recount(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
