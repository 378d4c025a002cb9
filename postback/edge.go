package postback

import (
	"context"
	"sync"
	"sync/atomic"
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
	Now           func() time.Time
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
	// The deadline travels beside ctx, not in it: a context and a timer per
	// request were 2.7% of Caddy's CPU under load (BENCHMARKS.md).
	now := e.now()
	deadline := time.Now().Add(e.Deadline)
	t := Target{Account: w.Account, Webhook: w.Name, RequestID: requestID}
	t.TraceParent, t.TraceState = traceOf(ctx)
	res := &Result{Ignored: req.Ignored}
	ids := req.CallLogIDs
	if req.PhoneNumber != "" {
		held := e.acquire(ctx, deadline)
		id, out := e.Store.resolveBy(ctx, deadline, t, req.PhoneNumber)
		e.release(held)
		if out.Class != Applied {
			// The phone number stands in the failed list, so that a partner
			// who checks failed_call_log_ids sees the failure (README).
			res.Calls = []CallResult{{CallLogID: req.PhoneNumber, Outcome: out}}
			return res
		}
		ids = []string{id}
	}
	patch := req.Update.AppendPatch(make([]byte, 0, 256))
	res.Calls = make([]CallResult, len(ids))
	if len(ids) == 1 {
		res.Calls[0] = CallResult{ids[0], e.updateCall(ctx, deadline, t, ids[0], patch, now)}
		return res
	}
	// A fixed pool of workers takes the calls in order: no goroutine or
	// channel per call.
	workers := min(len(ids), max(e.MaxConcurrency, 1))
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(ids) {
					return
				}
				res.Calls[i] = CallResult{ids[i], e.updateCall(ctx, deadline, t, ids[i], patch, now)}
			}
		}()
	}
	wg.Wait()
	return res
}

// updateCall applies the ordering rule of operations#order and the queueing of operations#the-queue.
func (e *Edge) updateCall(ctx context.Context, deadline time.Time, t Target, id string, patch []byte, now time.Time) Outcome {
	entry := queue.Entry{CallLogID: id, Account: t.Account, Webhook: t.Webhook, RequestID: t.RequestID, AcceptedAt: now, Patch: patch,
		TraceParent: t.TraceParent, TraceState: t.TraceState}
	due := now.Add(e.DrainInterval)
	// Behind waiting updates, a new one waits too. If the queue cannot
	// answer, the update goes to the call store: completed calls keep being
	// served while the queue is down (README, "When Redis is down").
	if appended, err := e.Queue.Append(ctx, &entry, true, due); err == nil && appended {
		return Outcome{Class: Queued}
	}
	held := e.acquire(ctx, deadline)
	out := e.Store.patchBy(ctx, deadline, t, id, patch)
	e.release(held)
	if out.Class != Live {
		return out
	}
	if _, err := e.Queue.Append(ctx, &entry, false, due); err != nil {
		return Outcome{Class: QueueUnavailable, Message: "the call is in progress and the update could not be queued"}
	}
	return Outcome{Class: Queued}
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
