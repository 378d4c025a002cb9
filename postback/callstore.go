package postback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tidwall/gjson"
)

// CallStoreConfig configures the client of the call-store API (SPEC §7).
type CallStoreConfig struct {
	// URL is the call store's base, e.g. http://127.0.0.1:9090.
	URL string
	// Timeout bounds each attempt.
	Timeout time.Duration
	// MaxConcurrency is the fan-out bound; the pool keeps at least this
	// many idle connections to the call store (§7.3).
	MaxConcurrency int
	// MaxIdle is how many idle connections the pool keeps: as many as may
	// be in flight at once, so a burst of batches does not redial.
	MaxIdle int
	// Header is added to every request, e.g. Authorization.
	Header http.Header
	// RetryBase is the first backoff between attempts; it doubles, with
	// jitter, up to a second.
	RetryBase time.Duration
}

// Target is on whose behalf a call-store request is made.
type Target struct {
	Account   string
	Webhook   string
	RequestID string
}

// CallStore is the client of SPEC §7. It is safe for concurrent use.
type CallStore struct {
	base string
	// The transport is used directly, without an http.Client: redirects
	// are answers, not places to go, and the client's redirect
	// bookkeeping costs allocations on every request.
	transport *http.Transport
	timeout   time.Duration
	header    http.Header
	retryBase time.Duration
}

// maxAnswer bounds how much of a call-store answer is read.
const maxAnswer = 64 << 10

const maxRetryWait = time.Second

// minAttemptTime is the least time left that makes a retry worth sending.
const minAttemptTime = 100 * time.Millisecond

// maxRetryAfter caps a Retry-After: a call-store answer cannot make the
// edge wait longer than any deadline it could have.
const maxRetryAfter = time.Hour

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
	idle := max(cfg.MaxConcurrency, cfg.MaxIdle, 64)
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	tr := &http.Transport{
		// The call store is an internal API: no proxy from the environment.
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          idle * 2,
		MaxIdleConnsPerHost:   idle,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     u.Scheme == "https",
	}
	c := &CallStore{
		base:      strings.TrimRight(cfg.URL, "/"),
		transport: tr,
		timeout:   timeout,
		header:    cfg.Header,
		retryBase: cfg.RetryBase,
	}
	// The attempt's bound: dialing and the TLS handshake have their own,
	// and the request's deadline bounds reading the (small) answer.
	tr.ResponseHeaderTimeout = c.timeout
	if c.retryBase <= 0 {
		c.retryBase = 50 * time.Millisecond
	}
	return c, nil
}

// Close releases idle connections.
func (c *CallStore) Close() { c.transport.CloseIdleConnections() }

// Patch sends one update to one call (SPEC §7.1), retrying what can be
// retried until ctx's deadline.
func (c *CallStore) Patch(ctx context.Context, t Target, callLogID string, patch []byte) Outcome {
	u := c.base + "/v1/calls/" + EscapeCallLogID(callLogID)
	out, _ := c.do(ctx, http.MethodPatch, u, t, patch, func(status int, body []byte) Outcome {
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
// account (SPEC §7.2).
func (c *CallStore) Resolve(ctx context.Context, t Target, phone string) (string, Outcome) {
	u := c.base + "/v1/calls?phone_number=" + url.QueryEscape(phone) + "&limit=1"
	var id string
	out, _ := c.do(ctx, http.MethodGet, u, t, nil, func(status int, body []byte) Outcome {
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
// outcome is the last attempt's (SPEC §7.1).
func (c *CallStore) do(ctx context.Context, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (Outcome, int) {
	var out Outcome
	for attempt := 0; ; attempt++ {
		var wait time.Duration
		var retry bool
		out, wait, retry = c.attempt(ctx, method, u, t, body, classify)
		if !retry {
			return out, attempt + 1
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		// Another attempt is worth it only with time left for an answer;
		// one cut short would report a timeout for a store that answered.
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait+min(c.timeout/4, minAttemptTime) {
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

func (c *CallStore) attempt(ctx context.Context, method, u string, t Target, body []byte, classify func(int, []byte) Outcome) (out Outcome, wait time.Duration, retry bool) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return Outcome{Class: UpstreamError, Message: "could not build the call-store request"}, 0, false
	}
	h := make(http.Header, len(c.header)+5)
	for k, v := range c.header {
		h[k] = v
	}
	if body != nil {
		h["Content-Type"] = jsonContentType
	}
	h["Accept"] = jsonContentType
	if t.Account != "" {
		h["X-Account-Id"] = []string{t.Account}
	}
	if t.RequestID != "" {
		h["X-Request-Id"] = []string{t.RequestID}
	}
	if t.Webhook != "" {
		h["X-Postback-Webhook"] = []string{t.Webhook}
	}
	req.Header = h
	resp, err := c.transport.RoundTrip(req)
	if err != nil {
		return transportOutcome(ctx, err), 0, ctx.Err() == nil
	}
	buf := answerPool.Get().(*[]byte)
	defer answerPool.Put(buf)
	answer, readErr := readAnswer(resp, (*buf)[:0])
	*buf = answer[:0]
	if readErr != nil {
		return transportOutcome(ctx, readErr), 0, ctx.Err() == nil
	}
	if retryable(resp.StatusCode) {
		return unexpected(resp.StatusCode), retryAfter(resp.Header.Get("Retry-After")), true
	}
	return classify(resp.StatusCode, answer), 0, false
}

// answerPool holds the buffers answers are read into; classify copies what
// it keeps.
var answerPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// readAnswer reads at most maxAnswer bytes of the answer into dst, drains a
// little more so the connection can be reused, and closes the body.
func readAnswer(resp *http.Response, dst []byte) ([]byte, error) {
	defer resp.Body.Close()
	if resp.ContentLength == 0 {
		return dst, nil
	}
	for len(dst) < maxAnswer {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := resp.Body.Read(dst[len(dst):min(cap(dst), maxAnswer)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
	_, _ = io.CopyN(io.Discard, resp.Body, maxAnswer)
	return dst, nil
}

// transportOutcome classifies a request that got no answer: no answer in
// time is a timeout, anything else (refused, reset) an upstream error.
func transportOutcome(ctx context.Context, err error) Outcome {
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return Outcome{Class: UpstreamError, Message: "the call store refused the connection"}
	case errors.Is(ctx.Err(), context.Canceled):
		return Outcome{Class: UpstreamError, Message: "the request was cancelled"}
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
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

var jsonContentType = []string{"application/json"}

// EscapeCallLogID escapes an id into one path segment: every byte outside
// the unreserved set is percent-encoded, and so are the dots of "." and
// "..", so that no id can reach another path of the call store (SPEC §7.1).
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
