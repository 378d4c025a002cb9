package postback

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// storeDouble is a call store of docs/operations.md#call-store-api served over real HTTP on
// 127.0.0.1, shared by the tests of the call-store client, the edge and
// the drainer: calls with a state and an account, the requests it got in
// order, the peak of requests in flight, and the connections it accepted.
// A hook answers instead of the default behaviour when it returns true.
type storeDouble struct {
	srv *httptest.Server

	mu       sync.Mutex
	calls    map[string]*doubleCall
	phones   map[string][]string // E.164 → ids, newest first
	seen     []seenRequest       // every request, in arrival order
	applied  []seenRequest       // PATCHes answered 2xx by the default behaviour
	inflight int
	peak     int
	delay    time.Duration
	hook     func(w http.ResponseWriter, r *http.Request, n int, id string, body []byte) bool

	newConns atomic.Int64
	stop     chan struct{}
}

type doubleCall struct {
	state   string // "live" or "completed"
	account string // when set, only this X-Account-Id finds the call (partner-api#accounts)
	reject  string // when set, a PATCH is answered 422 with this message
}

type seenRequest struct {
	at       time.Time
	method   string
	uri      string // as sent, escapes included
	rawPath  string // the path as sent, before the query
	rawQuery string
	id       string // the unescaped segment under /v1/calls/
	body     string
	header   http.Header
}

func newStoreDouble(t *testing.T) *storeDouble {
	t.Helper()
	return startStoreDouble(t, false)
}

// startStoreDouble starts the double over HTTP, or HTTPS with useTLS,
// after configure has set up its server.
func startStoreDouble(t *testing.T, useTLS bool, configure ...func(*http.Server)) *storeDouble {
	t.Helper()
	s := &storeDouble{calls: map[string]*doubleCall{}, phones: map[string][]string{}, stop: make(chan struct{})}
	s.srv = httptest.NewUnstartedServer(s)
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.newConns.Add(1)
		}
	}
	for _, f := range configure {
		f(s.srv.Config)
	}
	if useTLS {
		// The untrusted-certificate test makes handshakes fail on purpose.
		s.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	t.Cleanup(func() {
		close(s.stop)
		s.srv.Close()
	})
	return s
}

func (s *storeDouble) addCall(id, state, account string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id] = &doubleCall{state: state, account: account}
}

func (s *storeDouble) addPhone(phone string, ids ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phones[phone] = ids
}

func (s *storeDouble) setState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id].state = state
}

func (s *storeDouble) setReject(id, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id].reject = message
}

func (s *storeDouble) setHook(h func(w http.ResponseWriter, r *http.Request, n int, id string, body []byte) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = h
}

func (s *storeDouble) setDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

func (s *storeDouble) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

func (s *storeDouble) appliedPatches() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.applied...)
}

func (s *storeDouble) peakInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// appliedBodies lists "id body" of every applied PATCH, in order.
func (s *storeDouble) appliedBodies() []string {
	var out []string
	for _, r := range s.appliedPatches() {
		out = append(out, r.id+" "+r.body)
	}
	return out
}

// hang waits until the client gives up or the test ends.
func (s *storeDouble) hang(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.stop:
	}
}

func (s *storeDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rawPath, rawQuery, _ := strings.Cut(r.RequestURI, "?")
	var id string
	if seg, ok := strings.CutPrefix(rawPath, "/v1/calls/"); ok {
		id, _ = url.PathUnescape(seg)
	}
	s.mu.Lock()
	s.inflight++
	s.peak = max(s.peak, s.inflight)
	req := seenRequest{at: time.Now(), method: r.Method, uri: r.RequestURI, rawPath: rawPath, rawQuery: rawQuery, id: id, body: string(body), header: r.Header.Clone()}
	s.seen = append(s.seen, req)
	n := len(s.seen)
	hook, delay := s.hook, s.delay
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if hook != nil && hook(w, r, n, id, body) {
		return
	}
	account := r.Header.Get("X-Account-Id")
	switch {
	case r.Method == http.MethodPatch && strings.HasPrefix(rawPath, "/v1/calls/"):
		s.mu.Lock()
		c := s.calls[id]
		if c == nil || (c.account != "" && c.account != account) {
			s.mu.Unlock()
			answer(w, http.StatusNotFound, `{"error":"call not found"}`)
			return
		}
		state, reject := c.state, c.reject
		if state != "live" && reject == "" {
			s.applied = append(s.applied, req)
		}
		s.mu.Unlock()
		switch {
		case state == "live":
			answer(w, http.StatusConflict, `{"state":"live"}`)
		case reject != "":
			b, _ := json.Marshal(map[string]string{"message": reject})
			answer(w, http.StatusUnprocessableEntity, string(b))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	case r.Method == http.MethodGet && strings.HasPrefix(rawPath, "/v1/calls/"):
		s.mu.Lock()
		c := s.calls[id]
		found := c != nil && (c.account == "" || c.account == account)
		var b []byte
		if found {
			b, _ = json.Marshal(map[string]string{"call_log_id": id, "state": c.state})
		}
		s.mu.Unlock()
		if !found {
			answer(w, http.StatusNotFound, `{"error":"call not found"}`)
			return
		}
		answer(w, http.StatusOK, string(b))
	case r.Method == http.MethodGet && rawPath == "/v1/calls":
		q := r.URL.Query()
		limit, _ := strconv.Atoi(q.Get("limit"))
		type listed struct {
			ID    string `json:"call_log_id"`
			State string `json:"state"`
		}
		list := []listed{}
		s.mu.Lock()
		for _, cid := range s.phones[q.Get("phone_number")] {
			if c := s.calls[cid]; c != nil && (c.account == "" || c.account == account) && (limit <= 0 || len(list) < limit) {
				list = append(list, listed{cid, c.state})
			}
		}
		s.mu.Unlock()
		b, _ := json.Marshal(map[string]any{"calls": list})
		answer(w, http.StatusOK, string(b))
	default:
		answer(w, http.StatusNotFound, `{"error":"no such route"}`)
	}
}

func answer(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// newTestCallStore is a client with a short retry base, closed with the
// test. Its attempt timeout of a second is only reached by tests that
// mean to (they shorten it): on a loaded machine a shorter one turns a
// slow answer into a retry, and the counts of requests the tests check
// would vary.
func newTestCallStore(t *testing.T, base string, edit ...func(*CallStoreConfig)) *CallStore {
	t.Helper()
	cfg := CallStoreConfig{URL: base, Timeout: time.Second, MaxConcurrency: 16, RetryBase: 10 * time.Millisecond}
	for _, f := range edit {
		f(&cfg)
	}
	c, err := NewCallStore(cfg)
	if err != nil {
		t.Fatalf("NewCallStore(%q): %v", cfg.URL, err)
	}
	t.Cleanup(c.Close)
	return c
}

func ctxWithin(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var acmeTarget = Target{Account: "acct_1", Webhook: "acme", RequestID: "req-1"}

const revenuePatch = `{"revenue_paid_out":25.50}`

// closedPortURL is the URL of a 127.0.0.1 port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

func TestCallStorePatchRequest(t *testing.T) {
	t.Parallel()
	t.Run("operations#updating-a-call PATCH /v1/calls/{id} with the body and the headers of the contract", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("abc-123", "completed", "acct_1")
		extra := http.Header{"Authorization": {"Bearer call-store-token"}, "X-Extra": {"one", "two"}}
		c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Header = extra })
		out := c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
		if out.Class != Applied {
			t.Fatalf("outcome %+v, want applied", out)
		}
		reqs := s.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.method != http.MethodPatch || r.uri != "/v1/calls/abc-123" || r.body != revenuePatch {
			t.Errorf("got %s %s %s, want PATCH /v1/calls/abc-123 %s", r.method, r.uri, r.body, revenuePatch)
		}
		want := map[string][]string{
			"Content-Type":       {"application/json"},
			"X-Account-Id":       {"acct_1"},
			"X-Request-Id":       {"req-1"},
			"X-Postback-Webhook": {"acme"},
			"Authorization":      {"Bearer call-store-token"},
			"X-Extra":            {"one", "two"},
		}
		for k, v := range want {
			if got := r.header.Values(k); strings.Join(got, "|") != strings.Join(v, "|") {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
	})
	t.Run("partner-api#accounts a configured X-Account-Id header never replaces the webhook's account", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("abc-123", "completed", "acct_1")
		c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) {
			cfg.Header = http.Header{"X-Account-Id": {"acct_other"}}
		})
		if out := c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
			t.Fatalf("outcome %+v, want applied", out)
		}
		if got := s.requests()[0].header.Values("X-Account-Id"); len(got) != 1 || got[0] != "acct_1" {
			t.Errorf("X-Account-Id = %q, want only acct_1", got)
		}
	})
	t.Run("partner-api#accounts a webhook without an account sends no X-Account-Id", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("abc-123", "completed", "")
		c := newTestCallStore(t, s.srv.URL)
		out := c.Patch(ctxWithin(t, time.Second), Target{Webhook: "platform", RequestID: "r"}, "abc-123", []byte(revenuePatch))
		if out.Class != Applied {
			t.Fatalf("outcome %+v, want applied", out)
		}
		if h := s.requests()[0].header; h.Get("X-Account-Id") != "" || h.Get("X-Postback-Webhook") != "platform" {
			t.Errorf("headers %v: want no X-Account-Id and X-Postback-Webhook platform", h)
		}
	})
	t.Run("operations#updating-a-call a base URL with a trailing slash or a path prefix", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		c := newTestCallStore(t, s.srv.URL+"/")
		c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc", []byte(revenuePatch))
		c2 := newTestCallStore(t, s.srv.URL+"/api/")
		c2.Patch(ctxWithin(t, time.Second), acmeTarget, "abc", []byte(revenuePatch))
		reqs := s.requests()
		if len(reqs) != 2 || reqs[0].uri != "/v1/calls/abc" || reqs[1].uri != "/api/v1/calls/abc" {
			t.Errorf("requests %+v, want /v1/calls/abc then /api/v1/calls/abc", reqs)
		}
	})
}

// trickyIDs are call_log_ids a partner may send (all valid under partner-api#identifying-calls)
// that would reach another path if they were not escaped.
var trickyIDs = []string{
	"abc-123", "a/b", "../admin", "..", ".", "...", "a/../../b", "%", "%2F", "%2e%2e", "a%2Fb",
	"a?b=c", "a?", "#frag", "a#b", "a b", "a+b", "a;b", "a\\b", "~user", "ünïcødé/日本",
	"call\u2028id", "?phone_number=x", "//host/x", "a&b=c", "%00", "'\"<>`{}|^",
}

func TestEscapeCallLogIDReachesOneSegment(t *testing.T) {
	t.Parallel()
	// operations#updating-a-call: "The id is path-escaped, so no id can reach another path of
	// the call store." The call store must see exactly one segment under
	// /v1/calls/, no query, and unescaping it must give the id back.
	s := newStoreDouble(t)
	for _, id := range trickyIDs {
		s.addCall(id, "completed", "acct_1")
	}
	c := newTestCallStore(t, s.srv.URL)
	for _, id := range trickyIDs {
		t.Run(strconv.Quote(id), func(t *testing.T) {
			before := len(s.requests())
			out := c.Patch(ctxWithin(t, time.Second), acmeTarget, id, []byte(revenuePatch))
			reqs := s.requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			seg, ok := strings.CutPrefix(r.rawPath, "/v1/calls/")
			switch {
			case !ok:
				t.Fatalf("request %q is not under /v1/calls/", r.uri)
			case r.rawQuery != "" || strings.Contains(r.uri, "?"):
				t.Errorf("request %q carries a query", r.uri)
			case seg == "" || strings.Contains(seg, "/") || seg == "." || seg == "..":
				t.Errorf("request %q: segment %q is not exactly one opaque segment", r.uri, seg)
			}
			if got, err := url.PathUnescape(seg); err != nil || got != id {
				t.Errorf("segment %q unescapes to %q (%v), want %q", seg, got, err, id)
			}
			if out.Class != Applied {
				t.Errorf("outcome %+v: the call store did not find the call under its own id", out)
			}
		})
	}
}

func TestEscapeCallLogIDRoundTrip(t *testing.T) {
	t.Parallel()
	t.Run("operations#updating-a-call any id escapes to one segment of unreserved characters and escapes, and back", func(t *testing.T) {
		// Any byte string, valid UTF-8 or not: only unreserved characters and
		// %XX escapes, never a dot segment, and it unescapes to the id.
		rng := rand.New(rand.NewPCG(1, 2))
		ids := append([]string(nil), trickyIDs...)
		ids = append(ids, "\xff\xfe", "a\x00b", "a\x7fb")
		for range 2000 {
			b := make([]byte, 1+rng.IntN(12))
			for i := range b {
				b[i] = byte(rng.IntN(256))
				if rng.IntN(3) == 0 {
					b[i] = "./%?#"[rng.IntN(5)]
				}
			}
			ids = append(ids, string(b))
		}
		for _, id := range ids {
			esc := EscapeCallLogID(id)
			if esc == "." || esc == ".." {
				t.Fatalf("EscapeCallLogID(%q) = %q, a dot segment", id, esc)
			}
			for i := 0; i < len(esc); i++ {
				c := esc[i]
				if c == '%' {
					if i+2 >= len(esc) || !strings.ContainsRune(upperHex, rune(esc[i+1])) || !strings.ContainsRune(upperHex, rune(esc[i+2])) {
						t.Fatalf("EscapeCallLogID(%q) = %q: bad escape at %d", id, esc, i)
					}
					i += 2
					continue
				}
				if !unreserved(c) {
					t.Fatalf("EscapeCallLogID(%q) = %q holds %q", id, esc, c)
				}
			}
			if got, err := url.PathUnescape(esc); err != nil || got != id {
				t.Fatalf("EscapeCallLogID(%q) = %q unescapes to %q, %v", id, esc, got, err)
			}
		}
	})
}

// answerWith is a hook that answers every request with status and body.
func answerWith(status int, body string, header ...string) func(http.ResponseWriter, *http.Request, int, string, []byte) bool {
	return func(w http.ResponseWriter, _ *http.Request, _ int, _ string, _ []byte) bool {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		answer(w, status, body)
		return true
	}
}

// answerSequence answers the nth request with statuses[n-1], and the last
// status after that.
func answerSequence(statuses ...int) func(http.ResponseWriter, *http.Request, int, string, []byte) bool {
	return func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
		st := statuses[min(n, len(statuses))-1]
		answer(w, st, `{"error":"status `+strconv.Itoa(st)+`"}`)
		return true
	}
}

// untilDeadlineClient is a client and a deadline for a call store that
// keeps failing: with a retry base of 500ms and a deadline of 700ms, the
// first retry waits 250-500ms, the second would wait 500-1000ms and is not
// attempted, so exactly two attempts are made and the second has at least
// 200ms to be answered. (With a short retry base the last attempt may
// start a moment before the deadline and be cut short into a timeout.)
func untilDeadlineClient(t *testing.T, base string) (*CallStore, time.Duration) {
	t.Helper()
	return newTestCallStore(t, base, func(cfg *CallStoreConfig) { cfg.RetryBase = 500 * time.Millisecond }), 700 * time.Millisecond
}

func TestCallStorePatchAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		hook     func(http.ResponseWriter, *http.Request, int, string, []byte) bool
		class    Class
		message  string // a substring of the outcome's message
		requests int    // 0: more than one
	}{
		{"operations#updating-a-call 200 applied", answerWith(200, `{"ok":true}`), Applied, "", 1},
		{"operations#updating-a-call 204 applied", answerWith(204, ``), Applied, "", 1},
		{"operations#updating-a-call 200 with a garbage body is applied", answerWith(200, `<html>oops`), Applied, "", 1},
		{"operations#updating-a-call 404 not found", answerWith(404, `{"error":"nope"}`), NotFound, "call not found", 1},
		{"operations#updating-a-call 404 with a garbage body", answerWith(404, `<html>`), NotFound, "call not found", 1},
		{"operations#updating-a-call 409 live", answerWith(409, `{"state":"live"}`), Live, "", 1},
		{"operations#updating-a-call 409 without live is upstream_error, not retried", answerWith(409, `{"state":"completed"}`), UpstreamError, "409", 1},
		{"operations#updating-a-call 409 with no body is upstream_error", answerWith(409, ``), UpstreamError, "409", 1},
		{"operations#updating-a-call 409 with live nested elsewhere is not live", answerWith(409, `{"call":{"state":"live"}}`), UpstreamError, "409", 1},
		{"operations#updating-a-call 422 passes the call store's message on", answerWith(422, `{"message":"revenue above campaign cap"}`), Rejected, "revenue above campaign cap", 1},
		{"operations#updating-a-call 422 without a message", answerWith(422, `{}`), Rejected, "rejected the update", 1},
		{"operations#updating-a-call 422 with a garbage body", answerWith(422, `<html>`), Rejected, "rejected the update", 1},
		{"operations#updating-a-call 400 is upstream_error, not retried", answerWith(400, `{"message":"bad"}`), UpstreamError, "400", 1},
		{"operations#updating-a-call 429 is retried", answerSequence(429, 200), Applied, "", 2},
		{"operations#updating-a-call a 5xx burst is retried", answerSequence(503, 502, 500, 504, 200), Applied, "", 5},
		{"operations#updating-a-call 5xx until the deadline is upstream_error", answerWith(503, `{}`), UpstreamError, "503", 0},
		{"operations#updating-a-call 429 until the deadline is upstream_error", answerWith(429, `{}`), UpstreamError, "429", 0},
		{"operations#updating-a-call a redirect is not followed", answerWith(302, ``, "Location", "/v1/calls/other"), UpstreamError, "302", 1},
		{"operations#updating-a-call a 307 redirect is not followed", answerWith(307, ``, "Location", "/v1/calls/other"), UpstreamError, "307", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStoreDouble(t)
			s.setHook(tt.hook)
			c := newTestCallStore(t, s.srv.URL)
			deadline := 2 * time.Second
			if tt.requests == 0 {
				c, deadline = untilDeadlineClient(t, s.srv.URL)
			}
			start := time.Now()
			out := c.Patch(ctxWithin(t, deadline), acmeTarget, "abc-123", []byte(revenuePatch))
			elapsed := time.Since(start)
			if out.Class != tt.class || !strings.Contains(out.Message, tt.message) {
				t.Errorf("outcome %v %q, want %v containing %q", out.Class.Code(), out.Message, tt.class.Code(), tt.message)
			}
			reqs := s.requests()
			switch {
			case tt.requests == 0 && len(reqs) < 2:
				t.Errorf("%d requests, want retries", len(reqs))
			case tt.requests > 0 && len(reqs) != tt.requests:
				t.Errorf("%d requests, want %d", len(reqs), tt.requests)
			}
			for _, r := range reqs {
				if r.uri != "/v1/calls/abc-123" || r.body != revenuePatch {
					t.Errorf("request %s %q, want the PATCH of abc-123 each time", r.uri, r.body)
				}
			}
			if elapsed > deadline+time.Second {
				t.Errorf("took %v, past the deadline of %v", elapsed, deadline)
			}
		})
	}
}

func TestCallStorePatchNoAnswer(t *testing.T) {
	t.Parallel()
	t.Run("operations#updating-a-call a call store that never answers is upstream_timeout, within the deadline", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(func(_ http.ResponseWriter, r *http.Request, _ int, _ string, _ []byte) bool {
			s.hang(r)
			return true
		})
		c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 100 * time.Millisecond })
		start := time.Now()
		out := c.Patch(ctxWithin(t, 500*time.Millisecond), acmeTarget, "abc-123", []byte(revenuePatch))
		elapsed := time.Since(start)
		if out.Class != UpstreamTimeout {
			t.Errorf("outcome %v %q, want upstream_timeout", out.Class.Code(), out.Message)
		}
		if n := len(s.requests()); n < 2 {
			t.Errorf("%d attempts, want a retry after the per-attempt timeout", n)
		}
		if elapsed > 1500*time.Millisecond {
			t.Errorf("took %v, past the 500ms deadline", elapsed)
		}
	})
	t.Run("operations#updating-a-call a refused connection is upstream_error, retried until the deadline", func(t *testing.T) {
		t.Parallel()
		c, deadline := untilDeadlineClient(t, closedPortURL(t))
		start := time.Now()
		out := c.Patch(ctxWithin(t, deadline), acmeTarget, "abc-123", []byte(revenuePatch))
		elapsed := time.Since(start)
		if out.Class != UpstreamError || !strings.Contains(out.Message, "refused") {
			t.Errorf("outcome %v %q, want upstream_error saying refused", out.Class.Code(), out.Message)
		}
		if elapsed < 250*time.Millisecond || elapsed > deadline+time.Second {
			t.Errorf("took %v: want a retry, and an end by the %v deadline", elapsed, deadline)
		}
	})
	closeFirst := func(upTo int) func(http.ResponseWriter, *http.Request, int, string, []byte) bool {
		return func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
			if n > upTo {
				return false
			}
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}
	}
	t.Run("operations#updating-a-call a connection closed without an answer is retried", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("abc-123", "completed", "acct_1")
		s.setHook(closeFirst(1))
		c := newTestCallStore(t, s.srv.URL)
		out := c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
		if out.Class != Applied || len(s.appliedPatches()) != 1 {
			t.Errorf("outcome %v %q, want applied on the retry", out.Class.Code(), out.Message)
		}
	})
	t.Run("operations#updating-a-call connections always closed without an answer fail the call", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(closeFirst(1 << 30))
		c := newTestCallStore(t, s.srv.URL)
		out := c.Patch(ctxWithin(t, 200*time.Millisecond), acmeTarget, "abc-123", []byte(revenuePatch))
		// The class is the last attempt's: a reset (upstream_error), or
		// the deadline cutting the last attempt short (upstream_timeout).
		if out.Class != UpstreamError && out.Class != UpstreamTimeout {
			t.Errorf("outcome %v %q, want upstream_error or upstream_timeout", out.Class.Code(), out.Message)
		}
		if n := len(s.requests()); n < 2 {
			t.Errorf("%d attempts, want retries", n)
		}
	})
	t.Run("operations#updating-a-call a cancelled request stops at once", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(answerWith(503, `{}`))
		c := newTestCallStore(t, s.srv.URL)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		start := time.Now()
		out := c.Patch(ctx, acmeTarget, "abc-123", []byte(revenuePatch))
		if out.Class == Applied || time.Since(start) > 100*time.Millisecond {
			t.Errorf("outcome %v after %v, want a fast failure", out.Class.Code(), time.Since(start))
		}
	})
}

func TestCallStoreRetryAfter(t *testing.T) {
	// Not parallel: a failure of the busy-loop case below burns CPU that
	// the timing of other tests would feel.
	t.Run("operations#updating-a-call Retry-After in seconds is honored", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
			if n == 1 {
				w.Header().Set("Retry-After", "1")
				answer(w, http.StatusTooManyRequests, `{}`)
				return true
			}
			answer(w, http.StatusOK, `{}`)
			return true
		})
		c := newTestCallStore(t, s.srv.URL)
		out := c.Patch(ctxWithin(t, 3*time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
		reqs := s.requests()
		if out.Class != Applied || len(reqs) != 2 {
			t.Fatalf("outcome %v after %d requests, want applied after 2", out.Class.Code(), len(reqs))
		}
		if gap := reqs[1].at.Sub(reqs[0].at); gap < 950*time.Millisecond {
			t.Errorf("retried after %v, before the 1s of Retry-After", gap)
		}
	})
	t.Run("operations#updating-a-call Retry-After beyond the deadline is not waited for", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(answerWith(503, `{}`, "Retry-After", "30"))
		c := newTestCallStore(t, s.srv.URL)
		start := time.Now()
		out := c.Patch(ctxWithin(t, 5*time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
		if out.Class != UpstreamError || !strings.Contains(out.Message, "503") {
			t.Errorf("outcome %v %q, want upstream_error 503", out.Class.Code(), out.Message)
		}
		if elapsed := time.Since(start); elapsed > 2*time.Second {
			t.Errorf("took %v: waited for a Retry-After of 30s that ends past the 5s deadline", elapsed)
		}
		if n := len(s.requests()); n != 1 {
			t.Errorf("%d requests, want 1: there is no time for the retry", n)
		}
	})
	t.Run("operations#updating-a-call a Retry-After date in the past falls back to the backoff", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
			if n == 1 {
				w.Header().Set("Retry-After", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat))
				answer(w, http.StatusServiceUnavailable, `{}`)
				return true
			}
			answer(w, http.StatusNoContent, ``)
			return true
		})
		c := newTestCallStore(t, s.srv.URL)
		if out := c.Patch(ctxWithin(t, 2*time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
			t.Errorf("outcome %v %q, want applied on the retry", out.Class.Code(), out.Message)
		}
	})
	t.Run("operations#updating-a-call an absurd Retry-After does not turn the retries into a busy loop", func(t *testing.T) {
		// 10000000000 seconds overflows a time.Duration: a call store that
		// sends it must not be hammered without any pause.
		s := newStoreDouble(t)
		s.setHook(answerWith(503, `{}`, "Retry-After", "10000000000"))
		c := newTestCallStore(t, s.srv.URL)
		c.Patch(ctxWithin(t, 300*time.Millisecond), acmeTarget, "abc-123", []byte(revenuePatch))
		// With the 10ms retry base the backoff allows about eight
		// attempts in 300ms; honoring the header, one.
		if n := len(s.requests()); n > 20 {
			t.Errorf("%d attempts in 300ms: the retries did not wait", n)
		}
	})
}

func TestCallStoreResolve(t *testing.T) {
	t.Parallel()
	t.Run("operations#finding-a-call-by-phone-number the most recent call of the number, in the webhook's account", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-new", "completed", "acct_1")
		s.addCall("call-old", "completed", "acct_1")
		s.addPhone("+15551234567", "call-new", "call-old")
		c := newTestCallStore(t, s.srv.URL)
		id, out := c.Resolve(ctxWithin(t, time.Second), acmeTarget, "+15551234567")
		if out.Class != Applied || id != "call-new" {
			t.Fatalf("Resolve = %q, %v %q; want call-new", id, out.Class.Code(), out.Message)
		}
		r := s.requests()[0]
		q, _ := url.ParseQuery(r.rawQuery)
		if r.method != http.MethodGet || r.rawPath != "/v1/calls" || q.Get("phone_number") != "+15551234567" || q.Get("limit") != "1" {
			t.Errorf("request %s %s, want GET /v1/calls?phone_number=+15551234567&limit=1", r.method, r.uri)
		}
		if r.header.Get("X-Account-Id") != "acct_1" || r.header.Get("X-Request-Id") != "req-1" || r.header.Get("X-Postback-Webhook") != "acme" {
			t.Errorf("headers %v lack the target's", r.header)
		}
	})
	t.Run("operations#finding-a-call-by-phone-number an empty list is not_found", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		c := newTestCallStore(t, s.srv.URL)
		id, out := c.Resolve(ctxWithin(t, time.Second), acmeTarget, "+15551234567")
		if out.Class != NotFound || id != "" {
			t.Errorf("Resolve = %q, %v; want not_found", id, out.Class.Code())
		}
	})
	t.Run("partner-api#accounts a call of another account is not found", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.addCall("call-b", "completed", "acct_2")
		s.addPhone("+15551234567", "call-b")
		c := newTestCallStore(t, s.srv.URL)
		if id, out := c.Resolve(ctxWithin(t, time.Second), acmeTarget, "+15551234567"); out.Class != NotFound {
			t.Errorf("Resolve = %q, %v; want not_found", id, out.Class.Code())
		}
	})
	tests := []struct {
		name  string
		hook  func(http.ResponseWriter, *http.Request, int, string, []byte) bool
		class Class
		id    string
	}{
		{"operations#finding-a-call-by-phone-number 404 is not_found", answerWith(404, `{}`), NotFound, ""},
		{"operations#finding-a-call-by-phone-number garbage is upstream_error", answerWith(200, `<html>not json</html>`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number no calls list is upstream_error", answerWith(200, `{}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number calls that is an object is upstream_error", answerWith(200, `{"calls":{"call_log_id":"x"}}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number calls that is a string is upstream_error", answerWith(200, `{"calls":"x"}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number an id with a space is upstream_error", answerWith(200, `{"calls":[{"call_log_id":"has space"}]}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number a numeric id is upstream_error", answerWith(200, `{"calls":[{"call_log_id":123}]}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number an empty id is upstream_error", answerWith(200, `{"calls":[{"call_log_id":""}]}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number an id of 129 characters is upstream_error", answerWith(200, `{"calls":[{"call_log_id":"`+strings.Repeat("x", 129)+`"}]}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number 500 then the list is retried", func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
			if n == 1 {
				answer(w, 500, `{}`)
			} else {
				answer(w, 200, `{"calls":[{"call_log_id":"abc","state":"live"}]}`)
			}
			return true
		}, Applied, "abc"},
		{"operations#finding-a-call-by-phone-number 5xx until the deadline is upstream_error", answerWith(502, `{}`), UpstreamError, ""},
		{"operations#finding-a-call-by-phone-number a redirect is upstream_error", answerWith(301, ``, "Location", "/elsewhere"), UpstreamError, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStoreDouble(t)
			s.setHook(tt.hook)
			c := newTestCallStore(t, s.srv.URL)
			deadline := 2 * time.Second
			if strings.Contains(tt.name, "until the deadline") {
				c, deadline = untilDeadlineClient(t, s.srv.URL)
			}
			id, out := c.Resolve(ctxWithin(t, deadline), acmeTarget, "+15551234567")
			if out.Class != tt.class || id != tt.id {
				t.Errorf("Resolve = %q, %v %q; want %q, %v", id, out.Class.Code(), out.Message, tt.id, tt.class.Code())
			}
		})
	}
}

func TestCallStoreResolveMalformedIsNotNotFound(t *testing.T) {
	t.Parallel()
	t.Run("operations#finding-a-call-by-phone-number a malformed look-up answer is upstream_error, not not_found", func(t *testing.T) {
		// A partner told not_found (404) believes the number has no call; an
		// answer the call store got wrong is upstream_error (502), which tells
		// the operator. These bodies are not a list of calls with an id.
		for _, body := range []string{
			`garbage{"calls":[]}`,
			`{"calls":[{"call_log_id":"abc-12`,
			`{"calls":[{"state":"live"}]}`,
			`{"calls":[null]}`,
			`{"calls":[{"call_log_id":null}]}`,
		} {
			t.Run(body, func(t *testing.T) {
				t.Parallel()
				s := newStoreDouble(t)
				s.setHook(answerWith(200, body))
				c := newTestCallStore(t, s.srv.URL)
				id, out := c.Resolve(ctxWithin(t, 2*time.Second), acmeTarget, "+15551234567")
				if out.Class != UpstreamError {
					t.Errorf("Resolve on %s = %q, %v %q; want upstream_error", body, id, out.Class.Code(), out.Message)
				}
			})
		}
	})
}

func TestCallStoreConnectionReuse(t *testing.T) {
	t.Parallel()
	t.Run("operations#connections-and-deadlines sequential PATCHes of every answer class share one connection", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		big := `{"pad":"` + strings.Repeat("x", 100<<10) + `"}`
		s.setHook(func(w http.ResponseWriter, _ *http.Request, n int, _ string, _ []byte) bool {
			switch n % 9 {
			case 0:
				answer(w, 200, `{}`)
			case 1:
				answer(w, 204, ``)
			case 2:
				answer(w, 404, `{"error":"not found"}`)
			case 3:
				answer(w, 409, `{"state":"live"}`)
			case 4:
				answer(w, 422, `{"message":"no"}`)
			case 5:
				answer(w, 400, `{"error":"bad"}`)
			case 6:
				answer(w, 503, `{"error":"busy"}`)
			case 7:
				answer(w, 200, big)
			case 8:
				answer(w, 302, ``)
			}
			return true
		})
		c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 3 * time.Second })
		for i := range 45 {
			c.Patch(ctxWithin(t, 5*time.Second), acmeTarget, "call-"+strconv.Itoa(i), []byte(revenuePatch))
		}
		if n := len(s.requests()); n < 45 {
			t.Fatalf("%d requests, want at least 45", n)
		}
		if n := s.newConns.Load(); n != 1 {
			t.Errorf("%d connections for sequential requests, want 1 reused", n)
		}
	})
	t.Run("operations#connections-and-deadlines concurrent PATCHes reuse a pooled set of connections", func(t *testing.T) {
		t.Parallel()
		s := newStoreDouble(t)
		s.setHook(answerWith(204, ``))
		s.setDelay(2 * time.Millisecond)
		c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.MaxConcurrency = 16; cfg.Timeout = 3 * time.Second })
		round := func() {
			var wg sync.WaitGroup
			for w := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10 {
						c.Patch(ctxWithin(t, 5*time.Second), acmeTarget, "c-"+strconv.Itoa(w)+"-"+strconv.Itoa(i), []byte(revenuePatch))
					}
				}()
			}
			wg.Wait()
		}
		round()
		// About one per sender: the transport's dial race (a dial started
		// for a request that then took a freed connection joins the pool)
		// adds a few, more on a loaded machine (24 seen once), so the
		// bound here is only that 160 PATCHes did not open one each; the
		// second round below is the exact check.
		first := s.newConns.Load()
		if first >= 80 {
			t.Errorf("%d connections for 160 PATCHes by 16 concurrent senders, want about 16", first)
		}
		round()
		if n := s.newConns.Load(); n != first {
			t.Errorf("a second round opened %d new connections, want the pooled %d reused", n-first, first)
		}
		if n := len(s.requests()); n != 320 {
			t.Errorf("%d requests, want 320", n)
		}
	})
}

func TestNewCallStoreURL(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", " ", "127.0.0.1:9090", "localhost:9090", "ftp://127.0.0.1/", "http://", "http:///v1", "/v1/calls", "http://a b", "mailto:ops@example.com", "unix:///run/cs.sock"} {
		t.Run("operations#configuration refused: "+strconv.Quote(bad), func(t *testing.T) {
			t.Parallel()
			c, err := NewCallStore(CallStoreConfig{URL: bad})
			if err == nil {
				c.Close()
				t.Fatalf("NewCallStore(%q) accepted it", bad)
			}
			if !strings.Contains(err.Error(), strconv.Quote(bad)) {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
	for _, good := range []string{"http://127.0.0.1:9090", "https://calls.internal/", "http://[::1]:9090/api"} {
		t.Run("operations#configuration accepted: "+good, func(t *testing.T) {
			t.Parallel()
			c, err := NewCallStore(CallStoreConfig{URL: good})
			if err != nil {
				t.Fatalf("NewCallStore(%q): %v", good, err)
			}
			c.Close()
		})
	}
}

func TestNewCallStoreURLWithQueryOrFragment(t *testing.T) {
	t.Parallel()
	t.Run("operations#configuration a call_store URL with a query or fragment is refused or still reaches the calls path", func(t *testing.T) {
		// An operator's call_store URL with a query or a fragment must either
		// fail at load (operations#configuration) or still send every PATCH to /v1/calls/{id}; it
		// must not send them all to another path.
		for name, suffix := range map[string]string{"query after a slash": "/?token=abc", "query": "?token=abc", "fragment": "/#section"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				s := newStoreDouble(t)
				s.addCall("abc-123", "completed", "acct_1")
				c, err := NewCallStore(CallStoreConfig{URL: s.srv.URL + suffix, Timeout: 200 * time.Millisecond})
				if err != nil {
					return // refused at load: fine
				}
				defer c.Close()
				out := c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
				reqs := s.requests()
				if len(reqs) != 1 || reqs[0].rawPath != "/v1/calls/abc-123" || out.Class != Applied {
					var uris []string
					for _, r := range reqs {
						uris = append(uris, r.uri)
					}
					t.Errorf("base %q accepted, but the PATCH went to %q (%v), not /v1/calls/abc-123", s.srv.URL+suffix, uris, out.Class.Code())
				}
			})
		}
	})
}
