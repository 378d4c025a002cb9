package postback

import (
	"context"
	"time"
)

// DryRun answers what Apply would do with req, writing nothing
// (docs/partner-api.md#dry-run): the phone number is resolved and each call looked up, but no
// PATCH is sent and nothing is queued. A call with updates waiting, or
// in progress, is reported as queued, as Apply would queue it. The result
// carries the PATCH body Apply would send.
func (e *Edge) DryRun(ctx context.Context, w *Webhook, requestID string, req *Request) *Result {
	deadline := time.Now().Add(e.Deadline)
	t := Target{Account: w.Account, Webhook: w.Name, RequestID: requestID}
	res := &Result{Ignored: req.Ignored, DryRun: true, Patch: req.Update.AppendPatch(make([]byte, 0, 256))}
	ids := req.CallLogIDs
	if req.PhoneNumber != "" {
		held := e.acquire(ctx, deadline)
		id, out := e.Store.resolveBy(ctx, deadline, t, req.PhoneNumber)
		e.release(held)
		if out.Class != Applied {
			res.Calls = []CallResult{{CallLogID: req.PhoneNumber, Outcome: out}}
			return res
		}
		ids = []string{id}
	}
	res.Calls = make([]CallResult, len(ids))
	fanOut(len(ids), e.MaxConcurrency, func(i int) {
		res.Calls[i] = CallResult{ids[i], e.previewCall(ctx, deadline, t, ids[i])}
	})
	return res
}

// previewCall is updateCall without its writes: the ordering check of
// operations#order reads the queue's head instead of appending, and the call is looked up
// instead of patched.
func (e *Edge) previewCall(ctx context.Context, deadline time.Time, t Target, id string) Outcome {
	// As in updateCall, a queue that cannot answer skips the check.
	if _, waiting, err := e.Queue.Head(ctx, id); err == nil && waiting {
		return Outcome{Class: Queued}
	}
	held := e.acquire(ctx, deadline)
	out := e.Store.lookupBy(ctx, deadline, t, id)
	e.release(held)
	if out.Class == Live {
		return Outcome{Class: Queued}
	}
	return out
}
