package postback

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

// CallStoreConfig configures the client of the call-store API (docs/operations.md#call-store-api).
type CallStoreConfig struct {
	// URL is the call store's base, e.g. http://127.0.0.1:9090.
	URL string
	// Timeout bounds each attempt: connecting, sending and reading the
	// answer.
	Timeout time.Duration
	// MaxConcurrency is the fan-out bound; without a Transport, the
	// default one keeps at least this many idle connections to the call
	// store (operations#connections-and-deadlines).
	MaxConcurrency int
	// MaxIdle is how many idle connections the default transport keeps:
	// as many as may be in flight at once, so a burst of batches does not
	// redial.
	MaxIdle int
	// Header is added to every request, e.g. Authorization.
	Header http.Header
	// RetryBase is the first backoff between attempts; it doubles, with
	// jitter, up to a second.
	RetryBase time.Duration
	// Transport sends the requests. The plugin gives Caddy's own HTTP
	// transport, configured by the call_store block's `transport http`
	// (docs/operations.md#call-store-transport). Nil: a net/http
	// transport with the system's settings.
	Transport http.RoundTripper
	// Logger records why a call-store request failed, which the
	// partner's answer only classifies. Nil: nothing is logged.
	Logger *zap.Logger
	// Observe, if set, is told the outcome and duration of every attempt,
	// for the latency histogram (docs/operations.md#metrics).
	Observe func(class Class, took time.Duration)
}

// Target is on whose behalf a call-store request is made.
type Target struct {
	Account   string
	Webhook   string
	RequestID string
	// TraceParent and TraceState are the postback's W3C trace context,
	// sent with every call-store request made for it (operations#call-store-transport).
	TraceParent string
	TraceState  string
}

// CallStore is the client of docs/operations.md#call-store-api. It is safe for concurrent use.
// A request ends when its context does: a stop or a hang-up cancels it
// through the context given to Patch or Resolve.
type CallStore struct {
	base string
	// transport is a RoundTripper, not an http.Client: redirects are
	// answers, not places to go, and there are no cookies to keep.
	transport http.RoundTripper
	timeout   time.Duration
	header    http.Header
	retryBase time.Duration
	logger    *zap.Logger
	observe   func(Class, time.Duration)
}

// maxAnswer bounds the answer read; a larger one is an upstream error.
const maxAnswer = 1 << 20

const maxRetryWait = time.Second

// minAttemptTime is the least time left that makes a retry worth sending.
const minAttemptTime = 100 * time.Millisecond

// maxRetryAfter caps a Retry-After: a call-store answer cannot make the
// edge wait longer than any deadline it could have.
const maxRetryAfter = time.Hour

// userAgent names the edge in the call store's logs.
var userAgent = []string{"caddy-postback"}

var (
	jsonType   = []string{"application/json"}
	acceptJSON = []string{"application/json"}
)

// NewCallStore returns a client over cfg.Transport.
func NewCallStore(cfg CallStoreConfig) (*CallStore, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("call store URL must be an absolute http or https URL, got " + strconv.Quote(cfg.URL))
	}
	// Request paths are appended to the base: a query or fragment would
	// swallow them.
	if u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(cfg.URL, "?") || strings.HasSuffix(cfg.URL, "#") {
		return nil, errors.New("call store URL must not have a query or fragment, got " + strconv.Quote(cfg.URL))
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	c := &CallStore{
		base:      strings.TrimRight(cfg.URL, "/"),
		transport: cfg.Transport,
		timeout:   timeout,
		retryBase: cfg.RetryBase,
		header:    make(http.Header, len(cfg.Header)),
		logger:    cfg.Logger,
		observe:   cfg.Observe,
	}
	if c.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = max(cfg.MaxConcurrency, cfg.MaxIdle, 64)
		c.transport = t
	}
	if c.logger == nil {
		c.logger = zap.NewNop()
	}
	for name, values := range cfg.Header {
		if err := checkHeader(name, values); err != nil {
			return nil, err
		}
		for _, v := range values {
			c.header.Add(name, v)
		}
	}
	if c.retryBase <= 0 {
		c.retryBase = 50 * time.Millisecond
	}
	return c, nil
}

// framingHeaders are the client's to write: set from the config, they
// would break the request's framing or the connection's reuse.
var framingHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Upgrade": true,
}

// checkHeader refuses a configured header that could not be sent as
// written: a name that is not a token, a value with a line break or
// another control character (a secret file's trailing newline, say), or
// a header that frames the request.
func checkHeader(name string, values []string) error {
	if !httpguts.ValidHeaderFieldName(name) {
		return errors.New("call store header name " + strconv.Quote(name) + " is not a valid HTTP header name")
	}
	if framingHeaders[http.CanonicalHeaderKey(name)] {
		return errors.New("call store header " + name + " is written by the client itself; remove it")
	}
	for _, v := range values {
		if !httpguts.ValidHeaderFieldValue(v) {
			return errors.New("call store header " + name + " has a value with a line break or another control character")
		}
	}
	return nil
}

// Close releases idle connections.
func (c *CallStore) Close() {
	if ci, ok := c.transport.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// Patch sends one update to one call (docs/operations.md#updating-a-call), retrying what can be
// retried until ctx's deadline.
func (c *CallStore) Patch(ctx context.Context, t Target, callLogID string, patch []byte) Outcome {
	return c.patchBy(ctx, time.Time{}, t, callLogID, patch)
}

// PatchUntil is Patch where stop closing starts no further attempt but
// lets the one in flight finish, within its timeout and ctx: cut, it may
// have been applied unseen and would be sent again.
func (c *CallStore) PatchUntil(ctx context.Context, stop <-chan struct{}, t Target, callLogID string, patch []byte) Outcome {
	u := c.base + "/v1/calls/" + EscapeCallLogID(callLogID)
	out, _ := c.doUntil(ctx, stop, time.Time{}, http.MethodPatch, u, t, patch, classifyPatch)
	return out
}

// patchBy is Patch with a deadline of its own besides ctx's: the edge's
// hot path bounds a request this way rather than with a context and a
// timer per request. A zero deadline is none.
func (c *CallStore) patchBy(ctx context.Context, deadline time.Time, t Target, callLogID string, patch []byte) Outcome {
	u := c.base + "/v1/calls/" + EscapeCallLogID(callLogID)
	out, _ := c.do(ctx, deadline, http.MethodPatch, u, t, patch, classifyPatch)
	return out
}

// classifyPatch reads the call store's answer to a PATCH.
func classifyPatch(status int, body []byte) Outcome {
	switch {
	case status >= 200 && status < 300:
		return Outcome{Class: Applied}
	case status == http.StatusNotFound:
		return Outcome{Class: NotFound, Message: "call not found"}
	case status == http.StatusConflict && gjson.GetBytes(body, "state").String() == "live":
		return Outcome{Class: Live}
	case status == http.StatusUnprocessableEntity:
		msg := gjson.GetBytes(body, "message").String()
		if msg == "" {
			msg = "the call store rejected the update"
		}
		return Outcome{Class: Rejected, Message: msg}
	}
	return unexpected(status)
}

// Resolve finds the most recent call of a phone number in the target's
// account (docs/operations.md#finding-a-call-by-phone-number).
func (c *CallStore) Resolve(ctx context.Context, t Target, phone string) (string, Outcome) {
	return c.resolveBy(ctx, time.Time{}, t, phone)
}

// resolveBy is Resolve with a deadline of its own besides ctx's, as patchBy.
func (c *CallStore) resolveBy(ctx context.Context, deadline time.Time, t Target, phone string) (string, Outcome) {
	u := c.base + "/v1/calls?phone_number=" + url.QueryEscape(phone) + "&limit=1"
	var id string
	out, _ := c.do(ctx, deadline, http.MethodGet, u, t, nil, func(status int, body []byte) Outcome {
		switch {
		case status == http.StatusOK:
			// gjson reads what it can of broken JSON: check it whole first,
			// so a garbled answer is an upstream error, never not_found.
			calls := gjson.GetBytes(body, "calls")
			if !gjson.ValidBytes(body) || !calls.IsArray() {
				return Outcome{Class: UpstreamError, Message: "the call store answered a phone look-up without a calls list"}
			}
			first := calls.Get("0")
			if !first.Exists() {
				return Outcome{Class: NotFound, Message: "no call found for this phone number"}
			}
			callID := first.Get("call_log_id")
			if !first.IsObject() || callID.Type != gjson.String || checkCallLogID(callID.Str) != "" {
				return Outcome{Class: UpstreamError, Message: "the call store answered a phone look-up with an invalid call_log_id"}
			}
			id = callID.Str
			return Outcome{Class: Applied}
		case status == http.StatusNotFound:
			return Outcome{Class: NotFound, Message: "no call found for this phone number"}
		}
		return unexpected(status)
	})
	return id, out
}

func unexpected(status int) Outcome {
	return Outcome{Class: UpstreamError, Message: "the call store answered " + strconv.Itoa(status)}
}

// retryable answers: the call store is busy or broken, not refusing.
func retryable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}

// do runs attempts until one gives a final answer or no time is left; the
// outcome is the last attempt's (docs/operations.md#updating-a-call).
func (c *CallStore) do(ctx context.Context, deadline time.Time, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (Outcome, int) {
	return c.doUntil(ctx, nil, deadline, method, u, t, body, classify)
}

// doUntil is do where stop closing starts no further attempt but cuts
// none in flight; ctx still cuts them.
func (c *CallStore) doUntil(ctx context.Context, stop <-chan struct{}, deadline time.Time, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (Outcome, int) {
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	var out Outcome
	var err error
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		var retry bool
		start := time.Now()
		out, wait, retry, err = c.attempt(ctx, deadline, method, u, t, body, classify)
		if c.observe != nil {
			c.observe(out.Class, time.Since(start))
		}
		if !retry {
			return c.logged(out, err, method, u, t, attempt+1), attempt + 1
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		// Another attempt is worth it only with time left for an answer;
		// one cut short would report a timeout for a store that answered.
		if !deadline.IsZero() && time.Until(deadline) < wait+min(c.timeout/4, minAttemptTime) {
			return c.logged(out, err, method, u, t, attempt+1), attempt + 1
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return c.logged(out, err, method, u, t, attempt+1), attempt + 1
		case <-stop:
			timer.Stop()
			return c.logged(out, err, method, u, t, attempt+1), attempt + 1
		case <-timer.C:
		}
		select {
		case <-stop: // closed as the wait ended
			return c.logged(out, err, method, u, t, attempt+1), attempt + 1
		default:
		}
	}
}

// logged records why the last attempt got no answer: the outcome tells
// the partner the class only, the operator needs the cause (a TLS
// failure, a refused proxy).
func (c *CallStore) logged(out Outcome, err error, method, u string, t Target, attempts int) Outcome {
	if err != nil {
		if ce := c.logger.Check(zap.ErrorLevel, "call-store request failed"); ce != nil {
			ce.Write(zap.String("method", method), zap.String("url", u), zap.String("webhook", t.Webhook),
				zap.String("request_id", t.RequestID), zap.Int("attempts", attempts), zap.String("outcome", out.Class.Code()), zap.Error(err))
		}
	}
	return out
}

// backoff is exponential with equal jitter: half fixed, half random.
func (c *CallStore) backoff(attempt int) time.Duration {
	d := c.retryBase << min(attempt, 10)
	if d > maxRetryWait {
		d = maxRetryWait
	}
	return d/2 + rand.N(d/2+1)
}

// attempt sends one request, answered by the attempt's timeout or by
// deadline (the whole call's, zero for none), whichever comes first. err
// is why no answer came, if none did.
func (c *CallStore) attempt(ctx context.Context, deadline time.Time, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (out Outcome, wait time.Duration, retry bool, err error) {
	if err := ctx.Err(); err != nil {
		return transportOutcome(ctx, ctx, err), 0, false, nil
	}
	if bound := time.Now().Add(c.timeout); deadline.IsZero() || bound.Before(deadline) {
		deadline = bound
	}
	actx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, u, rd)
	if err != nil {
		return Outcome{Class: UpstreamError, Message: "the call store request could not be built"}, 0, false, err
	}
	h := req.Header
	// The configured values are shared, never modified: each name below
	// gets a slice of its own.
	for name, values := range c.header {
		h[name] = values
	}
	if body != nil {
		h["Content-Type"] = jsonType
	}
	h["Accept"] = acceptJSON
	h["User-Agent"] = userAgent
	// Set, not Add: a configured header never replaces these (partner-api#accounts).
	// One array backs the five values.
	values := make([]string, 0, 5)
	values = setOrDel(h, values, "X-Account-Id", t.Account)
	values = setOrDel(h, values, "X-Request-Id", t.RequestID)
	values = setOrDel(h, values, "X-Postback-Webhook", t.Webhook)
	values = setOrDel(h, values, "Traceparent", t.TraceParent)
	setOrDel(h, values, "Tracestate", t.TraceState)
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		out := transportOutcome(ctx, actx, err)
		// A certificate or handshake problem does not go away by asking
		// again; anything else may, unless the caller gave up.
		return out, 0, ctx.Err() == nil && !isTLSFailure(err), err
	}
	defer resp.Body.Close()
	status := resp.StatusCode
	if retryable(status) {
		// Read what a sane error page holds, so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return unexpected(status), retryAfter(resp.Header.Get("Retry-After")), true, nil
	}
	answer, err := readAnswer(resp)
	if err != nil {
		return transportOutcome(ctx, actx, err), 0, ctx.Err() == nil, err
	}
	if len(answer) > maxAnswer {
		return Outcome{Class: UpstreamError, Message: "the call store's answer is larger than " + strconv.Itoa(maxAnswer>>20) + " MiB"}, 0, false, nil
	}
	return classify(status, answer), 0, false, nil
}

// readAnswer reads the answer, at most one byte more than maxAnswer, so
// that a larger answer is seen as such. A declared length gets one
// buffer of that size; an empty answer (204) none.
func readAnswer(resp *http.Response) ([]byte, error) {
	switch n := resp.ContentLength; {
	case n == 0:
		return nil, nil
	case n > 0 && n <= maxAnswer:
		answer := make([]byte, n)
		_, err := io.ReadFull(resp.Body, answer)
		return answer, err
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
}

// setOrDel sets h[name] to value, a slice of its own appended to values
// (which it returns), or deletes name for an empty value.
func setOrDel(h http.Header, values []string, name, value string) []string {
	if value == "" {
		delete(h, name)
		return values
	}
	values = append(values, value)
	n := len(values)
	h[name] = values[n-1 : n : n]
	return values
}

// transportOutcome classifies a request that got no answer: no answer in
// time is a timeout, anything else (refused, reset, a TLS failure) an
// upstream error. ctx is the caller's, actx the attempt's.
func transportOutcome(ctx, actx context.Context, err error) Outcome {
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Outcome{Class: UpstreamError, Message: "the call store refused the connection"}
	case errors.Is(ctx.Err(), context.Canceled):
		return Outcome{Class: UpstreamError, Message: "the request was cancelled"}
	case isTLSFailure(err):
		return Outcome{Class: UpstreamError, Message: "the call store could not be reached: the TLS handshake failed"}
	case errors.Is(actx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &timeout) && timeout.Timeout():
		return Outcome{Class: UpstreamTimeout, Message: "the call store did not answer in time"}
	}
	return Outcome{Class: UpstreamError, Message: "the call store could not be reached"}
}

// isTLSFailure reports a failed handshake or a refused certificate, on
// either side: an untrusted call store, or a call store that wants a
// client certificate it did not get (its alert reads "tls: ...").
func isTLSFailure(err error) bool {
	var verify *tls.CertificateVerificationError
	var record tls.RecordHeaderError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	return errors.As(err, &verify) || errors.As(err, &record) || errors.As(err, &unknownCA) ||
		errors.As(err, &hostname) || errors.As(err, &invalid) || strings.Contains(err.Error(), "tls: ")
}

// retryAfter reads a Retry-After of seconds or an HTTP date; 0 when absent.
func retryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 64); err == nil {
		if s > uint64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return min(d, maxRetryAfter)
		}
	}
	return 0
}

// EscapeCallLogID escapes an id into one path segment: every byte outside
// the unreserved set is percent-encoded, and so are the dots of "." and
// "..", so that no id can reach another path of the call store (docs/operations.md#updating-a-call).
func EscapeCallLogID(id string) string {
	if id == "." || id == ".." {
		return strings.Repeat("%2E", len(id))
	}
	n := 0
	for i := 0; i < len(id); i++ {
		if !unreserved(id[i]) {
			n++
		}
	}
	if n == 0 {
		return id
	}
	b := make([]byte, 0, len(id)+2*n)
	for i := 0; i < len(id); i++ {
		c := id[i]
		if unreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return string(b)
}

const upperHex = "0123456789ABCDEF"

func unreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}
