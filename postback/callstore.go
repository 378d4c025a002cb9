package postback

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
	"github.com/valyala/fasthttp"
	"golang.org/x/net/http/httpguts"
)

// CallStoreConfig configures the client of the call-store API (docs/operations.md#call-store-api).
type CallStoreConfig struct {
	// URL is the call store's base, e.g. http://127.0.0.1:9090.
	URL string
	// Timeout bounds each attempt: connecting, sending and reading the
	// answer.
	Timeout time.Duration
	// MaxConcurrency is the fan-out bound; the pool keeps at least this
	// many connections to the call store (operations#connections-and-deadlines).
	MaxConcurrency int
	// MaxIdle is how many connections the pool keeps: as many as may be in
	// flight at once, so a burst of batches does not redial.
	MaxIdle int
	// Header is added to every request, e.g. Authorization.
	Header http.Header
	// RetryBase is the first backoff between attempts; it doubles, with
	// jitter, up to a second.
	RetryBase time.Duration
	// TLSConfig, for an https URL, replaces the system's roots and the
	// default settings.
	TLSConfig *tls.Config
	// Observe, if set, is told the outcome and duration of every attempt,
	// for the latency histogram (docs/operations.md#metrics).
	Observe func(class Class, took time.Duration)
}

// Target is on whose behalf a call-store request is made.
type Target struct {
	Account   string
	Webhook   string
	RequestID string
}

// CallStore is the client of docs/operations.md#call-store-api. It is safe for concurrent use.
type CallStore struct {
	base string
	// fasthttp rather than net/http: the request is written and the answer
	// read on the calling goroutine, into pooled buffers, which halves the
	// CPU of a round trip (BENCHMARKS.md). It does not follow redirects:
	// they are answers, not places to go.
	client    *fasthttp.HostClient
	timeout   time.Duration
	header    []headerField
	retryBase time.Duration
	conns     connSet
	observe   func(Class, time.Duration)
}

type headerField struct{ name, value string }

// maxAnswer bounds the answer read; a larger one is an upstream error.
const maxAnswer = 1 << 20

// maxAnswerHeader bounds the answer's status line and headers.
const maxAnswerHeader = 16 << 10

const maxRetryWait = time.Second

// minAttemptTime is the least time left that makes a retry worth sending.
const minAttemptTime = 100 * time.Millisecond

// maxRetryAfter caps a Retry-After: a call-store answer cannot make the
// edge wait longer than any deadline it could have.
const maxRetryAfter = time.Hour

// userAgent names the edge in the call store's logs.
const userAgent = "caddy-postback"

// NewCallStore returns a client with its own connection pool.
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
	conns := max(cfg.MaxConcurrency, cfg.MaxIdle, 64)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	dialer := &net.Dialer{KeepAlive: 30 * time.Second}
	c := &CallStore{
		base:      strings.TrimRight(cfg.URL, "/"),
		timeout:   timeout,
		retryBase: cfg.RetryBase,
		observe:   cfg.Observe,
	}
	c.client = &fasthttp.HostClient{
		Addr:      net.JoinHostPort(u.Hostname(), port),
		IsTLS:     u.Scheme == "https",
		TLSConfig: cfg.TLSConfig,
		// The standard dialer: IPv4 and IPv6, the system's resolver.
		DialTimeout: func(addr string, timeout time.Duration) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			conn, err := dialer.DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			return c.conns.add(conn), nil
		},
		Name:                userAgent,
		MaxConns:            conns,
		MaxConnWaitTimeout:  timeout,
		MaxIdleConnDuration: 90 * time.Second,
		ReadBufferSize:      maxAnswerHeader,
		MaxResponseBodySize: maxAnswer,
		// Ids are escaped into one segment (EscapeCallLogID); the
		// path must reach the call store exactly as written.
		DisablePathNormalizing: true,
		// A call store that closed a kept-alive connection is asked
		// again at once, as net/http does, unless the request was
		// cancelled (Abort closes connections too); every other failure
		// waits for the backoff of do.
		RetryIfErr: func(req *fasthttp.Request, attempts int, err error) (bool, bool) {
			ctx, _ := req.UserValue(ctxKey{}).(context.Context)
			return false, attempts == 1 && ctx != nil && ctx.Err() == nil &&
				(errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed))
		},
	}
	for name, values := range cfg.Header {
		if err := checkHeader(name, values); err != nil {
			return nil, err
		}
		for _, v := range values {
			c.header = append(c.header, headerField{name, v})
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
func (c *CallStore) Close() { c.client.CloseIdleConnections() }

// Abort closes every connection, cutting the requests in flight: they end
// as failed attempts at once instead of at their timeout. The store stays
// usable; later requests dial again.
func (c *CallStore) Abort() { c.conns.closeAll() }

// Patch sends one update to one call (docs/operations.md#updating-a-call), retrying what can be
// retried until ctx's deadline.
func (c *CallStore) Patch(ctx context.Context, t Target, callLogID string, patch []byte) Outcome {
	return c.patchBy(ctx, time.Time{}, t, callLogID, patch)
}

// patchBy is Patch with a deadline of its own besides ctx's: the edge's
// hot path bounds a request this way rather than with a context and a
// timer per request. A zero deadline is none.
func (c *CallStore) patchBy(ctx context.Context, deadline time.Time, t Target, callLogID string, patch []byte) Outcome {
	u := c.base + "/v1/calls/" + EscapeCallLogID(callLogID)
	out, _ := c.do(ctx, deadline, http.MethodPatch, u, t, patch, func(status int, body []byte) Outcome {
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
	})
	return out
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
	if dl, ok := ctx.Deadline(); ok && (deadline.IsZero() || dl.Before(deadline)) {
		deadline = dl
	}
	var out Outcome
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		var retry bool
		start := time.Now()
		out, wait, retry = c.attempt(ctx, deadline, method, u, t, body, classify)
		if c.observe != nil {
			c.observe(out.Class, time.Since(start))
		}
		if !retry {
			return out, attempt + 1
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		// Another attempt is worth it only with time left for an answer;
		// one cut short would report a timeout for a store that answered.
		if !deadline.IsZero() && time.Until(deadline) < wait+min(c.timeout/4, minAttemptTime) {
			return out, attempt + 1
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return out, attempt + 1
		case <-timer.C:
		}
	}
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
// deadline (the whole call's, zero for none), whichever comes first.
func (c *CallStore) attempt(ctx context.Context, deadline time.Time, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (out Outcome, wait time.Duration, retry bool) {
	if err := ctx.Err(); err != nil {
		return transportOutcome(ctx, err), 0, false
	}
	if bound := time.Now().Add(c.timeout); deadline.IsZero() || bound.Before(deadline) {
		deadline = bound
	}
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetUserValue(ctxKey{}, ctx)
	req.Header.SetMethod(method)
	req.SetRequestURI(u)
	for _, f := range c.header {
		req.Header.Add(f.name, f.value)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBodyRaw(body)
	}
	req.Header.Set("Accept", "application/json")
	// Set, not Add: a configured header never replaces these (partner-api#accounts).
	setOrDel(&req.Header, "X-Account-Id", t.Account)
	setOrDel(&req.Header, "X-Request-Id", t.RequestID)
	setOrDel(&req.Header, "X-Postback-Webhook", t.Webhook)
	if err := c.client.DoDeadline(req, resp, deadline); err != nil {
		if errors.Is(err, fasthttp.ErrBodyTooLarge) {
			return Outcome{Class: UpstreamError, Message: "the call store's answer is larger than " + strconv.Itoa(maxAnswer>>20) + " MiB"}, 0, false
		}
		return transportOutcome(ctx, err), 0, ctx.Err() == nil
	}
	status := resp.StatusCode()
	if retryable(status) {
		return unexpected(status), retryAfter(string(resp.Header.Peek("Retry-After"))), true
	}
	return classify(status, resp.Body()), 0, false
}

// ctxKey carries an attempt's context to RetryIfErr.
type ctxKey struct{}

func setOrDel(h *fasthttp.RequestHeader, name, value string) {
	if value == "" {
		h.Del(name)
		return
	}
	h.Set(name, value)
}

// transportOutcome classifies a request that got no answer: no answer in
// time is a timeout, anything else (refused, reset) an upstream error.
func transportOutcome(ctx context.Context, err error) Outcome {
	// net.Error and fasthttp's timeout error both say Timeout().
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Outcome{Class: UpstreamError, Message: "the call store refused the connection"}
	case errors.Is(ctx.Err(), context.Canceled):
		return Outcome{Class: UpstreamError, Message: "the request was cancelled"}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, fasthttp.ErrNoFreeConns),
		errors.As(err, &timeout) && timeout.Timeout():
		return Outcome{Class: UpstreamTimeout, Message: "the call store did not answer in time"}
	}
	return Outcome{Class: UpstreamError, Message: "the call store could not be reached"}
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
