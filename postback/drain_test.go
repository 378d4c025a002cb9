package postback

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

func newTestDrainer(q queue.Queue, cs *CallStore, now func() time.Time) *Drainer {
	return &Drainer{
		Queue:      q,
		Store:      cs,
		Interval:   time.Second,
		MaxBackoff: 5 * time.Second,
		MaxAge:     time.Hour,
		LeaseTTL:   5 * time.Second,
		Timeout:    2 * time.Second,
		Workers:    2,
		Now:        now,
	}
}

// enqueue appends an update for id as the edge does for a live call.
func enqueue(t *testing.T, q queue.Queue, id, requestID, patch string, acceptedAt, due time.Time) queue.Entry {
	t.Helper()
	e := queue.Entry{CallLogID: id, Account: "acct_1", Webhook: "acme", RequestID: requestID, AcceptedAt: acceptedAt, Patch: []byte(patch)}
	if _, err := q.Append(context.Background(), &e, false, due); err != nil {
		t.Fatal(err)
	}
	return e
}

// waitFor polls cond every few milliseconds until it holds or within passes.
func waitFor(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fixedClock(at time.Time) func() time.Time { return func() time.Time { return at } }

func TestDrainCallAppliesInOrder(t *testing.T) {
	t.Parallel()
	t.Run("operations#completion-and-dead-letters a completed call's updates are applied in order, each acked, and the lease released", func(t *testing.T) {
		// operations#completion-and-dead-letters: a completed call's updates are sent in order, each with the
		// headers of the postback that carried it, and removed once applied.
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		q := queue.NewMemory()
		now := edgeTestNow
		for i, amount := range []string{"10", "20", "30"} {
			e := queue.Entry{CallLogID: "call-1", Account: "acct_1", Webhook: "hook-" + strconv.Itoa(i), RequestID: "req-" + strconv.Itoa(i),
				AcceptedAt: now.Add(-time.Minute), Patch: []byte(`{"revenue_paid_out":` + amount + `}`)}
			if _, err := q.Append(context.Background(), &e, false, now); err != nil {
				t.Fatal(err)
			}
		}
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
		d.DrainCall(context.Background(), "call-1", 0)

		applied := s.appliedPatches()
		if len(applied) != 3 {
			t.Fatalf("applied %v, want 3 PATCHes", s.appliedBodies())
		}
		for i, r := range applied {
			want := `{"revenue_paid_out":` + []string{"10", "20", "30"}[i] + `}`
			if r.body != want || r.uri != "/v1/calls/call-1" || r.header.Get("X-Account-Id") != "acct_1" ||
				r.header.Get("X-Postback-Webhook") != "hook-"+strconv.Itoa(i) || r.header.Get("X-Request-Id") != "req-"+strconv.Itoa(i) {
				t.Errorf("PATCH %d: %s %s %v, want %s with its entry's headers", i, r.uri, r.body, r.header, want)
			}
		}
		ctx := context.Background()
		if p, _ := q.Pending(ctx, "call-1"); len(p) != 0 {
			t.Errorf("%d entries still waiting, want none", len(p))
		}
		if due, _ := q.Due(ctx, now.Add(time.Hour), 10); len(due) != 0 {
			t.Errorf("call still due: %v", due)
		}
		if st, _ := q.Stats(ctx); st != (queue.Stats{}) {
			t.Errorf("stats %+v, want an empty queue", st)
		}
		// The lease went back: another instance may claim the call at once.
		if ok, _ := q.Claim(ctx, "call-1", "other", time.Second); !ok {
			t.Error("the drainer kept the lease after draining")
		}
	})
}

func TestDrainCallDeadLetters(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		first  func(w http.ResponseWriter)
		reason string
	}{
		{"operations#completion-and-dead-letters 422 moves the entry to the dead letters with the call store's message, then the next is applied",
			func(w http.ResponseWriter) {
				answer(w, http.StatusUnprocessableEntity, `{"message":"revenue above the campaign cap"}`)
			}, "rejected: revenue above the campaign cap"},
		{"operations#completion-and-dead-letters 404 moves the entry to the dead letters, then the next is applied",
			func(w http.ResponseWriter) { answer(w, http.StatusNotFound, `{}`) }, "not_found: call not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStoreDouble(t)
			s.addCall("call-1", "completed", "acct_1")
			s.setHook(func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
				if n == 1 {
					tt.first(w)
					return true
				}
				return false
			})
			q := queue.NewMemory()
			now := edgeTestNow
			first := enqueue(t, q, "call-1", "req-1", `{"revenue_paid_out":10}`, now, now)
			enqueue(t, q, "call-1", "req-2", `{"revenue_paid_out":20}`, now, now)
			d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
			d.DrainCall(context.Background(), "call-1", 0)

			ctx := context.Background()
			dead, _ := q.Dead(ctx, "call-1")
			if len(dead) != 1 || dead[0].ID != first.ID || dead[0].Reason != tt.reason || !dead[0].DeadAt.Equal(now) || string(dead[0].Patch) != `{"revenue_paid_out":10}` {
				t.Errorf("dead letters %+v, want the first entry with reason %q", dead, tt.reason)
			}
			if got := s.appliedBodies(); len(got) != 1 || got[0] != `call-1 {"revenue_paid_out":20}` {
				t.Errorf("applied %v, want the second entry", got)
			}
			if p, _ := q.Pending(ctx, "call-1"); len(p) != 0 {
				t.Errorf("%d entries still waiting, want none", len(p))
			}
		})
	}
}

func TestDrainCallStillLiveBackoff(t *testing.T) {
	t.Parallel()
	// operations#the-queue: a call still live is checked again after drain_interval,
	// doubling per attempt, up to the cap; nothing is removed.
	tests := []struct {
		attempt int
		wait    time.Duration
	}{
		{0, time.Second}, {1, 2 * time.Second}, {2, 4 * time.Second}, {3, 5 * time.Second}, {20, 5 * time.Second}, {70, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run("attempt "+strconv.Itoa(tt.attempt), func(t *testing.T) {
			t.Parallel()
			s := newStoreDouble(t)
			s.addCall("call-1", "live", "acct_1")
			q := queue.NewMemory()
			now := edgeTestNow
			enqueue(t, q, "call-1", "req-1", revenuePatch, now.Add(-time.Minute), now)
			d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
			d.DrainCall(context.Background(), "call-1", tt.attempt)

			ctx := context.Background()
			if n := len(s.requests()); n != 1 {
				t.Errorf("%d requests, want one PATCH answered 409", n)
			}
			if p, _ := q.Pending(ctx, "call-1"); len(p) != 1 {
				t.Errorf("%d entries waiting, want the 1 kept", len(p))
			}
			if due, _ := q.Due(ctx, now.Add(tt.wait-time.Millisecond), 10); len(due) != 0 {
				t.Errorf("due %v before %v", due, tt.wait)
			}
			due, _ := q.Due(ctx, now.Add(tt.wait), 10)
			if len(due) != 1 || due[0].CallLogID != "call-1" || due[0].Attempt != tt.attempt+1 {
				t.Errorf("due at +%v: %v, want call-1 at attempt %d", tt.wait, due, tt.attempt+1)
			}
		})
	}
	t.Run("operations#the-queue a call store that keeps failing is checked again later, nothing is dropped", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(answerWith(503, `{}`))
		q := queue.NewMemory()
		now := edgeTestNow
		enqueue(t, q, "call-1", "req-1", revenuePatch, now, now)
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
		d.Timeout = 100 * time.Millisecond
		d.DrainCall(context.Background(), "call-1", 1)
		ctx := context.Background()
		if p, _ := q.Pending(ctx, "call-1"); len(p) != 1 {
			t.Errorf("%d entries waiting, want 1", len(p))
		}
		if dead, _ := q.Dead(ctx, "call-1"); len(dead) != 0 {
			t.Errorf("dead letters %v, want none", dead)
		}
		if due, _ := q.Due(ctx, now.Add(2*time.Second), 10); len(due) != 1 || due[0].Attempt != 2 {
			t.Errorf("due %v, want call-1 at attempt 2 after 2s", due)
		}
	})
}

func TestDrainCallMaxAge(t *testing.T) {
	t.Parallel()
	t.Run("operations#completion-and-dead-letters an update older than max_age goes to the dead letters unsent, the next is applied", func(t *testing.T) {
		// operations#completion-and-dead-letters: an update still waiting after max_age is never sent; it moves
		// to the dead letters, and the next one is applied.
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		q := queue.NewMemory()
		now := edgeTestNow
		old := enqueue(t, q, "call-1", "req-old", `{"revenue_paid_out":10}`, now.Add(-2*time.Hour), now)
		enqueue(t, q, "call-1", "req-new", `{"revenue_paid_out":20}`, now.Add(-30*time.Minute), now)
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
		d.DrainCall(context.Background(), "call-1", 0)

		dead, _ := q.Dead(context.Background(), "call-1")
		if len(dead) != 1 || dead[0].ID != old.ID || !strings.HasPrefix(dead[0].Reason, "max_age") {
			t.Errorf("dead letters %+v, want the 2h old entry with a max_age reason", dead)
		}
		reqs := s.requests()
		if len(reqs) != 1 || reqs[0].body != `{"revenue_paid_out":20}` {
			t.Errorf("requests %v, want only the fresh entry sent", s.appliedBodies())
		}
	})
}

func TestDrainCallLease(t *testing.T) {
	t.Parallel()
	t.Run("operations#several-instances a call leased by another instance is not touched", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		q := queue.NewMemory()
		now := edgeTestNow
		enqueue(t, q, "call-1", "req-1", revenuePatch, now, now)
		ctx := context.Background()
		if ok, _ := q.Claim(ctx, "call-1", "other-instance", time.Minute); !ok {
			t.Fatal("claim")
		}
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
		d.DrainCall(ctx, "call-1", 0)
		if n := len(s.requests()); n != 0 {
			t.Errorf("%d requests sent for a call another instance holds", n)
		}
		if p, _ := q.Pending(ctx, "call-1"); len(p) != 1 {
			t.Errorf("%d entries waiting, want 1", len(p))
		}
		if ok, _ := q.Claim(ctx, "call-1", "other-instance", time.Minute); !ok {
			t.Error("the other instance lost its lease")
		}
	})
	t.Run("operations#several-instances a crashed instance's expired lease is taken over", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		q := queue.NewMemory()
		now := edgeTestNow
		enqueue(t, q, "call-1", "req-1", revenuePatch, now, now)
		ctx := context.Background()
		if ok, _ := q.Claim(ctx, "call-1", "crashed-instance", time.Millisecond); !ok {
			t.Fatal("claim")
		}
		time.Sleep(5 * time.Millisecond)
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
		d.DrainCall(ctx, "call-1", 0)
		if got := s.appliedBodies(); len(got) != 1 {
			t.Errorf("applied %v, want the waiting update", got)
		}
	})
}

func TestDrainerRun(t *testing.T) {
	t.Parallel()
	t.Run("operations#the-queue the periodic check retries a live call and applies it once completed", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-1", "live", "acct_1")
		q := queue.NewMemory()
		enqueue(t, q, "call-1", "req-1", revenuePatch, time.Now(), time.Now())
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), time.Now)
		d.Interval = 40 * time.Millisecond
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		defer func() { cancel(); <-done }()
		if !waitFor(3*time.Second, func() bool { return len(s.requests()) >= 1 }) {
			t.Fatal("the due call was not checked")
		}
		s.setState("call-1", "completed")
		if !waitFor(3*time.Second, func() bool { return len(s.appliedPatches()) == 1 }) {
			t.Fatalf("not applied after completion; requests %d", len(s.requests()))
		}
		if !waitFor(3*time.Second, func() bool { p, _ := q.Pending(ctx, "call-1"); return len(p) == 0 }) {
			t.Error("the applied entry is still waiting")
		}
	})
	t.Run("operations#completion-and-dead-letters Wake drains a woken call at once, not at the next poll", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		q := queue.NewMemory()
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), time.Now)
		d.Interval = time.Hour // polls every second
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		defer func() { cancel(); <-done }()
		time.Sleep(30 * time.Millisecond) // let the first check pass
		enqueue(t, q, "call-1", "req-1", revenuePatch, time.Now(), time.Now().Add(time.Hour))
		start := time.Now()
		if pending, _ := q.Wake(ctx, "call-1", time.Now()); !pending {
			t.Fatal("queue.Wake: no entries")
		}
		d.Wake()
		if !waitFor(3*time.Second, func() bool { return len(s.appliedPatches()) == 1 }) {
			t.Fatal("not applied after Wake")
		}
		if took := time.Since(start); took > 900*time.Millisecond {
			t.Errorf("applied %v after Wake, want well before the 1s poll", took)
		}
	})
	t.Run("operations#the-queue-in-production a stop lets the send in flight finish, records it and releases the lease", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-1", "completed", "acct_1")
		arrived, answer := make(chan struct{}, 1), make(chan struct{})
		s.setHook(func(_ http.ResponseWriter, r *http.Request, _ int, _ string, _ []byte) bool {
			arrived <- struct{}{}
			select {
			case <-answer:
			case <-r.Context().Done(): // the drainer cut it: the test has failed, don't hang its cleanup
			}
			return false // then applied as usual
		})
		q := queue.NewMemory()
		enqueue(t, q, "call-1", "req-1", revenuePatch, time.Now(), time.Now())
		enqueue(t, q, "call-1", "req-2", revenuePatch, time.Now(), time.Now())
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 5 * time.Second }), time.Now)
		d.Timeout = 5 * time.Second
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		<-arrived
		cancel()
		select {
		case <-done:
			t.Fatal("Run returned with a send in flight: a reload would cut it and send it again")
		case <-time.After(100 * time.Millisecond):
		}
		close(answer)
		<-done
		if n := len(s.appliedPatches()); n != 1 {
			t.Errorf("%d updates applied, want the one in flight and nothing after the stop", n)
		}
		bg := context.Background()
		if p, _ := q.Pending(bg, "call-1"); len(p) != 1 || p[0].RequestID != "req-2" {
			t.Errorf("waiting %+v, want the applied update removed and the next kept", p)
		}
		if ok, _ := q.Claim(bg, "call-1", "other-instance", time.Second); !ok {
			t.Error("the lease was not released on stop")
		}
	})
	t.Run("operations#the-queue-in-production a stop waits for an unanswered send no longer than its attempt's timeout", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(func(_ http.ResponseWriter, r *http.Request, _ int, _ string, _ []byte) bool {
			s.hang(r)
			return true
		})
		q := queue.NewMemory()
		enqueue(t, q, "call-1", "req-1", revenuePatch, time.Now(), time.Now())
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 300 * time.Millisecond }), time.Now)
		d.Timeout = time.Hour
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); d.Run(ctx) }()
		if !waitFor(3*time.Second, func() bool { return len(s.requests()) == 1 }) {
			cancel()
			<-done
			t.Fatal("the due call was not sent")
		}
		cancel()
		<-done
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d requests, want no attempt after the stop", n)
		}
		bg := context.Background()
		if p, _ := q.Pending(bg, "call-1"); len(p) != 1 {
			t.Errorf("%d entries waiting, want the unapplied update kept", len(p))
		}
		if due, _ := q.Due(bg, time.Now(), 10); len(due) != 1 {
			t.Errorf("due %v, want the call due again at once for the next drainer", due)
		}
	})
}

// dueCountingQueue counts the periodic checks of the due index.
type dueCountingQueue struct {
	*queue.Memory
	dues atomic.Int64
}

func (q *dueCountingQueue) Due(ctx context.Context, now time.Time, limit int) ([]queue.Due, error) {
	q.dues.Add(1)
	return q.Memory.Due(ctx, now, limit)
}

func TestDrainerRunDoesNotSpinOnLeasedCalls(t *testing.T) {
	t.Run("operations#several-instances due calls leased by another instance do not make the periodic check spin", func(t *testing.T) {
		// Not parallel: a spinning drainer burns CPU that the timing of other
		// tests would feel.
		// operations#several-instances: with several instances on one Redis, calls another instance
		// is draining stay due. The check must wait for the next poll, not
		// query the due index again and again for as long as they stay leased.
		s := newStoreDouble(t)
		q := &dueCountingQueue{Memory: queue.NewMemory()}
		ctx := context.Background()
		for i := range 20 {
			id := "call-" + strconv.Itoa(i)
			enqueue(t, q, id, "req", revenuePatch, time.Now(), time.Now())
			if ok, _ := q.Claim(ctx, id, "other-instance", time.Minute); !ok {
				t.Fatal("claim")
			}
		}
		d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), time.Now)
		d.Interval = time.Second
		d.Workers = 2 // checks 8 calls at a time
		runCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		d.Run(runCtx)
		if n := q.dues.Load(); n > 5 {
			t.Errorf("%d checks of the due index in 200ms with a 1s poll: the drainer spins on calls it cannot claim", n)
		}
		if n := len(s.requests()); n != 0 {
			t.Errorf("%d requests sent for calls another instance holds", n)
		}
	})
}
