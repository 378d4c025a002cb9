// Package queuetest is the behaviour every queue.Queue must show (docs/operations.md#the-queue),
// run against each implementation by its own tests.
package queuetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// Run exercises q, a fresh and empty queue made by newQueue for each subtest.
func Run(t *testing.T, newQueue func(t *testing.T) queue.Queue) {
	ctx := context.Background()
	now := time.Now().Truncate(time.Millisecond)

	entry := func(call, patch string) *queue.Entry {
		return &queue.Entry{CallLogID: call, Account: "acct_1", Webhook: "acme", RequestID: "req-" + patch, AcceptedAt: now, Patch: []byte(patch)}
	}
	mustAppend := func(t *testing.T, q queue.Queue, e *queue.Entry, ifPending bool) bool {
		t.Helper()
		ok, err := q.Append(ctx, e, ifPending, now)
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		return ok
	}
	patches := func(t *testing.T, q queue.Queue, call string) []string {
		t.Helper()
		es, err := q.Pending(ctx, call)
		if err != nil {
			t.Fatalf("Pending: %v", err)
		}
		out := []string{}
		for _, e := range es {
			out = append(out, string(e.Patch))
		}
		return out
	}

	t.Run("operations#order append keeps order and ifPending appends only behind waiting entries", func(t *testing.T) {
		q := newQueue(t)
		if mustAppend(t, q, entry("c1", `{"a":1}`), true) {
			t.Fatal("ifPending appended to an empty call")
		}
		mustAppend(t, q, entry("c1", `{"a":1}`), false)
		if !mustAppend(t, q, entry("c1", `{"a":2}`), true) {
			t.Fatal("ifPending did not append behind a waiting entry")
		}
		mustAppend(t, q, entry("c1", `{"a":3}`), false)
		if got := fmt.Sprint(patches(t, q, "c1")); got != `[{"a":1} {"a":2} {"a":3}]` {
			t.Fatalf("pending = %s", got)
		}
		es, _ := q.Pending(ctx, "c1")
		for i := 1; i < len(es); i++ {
			if es[i].ID <= es[i-1].ID {
				t.Fatalf("entry IDs do not increase: %q then %q", es[i-1].ID, es[i].ID)
			}
		}
		e := es[0]
		if e.Account != "acct_1" || e.Webhook != "acme" || e.RequestID != `req-{"a":1}` || !e.AcceptedAt.Equal(now) {
			t.Fatalf("entry fields not kept: %+v", e)
		}
	})

	t.Run("operations#completion-and-dead-letters due, schedule and wake", func(t *testing.T) {
		q := newQueue(t)
		if _, err := q.Append(ctx, entry("c1", `{}`), false, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if due, _ := q.Due(ctx, now, 10); len(due) != 0 {
			t.Fatalf("due before its time: %v", due)
		}
		if due, _ := q.Due(ctx, now.Add(time.Minute), 10); len(due) != 1 || due[0].CallLogID != "c1" {
			t.Fatalf("not due at its time: %v", due)
		}
		if err := q.Schedule(ctx, "c1", now.Add(time.Hour), 3); err != nil {
			t.Fatal(err)
		}
		if due, _ := q.Due(ctx, now.Add(time.Minute), 10); len(due) != 0 {
			t.Fatalf("due after being rescheduled later: %v", due)
		}
		if due, _ := q.Due(ctx, now.Add(time.Hour), 10); len(due) != 1 || due[0].Attempt != 3 {
			t.Fatalf("attempt not kept: %v", due)
		}
		pending, err := q.Wake(ctx, "c1", now)
		if err != nil || !pending {
			t.Fatalf("Wake = %v, %v", pending, err)
		}
		if due, _ := q.Due(ctx, now, 10); len(due) != 1 || due[0].Attempt != 0 {
			t.Fatalf("wake did not make the call due now with attempt 0: %v", due)
		}
		if pending, _ := q.Wake(ctx, "nobody", now); pending {
			t.Fatal("Wake of a call with nothing waiting reported pending")
		}
		// A second append does not push an earlier due time back.
		if _, err := q.Append(ctx, entry("c1", `{}`), false, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if due, _ := q.Due(ctx, now, 10); len(due) != 1 {
			t.Fatalf("append moved the due time: %v", due)
		}
		for i := 0; i < 5; i++ {
			mustAppend(t, q, entry(fmt.Sprintf("many-%d", i), `{}`), false)
		}
		if due, _ := q.Due(ctx, now, 3); len(due) != 3 {
			t.Fatalf("limit not applied: %d", len(due))
		}
	})

	t.Run("operations#several-instances lease: one owner at a time, expiry, release", func(t *testing.T) {
		q := newQueue(t)
		if ok, err := q.Claim(ctx, "c1", "a", 300*time.Millisecond); err != nil || !ok {
			t.Fatalf("first claim = %v, %v", ok, err)
		}
		if ok, _ := q.Claim(ctx, "c1", "b", time.Second); ok {
			t.Fatal("second owner took a held lease")
		}
		if ok, _ := q.Claim(ctx, "c1", "a", 300*time.Millisecond); !ok {
			t.Fatal("owner could not renew its lease")
		}
		time.Sleep(400 * time.Millisecond)
		if ok, _ := q.Claim(ctx, "c1", "b", time.Second); !ok {
			t.Fatal("expired lease was not taken over")
		}
		if err := q.Release(ctx, "c1", "a"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := q.Claim(ctx, "c1", "a", time.Second); ok {
			t.Fatal("release by a former owner freed another owner's lease")
		}
		if err := q.Release(ctx, "c1", "b"); err != nil {
			t.Fatal(err)
		}
		if ok, _ := q.Claim(ctx, "c1", "a", time.Second); !ok {
			t.Fatal("released lease could not be claimed")
		}
	})

	t.Run("operations#completion-and-dead-letters ack and bury need the lease and the head; dead letters and requeue", func(t *testing.T) {
		q := newQueue(t)
		mustAppend(t, q, entry("c1", `{"a":1}`), false)
		mustAppend(t, q, entry("c1", `{"a":2}`), false)
		mustAppend(t, q, entry("c1", `{"a":3}`), false)
		head, ok, err := q.Head(ctx, "c1")
		if err != nil || !ok || string(head.Patch) != `{"a":1}` {
			t.Fatalf("Head = %+v, %v, %v", head, ok, err)
		}
		if _, _, err := q.Ack(ctx, "c1", "a", head.ID); err != queue.ErrNotLeaseholder {
			t.Fatalf("ack without a lease = %v", err)
		}
		if ok, _ := q.Claim(ctx, "c1", "a", time.Minute); !ok {
			t.Fatal("claim failed")
		}
		if _, _, err := q.Ack(ctx, "c1", "b", head.ID); err != queue.ErrNotLeaseholder {
			t.Fatalf("ack by another owner = %v", err)
		}
		if _, _, err := q.Ack(ctx, "c1", "a", "not-the-head"); err != queue.ErrNotLeaseholder {
			t.Fatalf("ack of another entry = %v", err)
		}
		next, ok, err := q.Ack(ctx, "c1", "a", head.ID)
		if err != nil || !ok || string(next.Patch) != `{"a":2}` {
			t.Fatalf("ack = %+v, %v, %v; want the next head, {\"a\":2}", next, ok, err)
		}
		head, _, _ = q.Head(ctx, "c1")
		if head.ID != next.ID || head.CallLogID != "c1" || !head.AcceptedAt.Equal(next.AcceptedAt) {
			t.Fatalf("the head Ack returned, %+v, is not Head's, %+v", next, head)
		}
		if err := q.Bury(ctx, "c1", "a", head.ID, "not_found: call not found", now); err != nil {
			t.Fatalf("bury: %v", err)
		}
		if got := fmt.Sprint(patches(t, q, "c1")); got != `[{"a":3}]` {
			t.Fatalf("pending after ack and bury = %s", got)
		}
		dead, err := q.Dead(ctx, "c1")
		if err != nil || len(dead) != 1 || string(dead[0].Patch) != `{"a":2}` || dead[0].Reason != "not_found: call not found" || !dead[0].DeadAt.Equal(now) {
			t.Fatalf("dead = %+v, %v", dead, err)
		}
		st, err := q.Stats(ctx)
		if err != nil || !st.OldestPending.Equal(now) {
			t.Fatalf("oldest pending = %v, %v; want %v", st.OldestPending, err, now)
		}
		st.OldestPending = time.Time{}
		if st != (queue.Stats{PendingCalls: 1, PendingEntries: 1, DeadCalls: 1, DeadEntries: 1}) {
			t.Fatalf("stats = %+v, %v", st, err)
		}
		n, err := q.Requeue(ctx, "c1", now)
		if err != nil || n != 1 {
			t.Fatalf("requeue = %d, %v", n, err)
		}
		if got := fmt.Sprint(patches(t, q, "c1")); got != `[{"a":2} {"a":3}]` {
			t.Fatalf("pending after requeue = %s", got)
		}
		if dead, _ := q.Dead(ctx, "c1"); len(dead) != 0 {
			t.Fatalf("dead letters left after requeue: %v", dead)
		}
		// Draining the list, each Ack giving the next head, empties the
		// call and takes it out of the due index.
		h, ok, _ := q.Head(ctx, "c1")
		var drained []string
		for ok {
			drained = append(drained, string(h.Patch))
			if h, ok, err = q.Ack(ctx, "c1", "a", h.ID); err != nil {
				t.Fatal(err)
			}
		}
		if got := fmt.Sprint(drained); got != `[{"a":2} {"a":3}]` {
			t.Fatalf("drained through Ack's heads: %s", got)
		}
		if due, _ := q.Due(ctx, now.Add(time.Hour), 10); len(due) != 0 {
			t.Fatalf("empty call still due: %v", due)
		}
		if st, _ := q.Stats(ctx); st.PendingCalls != 0 || st.PendingEntries != 0 || !st.OldestPending.IsZero() {
			t.Fatalf("stats after drain = %+v", st)
		}
		if pending, _ := q.Wake(ctx, "c1", now); pending {
			t.Fatal("drained call reported pending")
		}
	})

	t.Run("operations#the-queue-in-production the counts follow every write: append, ack, bury, requeue, a write run twice", func(t *testing.T) {
		q := newQueue(t)
		want := func(step string, pendingCalls, pendingEntries, deadCalls, deadEntries int, oldest time.Time) {
			t.Helper()
			st, err := q.Stats(ctx)
			if err != nil {
				t.Fatalf("%s: Stats: %v", step, err)
			}
			if !st.OldestPending.Equal(oldest) {
				t.Fatalf("%s: oldest pending = %v, want %v", step, st.OldestPending, oldest)
			}
			st.OldestPending = time.Time{}
			if w := (queue.Stats{PendingCalls: pendingCalls, PendingEntries: pendingEntries, DeadCalls: deadCalls, DeadEntries: deadEntries}); st != w {
				t.Fatalf("%s: Stats = %+v, want %+v", step, st, w)
			}
		}
		want("empty", 0, 0, 0, 0, time.Time{})
		older, newer := now.Add(-time.Hour), now.Add(-time.Minute)
		at := func(call, patch, update string, accepted time.Time) *queue.Entry {
			e := entry(call, patch)
			e.UpdateID, e.AcceptedAt = update, accepted
			return e
		}
		mustAppend(t, q, at("n1", `{"n":1}`, "u-n1", newer), false)
		want("one append", 1, 1, 0, 0, newer)
		mustAppend(t, q, at("o1", `{"o":1}`, "u-o1", older), false)
		mustAppend(t, q, at("o1", `{"o":2}`, "u-o2", newer), false)
		want("three appends on two calls", 2, 3, 0, 0, older)
		mustAppend(t, q, at("o1", `{"o":2}`, "u-o2", newer), false)
		want("an append run twice", 2, 3, 0, 0, older)
		if ok, _ := q.Claim(ctx, "o1", "a", time.Minute); !ok {
			t.Fatal("claim failed")
		}
		head, _, _ := q.Head(ctx, "o1")
		if err := q.Bury(ctx, "o1", "a", head.ID, "not_found: call not found", now); err != nil {
			t.Fatal(err)
		}
		want("a burial", 2, 2, 1, 1, newer)
		head, _, _ = q.Head(ctx, "o1")
		if _, _, err := q.Ack(ctx, "o1", "a", head.ID); err != nil {
			t.Fatal(err)
		}
		// The same ack again (a client retry on Redis; refused in memory)
		// changes no count.
		_, _, _ = q.Ack(ctx, "o1", "a", head.ID)
		want("an ack, run twice", 1, 1, 1, 1, newer)
		if n, err := q.Requeue(ctx, "o1", now); err != nil || n != 1 {
			t.Fatalf("requeue = %d, %v", n, err)
		}
		want("a requeue", 2, 2, 0, 0, older)
		if n, err := q.Requeue(ctx, "o1", now); err != nil || n != 0 {
			t.Fatalf("second requeue = %d, %v", n, err)
		}
		want("a requeue with nothing dead", 2, 2, 0, 0, older)
		if ok, _ := q.Claim(ctx, "n1", "a", time.Minute); !ok {
			t.Fatal("claim failed")
		}
		for _, call := range []string{"o1", "n1"} {
			head, _, _ := q.Head(ctx, call)
			if _, _, err := q.Ack(ctx, call, "a", head.ID); err != nil {
				t.Fatal(err)
			}
		}
		want("two acks", 0, 0, 0, 0, time.Time{})
	})

	t.Run("operations#order concurrent appends keep every entry once", func(t *testing.T) {
		q := newQueue(t)
		mustAppend(t, q, entry("c1", `0`), false)
		var wg sync.WaitGroup
		for w := 0; w < 8; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < 25; i++ {
					if _, err := q.Append(ctx, entry("c1", fmt.Sprintf("%d-%d", w, i)), true, now); err != nil {
						t.Error(err)
					}
				}
			}(w)
		}
		wg.Wait()
		got := patches(t, q, "c1")
		if len(got) != 1+8*25 {
			t.Fatalf("%d entries, want %d", len(got), 1+8*25)
		}
		last := map[int]int{}
		for _, p := range got[1:] {
			var w, i int
			fmt.Sscanf(p, "%d-%d", &w, &i)
			if prev, ok := last[w]; ok && i <= prev {
				t.Fatalf("writer %d's entries out of order: %d after %d", w, i, prev)
			}
			last[w] = i
		}
	})

	t.Run("operations#delivery-guarantee an update appended twice is stored once; settle decides an unknown append", func(t *testing.T) {
		q := newQueue(t)
		first := entry("c1", `{"a":1}`)
		first.UpdateID = "u-1"
		mustAppend(t, q, first, false)
		again := entry("c1", `{"a":1}`)
		again.UpdateID = "u-1"
		if !mustAppend(t, q, again, true) || again.ID != first.ID {
			t.Fatalf("second append of one update: ID %q, want the first's %q", again.ID, first.ID)
		}
		if got := fmt.Sprint(patches(t, q, "c1")); got != `[{"a":1}]` {
			t.Fatalf("pending = %s, want the update once", got)
		}
		if es, _ := q.Pending(ctx, "c1"); es[0].UpdateID != "u-1" {
			t.Fatalf("update ID not kept: %+v", es[0])
		}
		if stored, err := q.Settle(ctx, "c1", "u-1"); err != nil || !stored {
			t.Fatalf("Settle of a stored update = %v, %v", stored, err)
		}
		if stored, err := q.Settle(ctx, "c2", "u-2"); err != nil || stored {
			t.Fatalf("Settle of an update never stored = %v, %v", stored, err)
		}
		// After Settle said "not stored", a late copy of the append stores nothing.
		late := entry("c2", `{"late":1}`)
		late.UpdateID = "u-2"
		if r := q.AppendAll(ctx, []*queue.Entry{late}, queue.AppendOptions{Due: now}); r[0].Appended {
			t.Fatalf("an append settled as not stored was stored: %+v", r[0])
		}
		if got := patches(t, q, "c2"); len(got) != 0 {
			t.Fatalf("pending of c2 = %v, want nothing", got)
		}
		// Acknowledging twice takes one entry.
		mustAppend(t, q, entry("c1", `{"a":2}`), false)
		if ok, _ := q.Claim(ctx, "c1", "a", time.Minute); !ok {
			t.Fatal("claim failed")
		}
		for range 2 {
			if _, _, err := q.Ack(ctx, "c1", "a", first.ID); err != nil && err != queue.ErrNotLeaseholder {
				t.Fatalf("ack: %v", err)
			}
		}
		if got := fmt.Sprint(patches(t, q, "c1")); got != `[{"a":2}]` {
			t.Fatalf("pending after two acks of one entry = %s", got)
		}
	})

	t.Run("operations#the-queue-in-production a call holds at most MaxPending entries", func(t *testing.T) {
		q := newQueue(t)
		batch := make([]*queue.Entry, 4)
		for i := range batch {
			batch[i] = entry("full", fmt.Sprintf(`{"n":%d}`, i))
		}
		results := q.AppendAll(ctx, batch, queue.AppendOptions{Due: now, MaxPending: 3})
		for i, r := range results {
			if want := i < 3; r.Appended != want || (want && r.Err != nil) || (!want && r.Err != queue.ErrTooManyPending) {
				t.Fatalf("entry %d: %+v, want appended=%v", i, r, want)
			}
		}
		if got := patches(t, q, "full"); len(got) != 3 {
			t.Fatalf("%d entries stored, want 3", len(got))
		}
		// Other calls of the same batch are not affected.
		mixed := []*queue.Entry{entry("full", `{}`), entry("other", `{}`)}
		results = q.AppendAll(ctx, mixed, queue.AppendOptions{Due: now, MaxPending: 3})
		if results[0].Err != queue.ErrTooManyPending || !results[1].Appended {
			t.Fatalf("mixed batch: %+v", results)
		}
		// The ordering check finds the waiting calls in one call.
		check := []*queue.Entry{entry("full", `{}`), entry("nobody", `{}`), entry("other", `{}`)}
		results = q.AppendAll(ctx, check, queue.AppendOptions{IfPending: true, Due: now, MaxPending: 10})
		if !results[0].Appended || results[1].Appended || results[1].Err != nil || !results[2].Appended {
			t.Fatalf("ordering check of a batch: %+v", results)
		}
	})

	t.Run("operations#the-queue-in-production WakeAll wakes many calls at once", func(t *testing.T) {
		q := newQueue(t)
		for _, id := range []string{"w1", "w2"} {
			if _, err := q.Append(ctx, entry(id, `{}`), false, now.Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := q.Schedule(ctx, id, now.Add(time.Hour), 4); err != nil {
				t.Fatal(err)
			}
		}
		pending, err := q.WakeAll(ctx, []string{"w1", "nobody", "w2"}, now)
		if err != nil || fmt.Sprint(pending) != "[true false true]" {
			t.Fatalf("WakeAll = %v, %v", pending, err)
		}
		due, _ := q.Due(ctx, now, 10)
		if len(due) != 2 || due[0].Attempt != 0 || due[1].Attempt != 0 {
			t.Fatalf("due after WakeAll = %+v, want both now with attempt 0", due)
		}
	})
}
