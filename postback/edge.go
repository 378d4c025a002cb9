package postback

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// Edge applies validated postbacks: one call-store update per call,
// concurrently, with updates for calls in progress held in the queue
// (docs/operations.md#call-store-api, operations#the-queue).
type Edge struct {
	Store *CallStore
	Queue queue.Queue
	// MaxConcurrency bounds the fan-out of one request (operations#connections-and-deadlines).
	MaxConcurrency int
	// Deadline bounds the whole fan-out of one request, retries included.
	Deadline time.Duration
	// DrainInterval is when a newly queued call is first checked (operations#the-queue).
	DrainInterval time.Duration
	// UpstreamLimit, when set, bounds call-store requests across all requests.
	UpstreamLimit *ConcurrencyLimit
	// MaxPending bounds the updates waiting for one call; one more fails
	// with too_many_pending (operations#the-queue-in-production). 0: no bound.
	MaxPending int
	// OrderingSkipped, when set, hears of each call sent to the call store
	// without the ordering check because the queue could not answer
	// (operations#when-redis-is-down).
	OrderingSkipped func(callLogID string, err error)
	// QueueTimeout is how long the queue client waits for one command, 0
	// when the queue answers at once (memory); an ordering check not
	// answered within two of them (one for the pipeline ahead of it, one
	// for its own) is given up.
	QueueTimeout time.Duration
	Now          func() time.Time
}

// CallResult is the outcome of one call of a postback.
type CallResult struct {
	CallLogID string
	Outcome
}

// Result is what a postback did, in the order its calls were given.
type Result struct {
	Calls   []CallResult
	Ignored []string
	// DryRun marks the answer of a dry run, which carries Patch, the body
	// a real request would send (docs/partner-api.md#dry-run).
	DryRun bool
	Patch  []byte
}

// Apply updates every call of req on behalf of webhook w. It never fails
// as a whole: each call gets its own outcome (partner-api#responses).
func (e *Edge) Apply(ctx context.Context, w *Webhook, requestID string, req *Request) *Result {
	return e.apply(ctx, w, requestID, req, nil)
}

// ApplyKnowing is Apply for a postback whose calls (by id, not by phone
// number) the queue was asked about beforehand: nothing[i] says that call
// i had no updates waiting (queue.NothingWaiter), so its ordering check is
// not sent again. The answer counts as the check, taken a round trip
// earlier: as with any check, the decision stands for the PATCH that
// follows.
func (e *Edge) ApplyKnowing(ctx context.Context, w *Webhook, requestID string, req *Request, nothing []bool) *Result {
	if req.PhoneNumber != "" || len(nothing) != len(req.CallLogIDs) {
		nothing = nil
	}
	return e.apply(ctx, w, requestID, req, nothing)
}

func (e *Edge) apply(ctx context.Context, w *Webhook, requestID string, req *Request, nothing []bool) *Result {
	// A partner's hang-up cancels nothing already started: the call-store
	// requests and the appends run to the deadline on a context of their
	// own, so a call the call store found live is queued all the same
	// (operations#delivery-guarantee).
	ctx = context.WithoutCancel(ctx)
	// The deadline travels beside ctx, not in it: a context and a timer per
	// request were 2.7% of Caddy's CPU under load (BENCHMARKS.md).
	now := e.now()
	deadline := time.Now().Add(e.Deadline)
	t := Target{Account: w.Account, Webhook: w.Name, RequestID: requestID}
	t.TraceParent, t.TraceState = traceOf(ctx)
	ids := req.CallLogIDs
	if req.PhoneNumber != "" {
		held := e.acquire(ctx, deadline)
		id, out := e.Store.resolveBy(ctx, deadline, t, req.PhoneNumber)
		e.release(held)
		if out.Class != Applied {
			// The phone number stands in the failed list, so that a partner
			// who checks failed_call_log_ids sees the failure (README).
			return &Result{Ignored: req.Ignored, Calls: []CallResult{{CallLogID: req.PhoneNumber, Outcome: out}}}
		}
		ids = []string{id}
	}
	var (
		res     *Result
		patch   []byte
		entries []queue.Entry
		batch   []*queue.Entry
		send    []pendingSend
	)
	if len(ids) == 1 {
		one := new(oneCall)
		res, patch = &one.res, one.patch[:0]
		res.Calls, entries, batch, send = one.call[:], one.entry[:], one.batch[:], one.send[:0]
	} else {
		res, patch = new(Result), make([]byte, 0, 256)
		res.Calls = make([]CallResult, len(ids))
		entries = make([]queue.Entry, len(ids))
		batch = make([]*queue.Entry, len(ids))
		send = make([]pendingSend, 0, len(ids))
	}
	res.Ignored = req.Ignored
	patch = req.Update.AppendPatch(patch)
	for i, id := range ids {
		entries[i] = queue.Entry{UpdateID: newUpdateID(), CallLogID: id, Account: t.Account, Webhook: t.Webhook, RequestID: t.RequestID, AcceptedAt: now, Patch: patch,
			TraceParent: t.TraceParent, TraceState: t.TraceState}
		batch[i] = &entries[i]
	}
	// The ordering check of operations#order, for every call in one round
	// trip (a second for calls with updates waiting): behind waiting
	// updates, a new one waits too.
	opts := queue.AppendOptions{IfPending: true, Due: now.Add(e.DrainInterval), MaxPending: e.MaxPending}
	if e.QueueTimeout > 0 {
		// Given up on, the check is followed by a send to the call store:
		// a copy of it that reaches Redis later must not queue the update too.
		opts.NotAfter = time.Now().Add(2 * e.QueueTimeout)
	}
	checks := e.check(ctx, batch, opts, nothing)
	for i, c := range checks {
		res.Calls[i].CallLogID = ids[i]
		switch {
		case c.Err == nil && c.Appended:
			res.Calls[i].Outcome = Outcome{Class: Queued}
		case errors.Is(c.Err, queue.ErrTooManyPending):
			res.Calls[i].Outcome = tooManyPending
		case c.Err != nil:
			// The queue cannot answer: the update goes to the call store,
			// so completed calls keep being served while the queue is down
			// (operations#when-redis-is-down).
			if e.OrderingSkipped != nil {
				e.OrderingSkipped(ids[i], c.Err)
			}
			send = append(send, pendingSend{i, !c.Unwritten})
		default:
			send = append(send, pendingSend{i, false})
		}
	}
	opts.IfPending = false
	if e.QueueTimeout > 0 {
		// A 503 at the deadline must mean "not stored", also for a copy
		// of the append that reaches Redis later; the margin covers a
		// small difference between this host's clock and Redis's.
		opts.NotAfter = deadline.Add(-min(time.Second, e.Deadline/10))
	}
	if len(send) == 1 {
		e.updateCall(ctx, deadline, t, res, entries, send[0], opts)
		return res
	}
	fanOut(len(send), e.MaxConcurrency, func(i int) {
		e.updateCall(ctx, deadline, t, res, entries, send[i], opts)
	})
	return res
}

// check runs the ordering check of batch, but for the calls that nothing
// (when not nil) says had no updates waiting: those are neither appended
// nor in error, and go to the call store.
func (e *Edge) check(ctx context.Context, batch []*queue.Entry, opts queue.AppendOptions, nothing []bool) []queue.AppendResult {
	if nothing == nil {
		return e.Queue.AppendAll(ctx, batch, opts)
	}
	return queue.AppendSome(batch, nothing, func(some []*queue.Entry) []queue.AppendResult {
		return e.Queue.AppendAll(ctx, some, opts)
	})
}

// oneCall is what a postback of one call needs, in one allocation: the
// most common postback, whose separate slices were 5 of its allocations.
type oneCall struct {
	res   Result
	call  [1]CallResult
	entry [1]queue.Entry
	batch [1]*queue.Entry
	send  [1]pendingSend
	patch [192]byte
}

// pendingSend is a call of a postback still to be sent to the call store;
// unsettled when its ordering check sent an append that got no answer, a
// copy of which may still store the update.
type pendingSend struct {
	i         int
	unsettled bool
}

var tooManyPending = Outcome{Class: TooManyPending, Message: "this call already has the most updates allowed waiting for it; send again once it completes"}

// updateCall sends call s.i to the call store and queues it if the call is
// live (operations#the-queue).
func (e *Edge) updateCall(ctx context.Context, deadline time.Time, t Target, res *Result, entries []queue.Entry, s pendingSend, opts queue.AppendOptions) {
	i := s.i
	entry := &entries[i]
	held := e.acquire(ctx, deadline)
	out := e.Store.patchBy(ctx, deadline, t, entry.CallLogID, entry.Patch)
	e.release(held)
	if out.Class != Live {
		if s.unsettled {
			// A copy of an unanswered append behind waiting updates may
			// still reach the queue and store the update: settle it, so
			// that it does not. One try: the queue is likely still down,
			// and completed calls must keep being served quickly. A check
			// that failed before writing anything needs none.
			sctx, cancel := context.WithDeadline(ctx, deadline)
			_, _ = e.Queue.Settle(sctx, entry.CallLogID, entry.UpdateID)
			cancel()
		}
		res.Calls[i].Outcome = out
		return
	}
	res.Calls[i].Outcome = e.enqueue(ctx, deadline, entry, opts)
}

// enqueue appends a live call's update. An append without answer is
// settled before the partner is answered, where the deadline allows, so
// that a 503 means "not stored" (operations#delivery-guarantee).
func (e *Edge) enqueue(ctx context.Context, deadline time.Time, entry *queue.Entry, opts queue.AppendOptions) Outcome {
	r := e.Queue.AppendAll(ctx, []*queue.Entry{entry}, opts)[0]
	switch {
	case r.Err == nil && r.Appended:
		return Outcome{Class: Queued}
	case errors.Is(r.Err, queue.ErrTooManyPending):
		return tooManyPending
	}
	stored, known := e.settle(ctx, deadline, entry)
	switch {
	case stored:
		return Outcome{Class: Queued}
	case known:
		return Outcome{Class: QueueUnavailable, Message: "the call is in progress and the update could not be queued"}
	}
	return Outcome{Class: QueueUnavailable, Message: "the call is in progress and the queue did not answer; the update may still be applied"}
}

// settle asks the queue, until the deadline, whether an append without
// answer stored the update; known is false when the queue never answered.
// A question is out nearly all the time (a question a stalled Redis holds
// takes the client's timeout to fail, and the next follows 25 ms later), so
// that an append a resumed Redis runs before its NotAfter is learned of
// before the deadline; only questions that fail at once (Redis refuses
// connections) back off, to 500 ms.
func (e *Edge) settle(ctx context.Context, deadline time.Time, entry *queue.Entry) (stored, known bool) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	wait := settlePause
	for {
		asked := time.Now()
		stored, err := e.Queue.Settle(ctx, entry.CallLogID, entry.UpdateID)
		if err == nil {
			return stored, true
		}
		if time.Since(asked) < wait {
			wait = min(2*wait, 500*time.Millisecond)
		} else {
			wait = settlePause
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false, false
		case <-timer.C:
		}
	}
}

// settlePause is the pause between two questions of settle that each
// waited for Redis.
const settlePause = 25 * time.Millisecond

// newUpdateID names one accepted update of one call before its first
// append attempt (operations#delivery-guarantee): 96 random bits, in the
// 16 characters of unpadded base64url, since it is stored twice per update.
func newUpdateID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func (e *Edge) acquire(ctx context.Context, deadline time.Time) bool {
	return e.UpstreamLimit != nil && e.UpstreamLimit.Acquire(ctx, deadline)
}

func (e *Edge) release(held bool) {
	if held {
		e.UpstreamLimit.Release()
	}
}

func (e *Edge) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}
