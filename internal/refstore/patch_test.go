package refstore

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestPatch(t *testing.T) {
	t.Run("operations#updating-a-call PATCH of a completed call applies and answers 200 with the call", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/abc-123",
			`{"converted": true, "call_converted_at": "2026-03-27T10:00:00Z", "revenue_paid_out": 25.50,
			  "publisher_paid_out": 10, "reason": "sale", "no_payout_reason": null,
			  "tags": {"add": {"customer_type": "premium"}, "remove": ["old_tag"]}}`,
			"X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		got := r.json(t)
		if got["call_log_id"] != "abc-123" || got["converted"] != true || got["reason"] != "sale" ||
			got["call_converted_at"] != "2026-03-27T10:00:00Z" || got["publisher_paid_out"] != json.Number("10") {
			t.Fatalf("answer %s", r.body)
		}
		c := mustCall(t, s, "abc-123")
		if *c.Converted != true || *c.Reason != "sale" || c.NoPayoutReason != nil || c.Tags["customer_type"] != "premium" {
			t.Fatalf("stored %+v", c)
		}
	})

	t.Run("operations#updating-a-call live call answers 409 with state live and nothing applied", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		before := mustCall(t, s, "live-001")
		r := do(t, srv, http.MethodPatch, "/v1/calls/live-001",
			`{"revenue_paid_out": 25.50, "tags": {"add": {"a": "b"}}}`, "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusConflict)
		wantBody(t, r, `{"state":"live"}`)
		if after := mustCall(t, s, "live-001"); !reflect.DeepEqual(before, after) {
			t.Fatalf("live call changed: %+v → %+v", before, after)
		}
	})

	t.Run("operations#updating-a-call unknown call answers 404 call not found", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		// ghi-789 is the failed call of the partner-api#responses example, so it stays unseeded.
		r := do(t, srv, http.MethodPatch, "/v1/calls/ghi-789", `{"reason": "x"}`)
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, `{"error":"call not found"}`)
	})

	t.Run("partner-api#fields null clears a clearable field and absent leaves the rest", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/def-456",
			`{"reason": null, "call_converted_at": null}`)
		wantStatus(t, r, http.StatusOK)
		got := r.json(t)
		if _, ok := got["reason"]; ok {
			t.Errorf("reason still in the answer: %s", r.body)
		}
		c := mustCall(t, s, "def-456")
		if c.Reason != nil || c.CallConvertedAt != nil {
			t.Errorf("not cleared: %+v", c)
		}
		if c.Converted == nil || !*c.Converted || c.RevenuePaidOut != "12.00" || c.Tags["source"] != "bing" {
			t.Errorf("absent fields changed: %+v", c)
		}
	})

	t.Run("partner-api#fields tags add merges and remove deletes", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/def-456",
			`{"tags": {"add": {"source": "organic", "customer_type": "premium"}, "remove": ["old_tag", "never_there"]}}`)
		wantStatus(t, r, http.StatusOK)
		want := map[string]string{"source": "organic", "customer_type": "premium"}
		if c := mustCall(t, s, "def-456"); !maps.Equal(c.Tags, want) {
			t.Fatalf("tags %v, want %v", c.Tags, want)
		}
		if !strings.Contains(string(r.body), `"tags":{"customer_type":"premium","source":"organic"}`) {
			t.Fatalf("answer %s", r.body)
		}
	})

	t.Run("partner-api#fields revenue decimal text is preserved: 25.50 reads back as 25.50", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/abc-123",
			`{"revenue_paid_out": 25.50, "publisher_paid_out": 0.1000}`)
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(string(r.body), `"revenue_paid_out":25.50,"publisher_paid_out":0.1000`) {
			t.Fatalf("answer %s", r.body)
		}
		r = do(t, srv, http.MethodGet, "/v1/calls/abc-123", "")
		if !strings.Contains(string(r.body), `"revenue_paid_out":25.50`) {
			t.Fatalf("read back %s", r.body)
		}
		if c := mustCall(t, s, "abc-123"); c.RevenuePaidOut != "25.50" {
			t.Fatalf("stored %q", c.RevenuePaidOut)
		}
	})

	t.Run("operations#updating-a-call an empty object applies nothing and answers 200", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		before := mustCall(t, s, "def-456")
		wantStatus(t, do(t, srv, http.MethodPatch, "/v1/calls/def-456", `{}`), http.StatusOK)
		if after := mustCall(t, s, "def-456"); !reflect.DeepEqual(before, after) {
			t.Fatalf("changed: %+v → %+v", before, after)
		}
	})

	t.Run("operations#updating-a-call values a store refuses answer 422 with a message and apply nothing", func(t *testing.T) {
		for _, tc := range []struct{ name, body, mention string }{
			{"empty body", "", "JSON object"},
			{"array", `[{"reason": "x"}]`, "JSON object"},
			{"null", `null`, "JSON object"},
			{"string", `"x"`, "JSON object"},
			{"trailing data", `{"reason": "x"} {}`, "JSON object"},
			{"unknown field", `{"reason": "x", "disposition": "y"}`, "disposition: unknown field"},
			{"unknown tags key", `{"tags": {"set": {"a": "b"}}}`, "tags.set: unknown field"},
			{"no_payout_reason not normalized", `{"no_payout_reason": "caps exceeded"}`, "no_payout_reason"},
			{"no_payout_reason unknown", `{"no_payout_reason": "Fraud"}`, "no_payout_reason"},
			{"revenue as string", `{"revenue_paid_out": "25.50"}`, "revenue_paid_out: must be a JSON number"},
			{"revenue as bool", `{"revenue_paid_out": true}`, "revenue_paid_out: must be a JSON number"},
			{"revenue null", `{"revenue_paid_out": null}`, "revenue_paid_out"},
			{"revenue negative", `{"revenue_paid_out": -1}`, "revenue_paid_out: must not be negative"},
			{"publisher as string", `{"publisher_paid_out": "10"}`, "publisher_paid_out"},
			{"converted as string", `{"converted": "yes"}`, "converted"},
			{"converted null", `{"converted": null}`, "converted"},
			{"time without offset", `{"call_converted_at": "2026-03-27T10:00:00"}`, "call_converted_at"},
			{"reason number", `{"reason": 5}`, "reason"},
			{"tag value number", `{"tags": {"add": {"n": 5}}}`, "tags.add.n"},
			{"tag value null", `{"tags": {"add": {"n": null}}}`, "tags.add.n"},
			{"remove not array", `{"tags": {"remove": "old_tag"}}`, "tags.remove"},
			{"remove with null", `{"tags": {"remove": ["a", null]}}`, "tags.remove"},
			{"tag added and removed", `{"tags": {"add": {"a": "b"}, "remove": ["a"]}}`, "both added and removed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s, srv := newSeeded(t, nil)
				before := mustCall(t, s, "def-456")
				r := do(t, srv, http.MethodPatch, "/v1/calls/def-456", tc.body)
				wantStatus(t, r, http.StatusUnprocessableEntity)
				msg, _ := r.json(t)["message"].(string)
				if !strings.Contains(msg, tc.mention) {
					t.Errorf("message %q does not mention %q", msg, tc.mention)
				}
				if after := mustCall(t, s, "def-456"); !reflect.DeepEqual(before, after) {
					t.Errorf("changed: %+v → %+v", before, after)
				}
			})
		}
	})

	t.Run("operations#updating-a-call every problem of a body is named at once", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/def-456", `{"revenue_paid_out": "1", "reason": 2, "x": 3}`)
		wantStatus(t, r, http.StatusUnprocessableEntity)
		msg := r.json(t)["message"].(string)
		for _, f := range []string{"revenue_paid_out", "reason", "x"} {
			if !strings.Contains(msg, f+":") {
				t.Errorf("message %q does not name %s", msg, f)
			}
		}
	})

	t.Run("partner-api#fields the three no_payout_reason values apply", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		for _, v := range noPayoutReasons {
			wantStatus(t, do(t, srv, http.MethodPatch, "/v1/calls/def-456",
				fmt.Sprintf(`{"no_payout_reason": %q}`, v)), http.StatusOK)
			if c := mustCall(t, s, "def-456"); *c.NoPayoutReason != v {
				t.Fatalf("stored %q, want %q", *c.NoPayoutReason, v)
			}
		}
	})

	t.Run("operations#updating-a-call every PATCH is recorded with its headers and body", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		do(t, srv, http.MethodPatch, "/v1/calls/abc-123", `{"reason": "sale"}`,
			"X-Account-Id", "acct_1", "X-Request-Id", "req-1", "X-Postback-Webhook", "acme")
		do(t, srv, http.MethodPatch, "/v1/calls/live-001", `{"reason": "sale"}`, "X-Request-Id", "req-2")
		do(t, srv, http.MethodPatch, "/v1/calls/nope", `not json`)
		want := []PatchRecord{
			{CallLogID: "abc-123", AccountID: "acct_1", RequestID: "req-1", Webhook: "acme", Body: []byte(`{"reason": "sale"}`), Status: 200},
			{CallLogID: "live-001", RequestID: "req-2", Body: []byte(`{"reason": "sale"}`), Status: 409},
			{CallLogID: "nope", Body: []byte(`not json`), Status: 422},
		}
		if got := s.Patches(); !reflect.DeepEqual(got, want) {
			t.Fatalf("patches\n got %+v\nwant %+v", got, want)
		}
	})

	t.Run("operations#connections-and-deadlines concurrent PATCHes of one call all apply", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/v1/calls/abc-123",
					strings.NewReader(fmt.Sprintf(`{"tags": {"add": {"k%d": "v"}}}`, i)))
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d", resp.StatusCode)
				}
			})
		}
		wg.Wait()
		if c := mustCall(t, s, "abc-123"); len(c.Tags) != 21 || len(s.Patches()) != 20 {
			t.Fatalf("tags %v, %d patches", c.Tags, len(s.Patches()))
		}
	})
}
