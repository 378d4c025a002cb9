package postback

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The tests of the client's connection handling (callstore.go).

func TestCallStoreOverTLS(t *testing.T) {
	t.Parallel()
	s := startStoreDouble(t, true)
	s.addCall("abc-123", "completed", "acct_1")
	c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) {
		cfg.Transport = s.srv.Client().Transport
	})
	if out := c.Patch(ctxWithin(t, 2*time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
		t.Fatalf("operations#updating-a-call PATCH over https: outcome %v %q, want applied", out.Class.Code(), out.Message)
	}
	t.Run("an https call store whose certificate is not trusted is an upstream error", func(t *testing.T) {
		t.Parallel()
		untrusted := newTestCallStore(t, s.srv.URL)
		out := untrusted.Patch(ctxWithin(t, 300*time.Millisecond), acmeTarget, "abc-123", []byte(revenuePatch))
		if out.Class == Applied {
			t.Fatal("applied through a certificate nobody trusts")
		}
	})
}

func TestCallStoreUserAgent(t *testing.T) {
	t.Parallel()
	s := newStoreDouble(t)
	s.addCall("abc-123", "completed", "")
	c := newTestCallStore(t, s.srv.URL)
	c.Patch(ctxWithin(t, time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
	if ua := s.requests()[0].header.Get("User-Agent"); ua != "caddy-postback" {
		t.Errorf("User-Agent %q, want caddy-postback, so the call store's logs name the edge", ua)
	}
}

func TestCallStoreCancel(t *testing.T) {
	t.Parallel()
	// A stop (or a partner's hang-up, unless the edge detaches the fan-out
	// from it) cancels through the context: the request in flight ends at
	// once, not at its timeout, and is not sent again.
	s := newStoreDouble(t)
	s.addCall("abc-123", "completed", "acct_1")
	hanging := make(chan struct{}, 1)
	s.setHook(func(_ http.ResponseWriter, r *http.Request, n int, _ string, _ []byte) bool {
		if n > 1 {
			return false
		}
		hanging <- struct{}{}
		s.hang(r)
		return true
	})
	c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.Timeout = 5 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-hanging; cancel() }()
	start := time.Now()
	out := c.Patch(ctx, acmeTarget, "abc-123", []byte(revenuePatch))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("operations#several-instances a cancelled request ended after %v, want at once rather than at the 5s timeout", took)
	}
	if out.Class == Applied || !strings.Contains(out.Message, "cancelled") {
		t.Errorf("outcome %v %q, want a cancelled failure", out.Class.Code(), out.Message)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1: a cancelled request is not sent again", n)
	}
	// The store stays usable.
	if out := c.Patch(ctxWithin(t, 2*time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
		t.Errorf("after a cancel: outcome %v %q, want applied", out.Class.Code(), out.Message)
	}
}

func TestCallStoreAnswerTooLarge(t *testing.T) {
	t.Parallel()
	s := newStoreDouble(t)
	s.setHook(answerWith(200, `{"pad":"`+strings.Repeat("x", maxAnswer)+`"}`))
	c := newTestCallStore(t, s.srv.URL)
	out := c.Patch(ctxWithin(t, 2*time.Second), acmeTarget, "abc-123", []byte(revenuePatch))
	if out.Class != UpstreamError || !strings.Contains(out.Message, "larger than 1 MiB") {
		t.Errorf("outcome %v %q, want upstream_error naming the 1 MiB bound", out.Class.Code(), out.Message)
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("%d requests, want 1: the same answer would come again", n)
	}
}

func TestCallStoreStaleConnection(t *testing.T) {
	t.Parallel()
	// A call store that closes idle connections (Node's default is 5s) is
	// asked again at once on a new one, not after a backoff.
	s := startStoreDouble(t, false, func(srv *http.Server) { srv.IdleTimeout = 50 * time.Millisecond })
	s.addCall("abc-123", "completed", "acct_1")
	c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) { cfg.RetryBase = 2 * time.Second })
	if out := c.Patch(ctxWithin(t, 5*time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
		t.Fatalf("first PATCH: %v %q", out.Class.Code(), out.Message)
	}
	time.Sleep(200 * time.Millisecond) // the call store closes the idle connection
	start := time.Now()
	if out := c.Patch(ctxWithin(t, 5*time.Second), acmeTarget, "abc-123", []byte(revenuePatch)); out.Class != Applied {
		t.Fatalf("second PATCH: %v %q", out.Class.Code(), out.Message)
	}
	if took := time.Since(start); took > 300*time.Millisecond {
		t.Errorf("second PATCH took %v: the closed connection cost a backoff (half a second or more)", took)
	}
}

func TestNewCallStoreHeaders(t *testing.T) {
	t.Parallel()
	for name, h := range map[string]http.Header{
		"a value with a trailing newline (a secret file's)": {"Authorization": {"Bearer token\n"}},
		"a value with a line break inside":                  {"X-Edge": {"a\r\nX-Account-Id: acct_2"}},
		"a name that is not a token":                        {"X Edge": {"caddy"}},
		"Content-Length":                                    {"Content-Length": {"5"}},
		"Host":                                              {"host": {"other.internal"}},
		"Transfer-Encoding":                                 {"Transfer-Encoding": {"chunked"}},
	} {
		t.Run("operations#updating-a-call refused: "+name, func(t *testing.T) {
			t.Parallel()
			c, err := NewCallStore(CallStoreConfig{URL: "http://127.0.0.1:9090", Header: h})
			if err == nil {
				c.Close()
				t.Fatalf("header %v accepted; it would be sent broken or break the request", h)
			}
			for k := range h {
				if !strings.Contains(err.Error(), strconv.Quote(k)) && !strings.Contains(err.Error(), k) {
					t.Errorf("error %q does not name the header %s", err, k)
				}
			}
		})
	}
}

func TestCallStoreAccountHeaderIsTheWebhooks(t *testing.T) {
	t.Parallel()
	// partner-api#accounts: a configured X-Account-Id never speaks for a webhook without
	// an account either.
	s := newStoreDouble(t)
	s.addCall("abc-123", "completed", "")
	c := newTestCallStore(t, s.srv.URL, func(cfg *CallStoreConfig) {
		cfg.Header = http.Header{"X-Account-Id": {"acct_other"}}
	})
	if out := c.Patch(ctxWithin(t, time.Second), Target{Webhook: "platform", RequestID: "r"}, "abc-123", []byte(revenuePatch)); out.Class != Applied {
		t.Fatalf("outcome %v %q, want applied", out.Class.Code(), out.Message)
	}
	if got := s.requests()[0].header.Values("X-Account-Id"); len(got) != 0 {
		t.Errorf("X-Account-Id = %q, want none for a webhook without an account", got)
	}
}
