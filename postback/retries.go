package postback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/internal/queue"
)

// Codes of the refusals of docs/partner-api.md#safe-retries.
const (
	CodeIdempotencyKeyInUse    = "idempotency_key_in_use"
	CodeIdempotencyKeyReused   = "idempotency_key_reused"
	CodeIdempotencyUnavailable = "idempotency_unavailable"
	DefaultIdempotencyWindow   = 24 * time.Hour
	MaxIdempotencyWindow       = 168 * time.Hour
	// IdempotencyHoldMargin is added to the request's deadline to bound
	// how long a request may hold its key: past it, a crashed instance's
	// key is free again.
	IdempotencyHoldMargin = 5 * time.Second
)

// transientCodes are the classes a retry attempts again
// (docs/partner-api.md#safe-retries); every other outcome is final. Named by code, so that a
// class added later is transient by being listed here.
var transientCodes = map[string]bool{
	"upstream_error":    true,
	"upstream_timeout":  true,
	"queue_unavailable": true,
	"too_many_pending":  true,
}

// Transient reports a class a retry with the same idempotency key
// attempts again.
func (c Class) Transient() bool { return c.Failed() && transientCodes[c.Code()] }

// Retries makes postbacks with an idempotency key safe to retry
// (docs/partner-api.md#safe-retries): a retry never applies an update twice, and a retry of a
// half-failed postback re-runs only the calls that failed transiently.
// A request without a key never reaches it; neither does a dry run.
type Retries struct {
	Store idempotency.Store
	// Window is how long a key is remembered.
	Window time.Duration
	// Hold bounds how long one request may hold its key: the edge's
	// deadline plus IdempotencyHoldMargin.
	Hold time.Duration
}

// Retried is what a postback with an idempotency key did.
type Retried struct {
	*Result
	// Seen says the key was seen before with this postback.
	Seen bool
	// Replayed says no call was attempted again: the answer is the stored
	// one (the Idempotent-Replayed header).
	Replayed bool
	// StoreErr is a failure to store the outcome; the answer stands, but
	// a retry after the hold has passed is taken as new.
	StoreErr error
}

// Apply answers req, whose idempotency key is key, from what the key
// already did and by applying what is left through e. A refusal
// (409 in use, 422 reused, 503 store unavailable) sends nothing; with a 503
// err says why.
func (x *Retries) Apply(ctx context.Context, e *Edge, w *Webhook, requestID string, ep Endpoint, key string, req *Request) (Retried, *Error, error) {
	k := idempotency.Key{Webhook: w.Name, Key: key}
	fp := req.Fingerprint(ep)
	token := newHoldToken()
	// The ordering check writes nothing, so it is asked first, to go out
	// beside the hold in one shared pipeline, and used only if the hold
	// is granted.
	var nothingWaiting func() ([]bool, error)
	if nw, ok := e.Queue.(queue.NothingWaiter); ok && req.PhoneNumber == "" {
		nothingWaiting = nw.AskNothingWaiting(ctx, req.CallLogIDs)
	}
	claim, err := x.Store.Claim(ctx, k, fp, token, x.Hold)
	if err != nil {
		return Retried{}, unavailable(), err
	}
	var prior []CallResult
	if claim.State == idempotency.Retry || claim.State == idempotency.Done {
		if prior, err = decodeOutcomes(claim.Outcome); err != nil {
			if claim.State == idempotency.Retry {
				_ = x.Store.Release(context.WithoutCancel(ctx), k, token)
			}
			return Retried{}, unavailable(), err
		}
	}
	var out Retried
	switch claim.State {
	case idempotency.InUse:
		perr := &Error{Status: http.StatusConflict, Code: CodeIdempotencyKeyInUse, Message: "a request with this idempotency key is still being processed; retry after 1s", RetryAfter: 1}
		return Retried{}, perr, nil
	case idempotency.Reused:
		return Retried{}, &Error{Status: http.StatusUnprocessableEntity, Code: CodeIdempotencyKeyReused, Message: "this idempotency key was used for a different postback; use a new key for a new update"}, nil
	case idempotency.Done:
		return Retried{Result: &Result{Calls: prior, Ignored: req.Ignored}, Seen: true, Replayed: true}, nil, nil
	case idempotency.New:
		var nothing []bool
		if nothingWaiting != nil {
			if n, err := nothingWaiting(); err == nil {
				nothing = n
			}
		}
		out.Result = e.ApplyKnowing(ctx, w, requestID, req, nothing)
	case idempotency.Retry:
		var again int
		out.Result, again = e.reapply(ctx, w, requestID, req, prior)
		out.Seen, out.Replayed = true, again == 0
	}
	// The outcome is stored even when the partner has hung up: its retry
	// must find it.
	rec := idempotency.Record{Fingerprint: fp, Outcome: encodeOutcomes(nil, out.Calls), Final: allFinal(out.Calls)}
	out.StoreErr = x.Store.Save(context.WithoutCancel(ctx), k, token, rec, x.Window)
	return out, nil, nil
}

func unavailable() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: CodeIdempotencyUnavailable, Message: "the idempotency store is unavailable, so nothing was sent; retry later with the same key"}
}

// reapply re-attempts the calls of prior whose outcome was transient and
// returns the merged outcomes with how many calls it attempted again.
func (e *Edge) reapply(ctx context.Context, w *Webhook, requestID string, req *Request, prior []CallResult) (*Result, int) {
	// A phone number that could not be resolved stands alone in prior, in
	// place of a call: resolve it again.
	if req.PhoneNumber != "" && len(prior) == 1 && prior[0].CallLogID == req.PhoneNumber && prior[0].Class.Transient() {
		return e.Apply(ctx, w, requestID, req), 1
	}
	res := &Result{Calls: append([]CallResult(nil), prior...), Ignored: req.Ignored}
	var again []string
	for _, c := range prior {
		if c.Class.Transient() {
			again = append(again, c.CallLogID)
		}
	}
	if len(again) == 0 {
		return res, 0
	}
	// Only the calls named, never a phone number resolved afresh: the
	// call it named is in prior.
	sub := *req
	sub.PhoneNumber, sub.CallLogIDs = "", again
	part := e.Apply(ctx, w, requestID, &sub)
	j := 0
	for i := range res.Calls {
		if res.Calls[i].Class.Transient() {
			res.Calls[i] = part.Calls[j]
			j++
		}
	}
	return res, len(again)
}

func allFinal(calls []CallResult) bool {
	for _, c := range calls {
		if c.Class.Transient() {
			return false
		}
	}
	return true
}

// encodeOutcomes appends calls as the stored outcome: a JSON array of
// [call_log_id, code, message]. Codes, not class numbers, so that a record
// outlives a change of the numbering.
func encodeOutcomes(dst []byte, calls []CallResult) []byte {
	// One allocation: each call takes its three strings, their six quotes,
	// two commas, two brackets and the comma before the next.
	n := 2
	for _, c := range calls {
		n += len(c.CallLogID) + len(c.Class.Code()) + len(c.Message) + 11
	}
	dst = slices.Grow(dst, n)
	dst = append(dst, '[')
	for i, c := range calls {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '[')
		dst = appendString(dst, c.CallLogID)
		dst = append(dst, ',')
		dst = appendString(dst, c.Class.Code())
		dst = append(dst, ',')
		dst = appendString(dst, c.Message)
		dst = append(dst, ']')
	}
	return append(dst, ']')
}

var errBadRecord = errors.New("idempotency: unreadable record")

func decodeOutcomes(b []byte) ([]CallResult, error) {
	v := gjson.ParseBytes(b)
	if !v.IsArray() {
		return nil, errBadRecord
	}
	var calls []CallResult
	var err error
	v.ForEach(func(_, el gjson.Result) bool {
		parts := el.Array()
		if len(parts) != 3 {
			err = errBadRecord
			return false
		}
		class, ok := classOfCode(parts[1].String())
		if !ok {
			err = errors.New("idempotency: record holds unknown outcome " + strconv.Quote(parts[1].String()))
			return false
		}
		calls = append(calls, CallResult{CallLogID: parts[0].String(), Outcome: Outcome{Class: class, Message: parts[2].String()}})
		return true
	})
	if err != nil {
		return nil, err
	}
	return calls, nil
}

// classOfCode is the class whose Code is code.
func classOfCode(code string) (Class, bool) {
	if code == "applied" {
		return Applied, true
	}
	for c := Class(1); c != 0; c++ {
		if c.Code() == code {
			return c, true
		}
	}
	return 0, false
}

// holdSeq and holdTag make each hold's token unique across requests,
// instances and restarts; a partner's X-Request-Id may repeat.
var (
	holdSeq atomic.Uint64
	holdTag = func() string {
		var b [8]byte
		_, _ = rand.Read(b[:])
		return hex.EncodeToString(b[:])
	}()
)

func newHoldToken() string {
	return holdTag + "-" + strconv.FormatUint(holdSeq.Add(1), 36)
}
