package postback

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// writesOf lists the requests of the store that were not reads.
func writesOf(s *storeDouble) []string {
	var out []string
	for _, r := range s.requests() {
		if r.method != http.MethodGet {
			out = append(out, r.method+" "+r.uri)
		}
	}
	return out
}

func TestDryRun(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#dry-run a batch is reported as the real request would be, with the PATCH body, and nothing is written", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("done-1", "completed", "acct_1")
		s.addCall("live-1", "live", "acct_1")
		s.addCall("other-acct", "completed", "acct_2")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		req := revenueRequest("done-1", "live-1", "nope-1", "other-acct")
		req.Ignored = []string{"sub1"}
		res := e.DryRun(context.Background(), acmeWebhook(t), "req-1", req)
		if got, want := outcomes(res), "done-1:applied live-1:queued nope-1:not_found other-acct:not_found"; got != want {
			t.Errorf("outcomes %s, want %s", got, want)
		}
		body, status := AppendResponse(nil, res)
		want := `{"dry_run":true,"call_log_ids":["done-1","live-1"],"failed_call_log_ids":["nope-1","other-acct"],` +
			`"queued_call_log_ids":["live-1"],"errors":{"nope-1":{"code":"not_found","message":"call not found"},` +
			`"other-acct":{"code":"not_found","message":"call not found"}},"ignored":["sub1"],"patch":{"revenue_paid_out":25.50}}`
		if status != 200 || string(body) != want {
			t.Errorf("response %d %s\nwant 200 %s", status, body, want)
		}
		if w := writesOf(s); len(w) != 0 {
			t.Errorf("a dry run wrote to the call store: %v", w)
		}
		for _, r := range s.requests() {
			if r.header.Get("X-Account-Id") != "acct_1" || r.header.Get("X-Request-Id") != "req-1" {
				t.Errorf("look-up %s without the webhook's headers: %v", r.uri, r.header)
			}
		}
		if st, _ := q.Stats(context.Background()); st.PendingEntries != 0 {
			t.Errorf("a dry run queued %d entries", st.PendingEntries)
		}
	})

	t.Run("partner-api#dry-run the PATCH body is the one the real request then sends, byte for byte", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("done-1", "completed", "acct_1")
		e := newTestEdge(t, s, queue.NewMemory())
		p := Parser{AuthParam: DefaultAuthParam, MaxBatch: 50, MaxAmount: DefaultMaxAmount, MaxTags: 50, DefaultCountryCode: "1"}
		body := `{"call_log_id":"done-1","converted":"yes","revenue_paid_out":"25.50","call_converted_at":"2026-03-27T12:00:00+02:00","add":{"k":"v"},"remove":"old","dry_run":true}`
		req, perr := p.Parse(EndpointUpdateFields, "", []byte(body), BodyJSON)
		if perr != nil || !req.DryRun {
			t.Fatalf("parse: %v, dry run %v", perr, req != nil && req.DryRun)
		}
		dry := e.DryRun(context.Background(), acmeWebhook(t), "r", req)
		e.Apply(context.Background(), acmeWebhook(t), "r", req)
		applied := s.appliedPatches()
		if len(applied) != 1 || applied[0].body != string(dry.Patch) {
			t.Fatalf("dry run's patch %s, the real request sent %v", dry.Patch, s.appliedBodies())
		}
	})

	t.Run("partner-api#dry-run operations#order a completed call with updates waiting is reported queued, and the queue is left as it was", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("done-1", "completed", "acct_1")
		q := queue.NewMemory()
		e := newTestEdge(t, s, q)
		waiting := queue.Entry{CallLogID: "done-1", Account: "acct_1", Patch: []byte(`{"reason":"sale"}`)}
		if _, err := q.Append(context.Background(), &waiting, false, edgeTestNow); err != nil {
			t.Fatal(err)
		}
		res := e.DryRun(context.Background(), acmeWebhook(t), "r", revenueRequest("done-1"))
		body, status := AppendResponse(nil, res)
		if status != 202 || !strings.Contains(string(body), `"queued_call_log_ids":["done-1"]`) {
			t.Errorf("response %d %s, want 202 with done-1 queued", status, body)
		}
		if pending, _ := q.Pending(context.Background(), "done-1"); len(pending) != 1 {
			t.Errorf("the queue holds %d entries for done-1, want the 1 it had", len(pending))
		}
		if n := len(s.requests()); n != 0 {
			t.Errorf("the call store got %d requests; a call with updates waiting needs no look-up", n)
		}
	})

	t.Run("partner-api#dry-run a phone number is resolved, and an unknown one stands in the failed list", func(t *testing.T) {
		s := newStoreDouble(t)
		s.addCall("jkl-002", "completed", "acct_1")
		s.addPhone("+15551234567", "jkl-002")
		e := newTestEdge(t, s, queue.NewMemory())
		req := &Request{PhoneNumber: "+15551234567", Update: revenueUpdate("1")}
		if got := outcomes(e.DryRun(context.Background(), acmeWebhook(t), "r", req)); got != "jkl-002:applied" {
			t.Errorf("outcomes %s, want jkl-002:applied", got)
		}
		req.PhoneNumber = "+15550000000"
		res := e.DryRun(context.Background(), acmeWebhook(t), "r", req)
		body, status := AppendResponse(nil, res)
		if status != 404 || !strings.Contains(string(body), `"failed_call_log_ids":["+15550000000"]`) || !strings.Contains(string(body), `"patch":{"revenue_paid_out":1}`) {
			t.Errorf("response %d %s, want 404 naming the number, with the patch", status, body)
		}
		if w := writesOf(s); len(w) != 0 {
			t.Errorf("a dry run wrote to the call store: %v", w)
		}
	})
}

func TestLookup(t *testing.T) {
	t.Parallel()
	s := newStoreDouble(t)
	s.addCall("a/b c", "live", "acct_1")
	s.addCall("done", "completed", "")
	s.setHook(func(w http.ResponseWriter, r *http.Request, n int, id string, _ []byte) bool {
		switch id {
		case "garbled":
			answer(w, http.StatusOK, `{"state":`)
		case "odd-state":
			answer(w, http.StatusOK, `{"call_log_id":"odd-state","state":"archived"}`)
		case "busy":
			answer(w, http.StatusServiceUnavailable, ``)
		default:
			return false
		}
		return true
	})
	c := newTestCallStore(t, s.srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tgt := Target{Account: "acct_1"}
	for _, tt := range []struct {
		id   string
		want Class
	}{
		{"a/b c", Live}, {"done", Applied}, {"missing", NotFound},
		{"garbled", UpstreamError}, {"odd-state", UpstreamError}, {"busy", UpstreamError},
	} {
		if got := c.Lookup(ctx, tgt, tt.id); got.Class != tt.want {
			t.Errorf("operations#looking-up-a-call Lookup(%q) = %v %q, want %v", tt.id, got.Class, got.Message, tt.want)
		}
	}
	var sawEscaped bool
	for _, r := range s.requests() {
		if r.method != http.MethodGet {
			t.Errorf("Lookup sent %s %s", r.method, r.uri)
		}
		sawEscaped = sawEscaped || r.rawPath == "/v1/calls/a%2Fb%20c"
	}
	if !sawEscaped {
		t.Error("operations#looking-up-a-call the id was not path-escaped into one segment")
	}
}

func TestParseDryRun(t *testing.T) {
	t.Parallel()
	p := Parser{AuthParam: DefaultAuthParam, MaxBatch: 50, MaxAmount: DefaultMaxAmount, MaxTags: 50, DefaultCountryCode: "1"}
	for _, tt := range []struct {
		name, query, body string
		kind              BodyKind
		want              bool
		errField          string
	}{
		{"query 1", "call_log_id=a&converted=1&dry_run=1", "", BodyNone, true, ""},
		{"query 0", "call_log_id=a&converted=1&dry_run=0", "", BodyNone, false, ""},
		{"form true", "", "call_log_id=a&converted=1&dry_run=true", BodyForm, true, ""},
		{"json true", "", `{"call_log_id":"a","converted":1,"dry_run":true}`, BodyJSON, true, ""},
		{"json false", "", `{"call_log_id":"a","converted":1,"dry_run":false}`, BodyJSON, false, ""},
		{"query and json agree", "dry_run=1", `{"call_log_id":"a","converted":1,"dry_run":true}`, BodyJSON, true, ""},
		{"query and json differ", "dry_run=1", `{"call_log_id":"a","converted":1,"dry_run":false}`, BodyJSON, false, "dry_run"},
		{"not a flag", "call_log_id=a&converted=1&dry_run=maybe", "", BodyNone, false, "dry_run"},
		{"empty", "call_log_id=a&converted=1&dry_run=", "", BodyNone, false, "dry_run"},
		{"json null", "", `{"call_log_id":"a","converted":1,"dry_run":null}`, BodyJSON, false, "dry_run"},
	} {
		req, err := p.Parse(EndpointUpdateFields, tt.query, []byte(tt.body), tt.kind)
		switch {
		case tt.errField != "":
			if err == nil || err.Fields[0].Field != tt.errField {
				t.Errorf("partner-api#dry-run %s: error %v, want one naming %s", tt.name, err, tt.errField)
			}
		case err != nil:
			t.Errorf("partner-api#dry-run %s: %v", tt.name, err)
		case req.DryRun != tt.want || len(req.Ignored) != 0:
			t.Errorf("partner-api#dry-run %s: dry run %v ignored %v, want %v and nothing ignored", tt.name, req.DryRun, req.Ignored, tt.want)
		}
	}
	ids, dry, err := p.ParseCompletedDryRun("dry_run=1", []byte(`{"call_log_id":["x","y"]}`), BodyJSON)
	if err != nil || !dry || len(ids) != 2 {
		t.Errorf("partner-api#dry-run call-completed: ids %v dry run %v error %v", ids, dry, err)
	}
	for _, tt := range []struct {
		header []string
		param  bool
		want   bool
		bad    bool
	}{
		{nil, false, false, false}, {nil, true, true, false}, {[]string{"1"}, false, true, false},
		{[]string{" true "}, false, true, false}, {[]string{"0"}, true, true, false}, {[]string{"0"}, false, false, false},
		{[]string{"please"}, false, false, true}, {[]string{"1", "1"}, false, false, true},
	} {
		got, err := DryRunFromHeader(tt.header, tt.param)
		if (err != nil) != tt.bad || (!tt.bad && got != tt.want) {
			t.Errorf("partner-api#dry-run header %q with parameter %v: %v %v", tt.header, tt.param, got, err)
		} else if tt.bad && (err.Status != 400 || err.Fields[0].Field != DryRunHeader) {
			t.Errorf("partner-api#dry-run header %q: error %+v, want a 400 naming the header", tt.header, err)
		}
	}
}
