package postback

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

var edgeTestNow = time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)

// revenueUpdate is the update of {"revenue_paid_out": amount}.
func revenueUpdate(amount string) Update {
	return Update{Set: fieldSet(1) << fieldRevenue, Revenue: amount}
}

func revenueRequest(ids ...string) *Request {
	return &Request{CallLogIDs: ids, Batch: len(ids) > 1, Update: revenueUpdate("25.50")}
}

func acmeWebhook(t *testing.T) *Webhook {
	t.Helper()
	w, err := NewWebhook("acme", TypeUpdateFields, "acct_1", "acme-secret", "")
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func newTestEdge(t *testing.T, s *storeDouble, q queue.Queue) *Edge {
	t.Helper()
	return &Edge{
		Store:          newTestCallStore(t, s.srv.URL),
		Queue:          q,
		MaxConcurrency: 4,
		Deadline:       5 * time.Second,
		DrainInterval:  5 * time.Second,
		Now:            func() time.Time { return edgeTestNow },
	}
}

// outcomes renders a result as "id:code" in order.
func outcomes(r *Result) string {
	var parts []string
	for _, c := range r.Calls {
		parts = append(parts, c.CallLogID+":"+c.Class.Code())
	}
	return strings.Join(parts, " ")
}

// appendFailingQueue is a queue whose Append fails while failing is set,
// as Redis does when it is down.
type appendFailingQueue struct {
	*queue.Memory
	mu      sync.Mutex
	failing bool
}

var errQueueDown = errors.New("queue: connection refused")

func (q *appendFailingQueue) setFailing(v bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.failing = v
}

func (q *appendFailingQueue) Append(ctx context.Context, e *queue.Entry, ifPending bool, due time.Time) (bool, error) {
	q.mu.Lock()
	failing := q.failing
	q.mu.Unlock()
	if failing {
		return false, errQueueDown
	}
	return q.Memory.Append(ctx, e, ifPending, due)
}

func (q *appendFailingQueue) AppendAll(ctx context.Context, entries []*queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	q.mu.Lock()
	failing := q.failing
	q.mu.Unlock()
	if failing {
		results := make([]queue.AppendResult, len(entries))
		for i := range results {
			results[i].Err = errQueueDown
		}
		return results
	}
	return q.Memory.AppendAll(ctx, entries, opts)
}

func (q *appendFailingQueue) Settle(ctx context.Context, callLogID, updateID string) (bool, error) {
	q.mu.Lock()
	failing := q.failing
	q.mu.Unlock()
	if failing {
		return false, errQueueDown
	}
	return q.Memory.Settle(ctx, callLogID, updateID)
}

func TestEdgeSingleCall(t *testing.T) {
	t.Parallel()
	t.Run("operations#updating-a-call partner-api#responses a single call is patched with the webhook's headers and reported applied", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("abc-123", "completed", "acct_1")
		e := newTestEdge(t, s, queue.NewMemory())
		req := revenueRequest("abc-123")
		req.Ignored = []string{"sub1"}
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", req)
		if got := outcomes(res); got != "abc-123:applied" {
			t.Errorf("outcomes %s, want abc-123:applied", got)
		}
		applied := s.appliedPatches()
		if len(applied) != 1 || applied[0].body != revenuePatch {
			t.Fatalf("call store applied %v, want one PATCH %s", s.appliedBodies(), revenuePatch)
		}
		h := applied[0].header
		if h.Get("X-Account-Id") != "acct_1" || h.Get("X-Postback-Webhook") != "acme" || h.Get("X-Request-Id") != "req-1" {
			t.Errorf("headers %v, want the webhook's account and name and the request id", h)
		}
		body, status := AppendResponse(nil, res)
		if want := `{"call_log_ids":["abc-123"],"failed_call_log_ids":[],"ignored":["sub1"]}`; status != 200 || string(body) != want {
			t.Errorf("response %d %s, want 200 %s", status, body, want)
		}
	})
}

func TestEdgeBatchOutcomesInOrder(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#responses partner-api#batches a batch reports every call in the order given; one failure never blocks the rest", func(t *testing.T) {
		// partner-api#responses: one failed call never blocks the rest; the lists keep the
		// order the partner gave.
		s := newStoreDouble(t)
		s.addCall("done-1", "completed", "acct_1")
		s.addCall("live-1", "live", "acct_1")
		s.addCall("rej-1", "completed", "acct_1")
		s.setReject("rej-1", "revenue above the campaign cap")
		s.addCall("done-2", "completed", "acct_1")
		s.addCall("other-acct", "completed", "acct_2")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		ids := []string{"done-1", "missing", "live-1", "rej-1", "done-2", "other-acct"}
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest(ids...))
		want := "done-1:applied missing:not_found live-1:queued rej-1:rejected done-2:applied other-acct:not_found"
		if got := outcomes(res); got != want {
			t.Errorf("outcomes\n%s\nwant\n%s", got, want)
		}
		body, status := AppendResponse(nil, res)
		wantBody := `{"call_log_ids":["done-1","live-1","done-2"],` +
			`"failed_call_log_ids":["missing","rej-1","other-acct"],` +
			`"queued_call_log_ids":["live-1"],` +
			`"errors":{"missing":{"code":"not_found","message":"call not found"},` +
			`"rej-1":{"code":"rejected","message":"revenue above the campaign cap"},` +
			`"other-acct":{"code":"not_found","message":"call not found"}}}`
		if status != http.StatusOK || string(body) != wantBody {
			t.Errorf("response %d\n%s\nwant 200\n%s", status, body, wantBody)
		}
		if got := s.appliedBodies(); len(got) != 2 {
			t.Errorf("call store applied %v, want done-1 and done-2", got)
		}
	})
}

func TestEdgeLiveCallQueued(t *testing.T) {
	t.Parallel()
	t.Run("operations#the-queue a live call's update waits in the queue with its PATCH body: 202", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("live-1", "live", "acct_1")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest("live-1"))
		body, status := AppendResponse(nil, res)
		if want := `{"call_log_ids":["live-1"],"failed_call_log_ids":[],"queued_call_log_ids":["live-1"]}`; status != http.StatusAccepted || string(body) != want {
			t.Errorf("partner-api#status-codes response %d %s, want 202 %s", status, body, want)
		}
		ctx := context.Background()
		pending, _ := q.Pending(ctx, "live-1")
		if len(pending) != 1 {
			t.Fatalf("operations#the-queue %d entries waiting, want 1", len(pending))
		}
		p := pending[0]
		if string(p.Patch) != revenuePatch || p.CallLogID != "live-1" || p.Account != "acct_1" || p.Webhook != "acme" || p.RequestID != "req-1" || !p.AcceptedAt.Equal(edgeTestNow) {
			t.Errorf("operations#the-queue entry %+v (patch %s), want the PATCH body, account, webhook, request id and acceptance time", p, p.Patch)
		}
		if due, _ := q.Due(ctx, edgeTestNow.Add(e.DrainInterval-time.Millisecond), 10); len(due) != 0 {
			t.Errorf("operations#the-queue due before drain_interval: %v", due)
		}
		if due, _ := q.Due(ctx, edgeTestNow.Add(e.DrainInterval), 10); len(due) != 1 || due[0].CallLogID != "live-1" || due[0].Attempt != 0 {
			t.Errorf("operations#the-queue due after drain_interval: %v, want live-1 at attempt 0", due)
		}
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d call-store requests, want the one 409", n)
		}
	})
}

func TestEdgeWaitingCallQueuedWithoutCallStore(t *testing.T) {
	t.Parallel()
	t.Run("operations#order a call with waiting updates is queued behind them without touching the call store", func(t *testing.T) {
		// operations#order: a call with updates waiting takes a new one behind them,
		// without a request to the call store, even once the call completed;
		// draining then applies them in the order accepted.
		s := newStoreDouble(t)
		s.addCall("call-1", "live", "acct_1")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		w := acmeWebhook(t)
		if got := outcomes(e.Apply(context.Background(), w, "req-1", revenueRequest("call-1"))); got != "call-1:queued" {
			t.Fatalf("first update: %s, want queued", got)
		}
		s.setState("call-1", "completed")
		second := &Request{CallLogIDs: []string{"call-1"}, Update: revenueUpdate("30")}
		if got := outcomes(e.Apply(context.Background(), w, "req-2", second)); got != "call-1:queued" {
			t.Errorf("second update: %s, want queued behind the first", got)
		}
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d call-store requests, want only the first 409", n)
		}
		pending, _ := q.Pending(context.Background(), "call-1")
		if len(pending) != 2 || string(pending[0].Patch) != revenuePatch || string(pending[1].Patch) != `{"revenue_paid_out":30}` || pending[1].RequestID != "req-2" {
			t.Fatalf("waiting %+v, want 25.50 then 30", pending)
		}
		d := newTestDrainer(q, e.Store, func() time.Time { return edgeTestNow })
		d.DrainCall(context.Background(), "call-1", 0)
		if got, want := strings.Join(s.appliedBodies(), " | "), `call-1 {"revenue_paid_out":25.50} | call-1 {"revenue_paid_out":30}`; got != want {
			t.Errorf("applied %s, want %s", got, want)
		}
	})
}

func TestEdgeQueueUnavailable(t *testing.T) {
	t.Parallel()
	t.Run("operations#the-queue a queue that cannot take an update: the live call is queue_unavailable, completed calls still apply", func(t *testing.T) {
		// operations#the-queue: nothing is accepted that is not stored; completed calls are
		// still served while the queue is down.
		s := newStoreDouble(t)
		s.addCall("live-1", "live", "acct_1")
		s.addCall("done-1", "completed", "acct_1")
		q := &appendFailingQueue{Memory: queue.NewMemory(), failing: true}
		e := newTestEdge(t, s, q)
		// The edge asks the queue until the deadline whether the append
		// stored the update; this one never answers.
		e.Deadline = 500 * time.Millisecond
		w := acmeWebhook(t)

		res := e.Apply(context.Background(), w, "req-1", revenueRequest("live-1", "done-1"))
		if got := outcomes(res); got != "live-1:queue_unavailable done-1:applied" {
			t.Errorf("outcomes %s, want live-1:queue_unavailable done-1:applied", got)
		}
		if _, status := AppendResponse(nil, res); status != http.StatusOK {
			t.Errorf("status %d, want 200 (some applied, some failed)", status)
		}

		res = e.Apply(context.Background(), w, "req-2", revenueRequest("live-1"))
		body, status := AppendResponse(nil, res)
		if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"live-1":{"code":"queue_unavailable"`) {
			t.Errorf("response %d %s, want 503 queue_unavailable", status, body)
		}
		if st, _ := q.Stats(context.Background()); st.PendingEntries != 0 {
			t.Errorf("queue holds %d entries, want none", st.PendingEntries)
		}
	})
}

// When the queue cannot answer whether a call has updates waiting, the
// edge serves completed calls all the same, as issue 3 asks; the README
// ("When Redis is down") says what this costs the ordering rule of operations#order.
func TestEdgeQueueErrorServesCompletedCalls(t *testing.T) {
	t.Parallel()
	t.Run("operations#order while the queue errs, a completed call's update is applied and reported applied", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("call-1", "live", "acct_1")
		q := &appendFailingQueue{Memory: queue.NewMemory()}
		e := newTestEdge(t, s, q)
		w := acmeWebhook(t)
		older := &Request{CallLogIDs: []string{"call-1"}, Update: revenueUpdate("10")}
		if got := outcomes(e.Apply(context.Background(), w, "req-1", older)); got != "call-1:queued" {
			t.Fatalf("older update: %s, want queued", got)
		}
		s.setState("call-1", "completed")
		q.setFailing(true)
		newer := &Request{CallLogIDs: []string{"call-1"}, Update: revenueUpdate("20")}
		res := e.Apply(context.Background(), w, "req-2", newer)
		q.setFailing(false)
		if got := outcomes(res); got != "call-1:applied" {
			t.Fatalf("newer update while the queue errs: %s, want call-1:applied", got)
		}
		newTestDrainer(q, e.Store, func() time.Time { return edgeTestNow }).DrainCall(context.Background(), "call-1", 0)
		// The documented cost: the older update, drained later, lands last.
		applied := s.appliedBodies()
		if len(applied) != 2 || applied[0] != `call-1 {"revenue_paid_out":20}` || applied[1] != `call-1 {"revenue_paid_out":10}` {
			t.Fatalf("applied in order %q", applied)
		}
	})
}

func TestEdgePhoneNumber(t *testing.T) {
	t.Parallel()
	s := newStoreDouble(t)
	s.addCall("call-new", "completed", "acct_1")
	s.addCall("call-old", "completed", "acct_1")
	s.addPhone("+15551234567", "call-new", "call-old")
	s.addCall("call-live", "live", "acct_1")
	s.addPhone("+15557654321", "call-live")
	s.addCall("call-b", "completed", "acct_2")
	s.addPhone("+442079460958", "call-b")
	q := queue.NewMemory()
	e := newTestEdge(t, s, q)
	w := acmeWebhook(t)
	apply := func(phone string) (*Result, string, int) {
		res := e.Apply(context.Background(), w, "req-1", &Request{PhoneNumber: phone, Update: revenueUpdate("25.50")})
		body, status := AppendResponse(nil, res)
		return res, string(body), status
	}

	t.Run("partner-api#identifying-calls operations#finding-a-call-by-phone-number the most recent call of the number is updated and listed", func(t *testing.T) {
		res, body, status := apply("+15551234567")
		if got := outcomes(res); got != "call-new:applied" || status != 200 || body != `{"call_log_ids":["call-new"],"failed_call_log_ids":[]}` {
			t.Errorf("%s: %d %s", got, status, body)
		}
		if got := s.appliedBodies(); len(got) != 1 || got[0] != "call-new "+revenuePatch {
			t.Errorf("applied %v, want call-new only", got)
		}
	})
	t.Run("operations#finding-a-call-by-phone-number operations#the-queue a resolved live call is queued under its id", func(t *testing.T) {
		res, _, status := apply("+15557654321")
		if got := outcomes(res); got != "call-live:queued" || status != http.StatusAccepted {
			t.Errorf("%s %d, want call-live:queued 202", got, status)
		}
		if p, _ := q.Pending(context.Background(), "call-live"); len(p) != 1 {
			t.Errorf("%d entries waiting for call-live, want 1", len(p))
		}
	})
	t.Run("operations#finding-a-call-by-phone-number a number without a call is not_found, listed under the number", func(t *testing.T) {
		res, body, status := apply("+15550000000")
		if got := outcomes(res); got != "+15550000000:not_found" || status != http.StatusNotFound || !strings.Contains(body, `"failed_call_log_ids":["+15550000000"]`) {
			t.Errorf("%s: %d %s", got, status, body)
		}
	})
	t.Run("partner-api#accounts a number whose call is another account's is not_found", func(t *testing.T) {
		res, _, status := apply("+442079460958")
		if got := outcomes(res); got != "+442079460958:not_found" || status != http.StatusNotFound {
			t.Errorf("%s %d, want not_found 404", got, status)
		}
	})
	t.Run("operations#finding-a-call-by-phone-number a look-up the call store cannot answer is upstream_error", func(t *testing.T) {
		s2 := newStoreDouble(t)
		s2.setHook(answerWith(500, `{}`))
		e2 := newTestEdge(t, s2, queue.NewMemory())
		var deadline time.Duration
		e2.Store, deadline = untilDeadlineClient(t, s2.srv.URL)
		e2.Deadline = deadline
		res := e2.Apply(context.Background(), w, "req-1", &Request{PhoneNumber: "+15551234567", Update: revenueUpdate("1")})
		if _, status := AppendResponse(nil, res); outcomes(res) != "+15551234567:upstream_error" || status != http.StatusBadGateway {
			t.Errorf("%s %d, want upstream_error 502", outcomes(res), status)
		}
		for _, r := range s2.requests() {
			if r.method != http.MethodGet {
				t.Errorf("a %s was sent though the number did not resolve", r.method)
			}
		}
	})
}

func manyCalls(s *storeDouble, prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = prefix + strconv.Itoa(i)
		s.addCall(ids[i], "completed", "acct_1")
	}
	return ids
}

func TestEdgeMaxConcurrency(t *testing.T) {
	t.Parallel()
	t.Run("operations#connections-and-deadlines the fan-out is concurrent and bounded by max_concurrency", func(t *testing.T) {
		// operations#connections-and-deadlines: the fan-out of one batch is concurrent, bounded by
		// max_concurrency.
		s := newStoreDouble(t)
		ids := manyCalls(s, "c-", 24)
		s.setDelay(15 * time.Millisecond)
		e := newTestEdge(t, s, queue.NewMemory())
		e.MaxConcurrency = 4
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest(ids...))
		for i, c := range res.Calls {
			if c.CallLogID != ids[i] || c.Class != Applied {
				t.Errorf("call %d: %s %s, want %s applied", i, c.CallLogID, c.Class.Code(), ids[i])
			}
		}
		if peak := s.peakInFlight(); peak > 4 || peak < 2 {
			t.Errorf("peak in flight %d, want 2..4", peak)
		}
	})
}

func TestEdgeLimiterAcrossRequests(t *testing.T) {
	t.Parallel()
	t.Run("operations#connections-and-deadlines the limiter bounds call-store requests across concurrent postbacks", func(t *testing.T) {
		// max_upstream bounds the call-store requests of all postbacks at once.
		s := newStoreDouble(t)
		s.setDelay(15 * time.Millisecond)
		e := newTestEdge(t, s, queue.NewMemory())
		e.MaxConcurrency = 8
		e.UpstreamLimit = NewConcurrencyLimit(3)
		w := acmeWebhook(t)
		var wg sync.WaitGroup
		results := make([]*Result, 2)
		for i := range results {
			ids := manyCalls(s, "r"+strconv.Itoa(i)+"-", 12)
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = e.Apply(context.Background(), w, "req-"+strconv.Itoa(i), revenueRequest(ids...))
			}()
		}
		wg.Wait()
		for i, r := range results {
			for _, c := range r.Calls {
				if c.Class != Applied {
					t.Errorf("request %d: %s %s, want applied", i, c.CallLogID, c.Class.Code())
				}
			}
		}
		if peak := s.peakInFlight(); peak > 3 || peak < 2 {
			t.Errorf("peak in flight %d across two postbacks, want 2..3", peak)
		}
		if n := len(s.appliedPatches()); n != 24 {
			t.Errorf("%d applied, want 24", n)
		}
	})
}

func TestEdgeDeadlineBoundsFanOut(t *testing.T) {
	t.Parallel()
	t.Run("operations#connections-and-deadlines a hanging call store: every call upstream_timeout, 504, within the deadline", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		ids := manyCalls(s, "h-", 8)
		s.setHook(func(_ http.ResponseWriter, r *http.Request, _ int, _ string, _ []byte) bool {
			s.hang(r)
			return true
		})
		e := newTestEdge(t, s, queue.NewMemory())
		e.Store = newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 100 * time.Millisecond })
		e.MaxConcurrency = 2
		e.Deadline = 300 * time.Millisecond
		start := time.Now()
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest(ids...))
		elapsed := time.Since(start)
		if elapsed > 1500*time.Millisecond {
			t.Errorf("Apply took %v, past the 300ms deadline", elapsed)
		}
		for _, c := range res.Calls {
			if c.Class != UpstreamTimeout {
				t.Errorf("%s: %s, want upstream_timeout", c.CallLogID, c.Class.Code())
			}
		}
		if _, status := AppendResponse(nil, res); status != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504", status)
		}
	})
	t.Run("operations#connections-and-deadlines a failing call store: retries stop at the deadline with upstream_error, 502", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		ids := manyCalls(s, "f-", 6)
		s.setHook(answerWith(503, `{}`))
		e := newTestEdge(t, s, queue.NewMemory())
		// Every call at once, each with the attempts of untilDeadlineClient.
		e.Store, e.Deadline = untilDeadlineClient(t, s.srv.URL)
		e.MaxConcurrency = len(ids)
		start := time.Now()
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest(ids...))
		if elapsed := time.Since(start); elapsed > e.Deadline+time.Second {
			t.Errorf("Apply took %v, past the %v deadline", elapsed, e.Deadline)
		}
		if _, status := AppendResponse(nil, res); status != http.StatusBadGateway {
			t.Errorf("status %d (%s), want 502", status, outcomes(res))
		}
	})
	t.Run("operations#delivery-guarantee the partner's hang-up does not end the fan-out: it runs to the deadline", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		ids := manyCalls(s, "x-", 4)
		s.setHook(func(_ http.ResponseWriter, r *http.Request, _ int, _ string, _ []byte) bool {
			s.hang(r)
			return true
		})
		e := newTestEdge(t, s, queue.NewMemory())
		e.Deadline = 600 * time.Millisecond
		res := e.Apply(ctxWithin(t, 50*time.Millisecond), acmeWebhook(t), "req-1", revenueRequest(ids...))
		// Cut by the partner, a call would end "cancelled" (upstream_error).
		for _, c := range res.Calls {
			if c.Class != UpstreamTimeout {
				t.Errorf("%s: %s %q, want upstream_timeout at the deadline", c.CallLogID, c.Class.Code(), c.Message)
			}
		}
	})
}

// lostAnswerQueue stores every append but answers it with an error, as
// Redis does when the reply is lost to a timeout.
type lostAnswerQueue struct{ *queue.Memory }

func (q lostAnswerQueue) AppendAll(ctx context.Context, entries []*queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	results := q.Memory.AppendAll(ctx, entries, opts)
	for i := range results {
		results[i] = queue.AppendResult{Err: errQueueDown}
	}
	return results
}

func TestEdgeSettlesAnAppendWithoutAnswer(t *testing.T) {
	t.Parallel()
	t.Run("operations#delivery-guarantee an append whose answer was lost is found stored: queued, not 503", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("live-1", "live", "acct_1")
		q := lostAnswerQueue{queue.NewMemory()}
		e := newTestEdge(t, s, q)
		res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest("live-1"))
		if got := outcomes(res); got != "live-1:queued" {
			t.Fatalf("outcome %s, want queued", got)
		}
		if pending, _ := q.Pending(context.Background(), "live-1"); len(pending) != 1 {
			t.Fatalf("%d entries waiting, want the update once", len(pending))
		}
	})
}

// uncheckedQueue answers every ordering check with a failure, written or
// not as unwritten says, and counts the Settle questions.
type uncheckedQueue struct {
	*queue.Memory
	unwritten bool
	settled   atomic.Int64
}

func (q *uncheckedQueue) AppendAll(ctx context.Context, entries []*queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	if !opts.IfPending {
		return q.Memory.AppendAll(ctx, entries, opts)
	}
	results := make([]queue.AppendResult, len(entries))
	for i := range results {
		results[i] = queue.AppendResult{Err: errQueueDown, Unwritten: q.unwritten}
	}
	return results
}

func (q *uncheckedQueue) Settle(ctx context.Context, callLogID, updateID string) (bool, error) {
	q.settled.Add(1)
	return q.Memory.Settle(ctx, callLogID, updateID)
}

func TestEdgeSettlesOnlyWhatTheCheckMayHaveWritten(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		unwritten bool
		settles   int64
	}{
		{"operations#when-redis-is-down a check whose read went unanswered wrote nothing: the completed call is applied with no question to settle", true, 0},
		{"operations#when-redis-is-down a check whose append went unanswered may have stored the update: it is settled once", false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStoreDouble(t)
			s.addCall("done-1", "completed", "acct_1")
			q := &uncheckedQueue{Memory: queue.NewMemory(), unwritten: tt.unwritten}
			e := newTestEdge(t, s, q)
			res := e.Apply(context.Background(), acmeWebhook(t), "req-1", revenueRequest("done-1"))
			if got := outcomes(res); got != "done-1:applied" {
				t.Fatalf("outcome %s, want applied", got)
			}
			if n := q.settled.Load(); n != tt.settles {
				t.Errorf("%d questions to settle the update, want %d", n, tt.settles)
			}
			if pending, _ := q.Pending(context.Background(), "done-1"); len(pending) != 0 {
				t.Errorf("%d entries waiting for an applied update, want none", len(pending))
			}
		})
	}
}

func TestEdgeTooManyPending(t *testing.T) {
	t.Parallel()
	t.Run("operations#the-queue-in-production the update past max_pending_per_call is refused with too_many_pending, 429, nothing stored", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("live-1", "live", "acct_1")
		s.addCall("done-1", "completed", "acct_1")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		e.MaxPending = 3
		w := acmeWebhook(t)
		for i := range 3 {
			if got := outcomes(e.Apply(context.Background(), w, fmt.Sprint("req-", i), revenueRequest("live-1"))); got != "live-1:queued" {
				t.Fatalf("update %d: %s, want queued", i, got)
			}
		}
		res := e.Apply(context.Background(), w, "req-4", revenueRequest("live-1"))
		body, status := AppendResponse(nil, res)
		if status != http.StatusTooManyRequests || !strings.Contains(string(body), `"live-1":{"code":"too_many_pending"`) {
			t.Fatalf("response %d %s, want 429 too_many_pending", status, body)
		}
		if pending, _ := q.Pending(context.Background(), "live-1"); len(pending) != 3 {
			t.Fatalf("%d entries waiting, want 3", len(pending))
		}
		// The other calls of a batch are served.
		if got := outcomes(e.Apply(context.Background(), w, "req-5", revenueRequest("live-1", "done-1"))); got != "live-1:too_many_pending done-1:applied" {
			t.Fatalf("batch: %s", got)
		}
	})
}
