package refstore

import (
	"net/http"
	"strings"
	"testing"
)

func TestFindByPhone(t *testing.T) {
	_, srv := newSeeded(t, nil)

	t.Run("operations#finding-a-call-by-phone-number phone lookup answers the most recent call first", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15551234567&limit=1", "", "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, `{"calls":[{"call_log_id":"jkl-002","state":"completed"}]}`)
	})

	t.Run("operations#finding-a-call-by-phone-number without limit every call of the number, newest first", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15551234567", "", "X-Account-Id", "acct_1")
		wantBody(t, r, `{"calls":[{"call_log_id":"jkl-002","state":"completed"},{"call_log_id":"jkl-001","state":"completed"}]}`)
	})

	t.Run("operations#finding-a-call-by-phone-number a live call reports state live", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15559876543&limit=1", "", "X-Account-Id", "acct_2")
		wantBody(t, r, `{"calls":[{"call_log_id":"other-live-001","state":"live"}]}`)
	})

	t.Run("operations#finding-a-call-by-phone-number separators in the number are normalized", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B1%20(555)%20123-4567&limit=1", "", "X-Account-Id", "acct_1")
		wantBody(t, r, `{"calls":[{"call_log_id":"jkl-002","state":"completed"}]}`)
	})

	t.Run("operations#finding-a-call-by-phone-number an unknown number answers an empty list", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15550000000&limit=1", "", "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, `{"calls":[]}`)
	})

	t.Run("operations#finding-a-call-by-phone-number an unescaped + (a space) is refused, not matched", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=+15551234567&limit=1", "")
		wantStatus(t, r, http.StatusBadRequest)
	})

	t.Run("operations#finding-a-call-by-phone-number a bad limit answers 400", func(t *testing.T) {
		for _, l := range []string{"0", "-1", "x", ""} {
			r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15551234567&limit="+l, "")
			wantStatus(t, r, http.StatusBadRequest)
		}
	})
}

func TestGetCreateComplete(t *testing.T) {
	t.Run("operations#the-reference-call-store GET reads a call back", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodGet, "/v1/calls/def-456", "", "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, `{"call_log_id":"def-456","account":"acct_1","phone_number":"+15550100002","state":"completed",`+
			`"started_at":"2026-03-27T09:05:00Z","converted":true,"call_converted_at":"2026-03-27T09:12:00Z",`+
			`"revenue_paid_out":12.00,"reason":"sale","tags":{"old_tag":"x","source":"bing"}}`)
	})

	t.Run("operations#the-reference-call-store GET of an unknown call answers 404", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodGet, "/v1/calls/ghi-789", "")
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, `{"error":"call not found"}`)
	})

	t.Run("operations#the-reference-call-store POST creates a live call and answers 201", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPost, "/v1/calls",
			`{"call_log_id": "new-1", "phone_number": "+1 555 000 1111", "started_at": "2026-03-28T10:00:00Z", "tags": {"source": "demo"}}`,
			"X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusCreated)
		wantBody(t, r, `{"call_log_id":"new-1","account":"acct_1","phone_number":"+15550001111","state":"live",`+
			`"started_at":"2026-03-28T10:00:00Z","tags":{"source":"demo"}}`)
		if c := mustCall(t, s, "new-1"); c.Account != "acct_1" || c.State != StateLive {
			t.Fatalf("stored %+v", c)
		}
	})

	t.Run("operations#the-reference-call-store POST without call_log_id generates one and a start time", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPost, "/v1/calls", `{"account": "acct_1", "state": "completed", "revenue_paid_out": 1.50}`)
		wantStatus(t, r, http.StatusCreated)
		id, _ := r.json(t)["call_log_id"].(string)
		c := mustCall(t, s, id)
		if !strings.HasPrefix(id, "call-") || c.StartedAt.IsZero() || c.State != StateCompleted || c.RevenuePaidOut != "1.50" {
			t.Fatalf("created %+v", c)
		}
		if !strings.Contains(string(r.body), `"revenue_paid_out":1.50`) {
			t.Fatalf("answer %s", r.body)
		}
	})

	t.Run("operations#the-reference-call-store POST of an existing id answers 409", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		// other-001 belongs to acct_2: ids are unique across accounts.
		r := do(t, srv, http.MethodPost, "/v1/calls", `{"call_log_id": "other-001"}`, "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusConflict)
		wantBody(t, r, `{"error":"call already exists"}`)
	})

	t.Run("operations#the-reference-call-store POST with invalid values answers 422", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		for _, body := range []string{
			`[]`,
			`{"state": "ringing"}`,
			`{"phone_number": "555-1234"}`,
			`{"started_at": "yesterday"}`,
			`{"call_log_id": ""}`,
			`{"call_log_id": "a\u0000b"}`,
			`{"tags": {"add": {"a": "b"}}}`,
			`{"no_payout_reason": "nope"}`,
			`{"colour": "red"}`,
		} {
			wantStatus(t, do(t, srv, http.MethodPost, "/v1/calls", body), http.StatusUnprocessableEntity)
		}
	})

	t.Run("partner-api#accounts POST into another account than X-Account-Id answers 422", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPost, "/v1/calls", `{"call_log_id": "x-1", "account": "acct_1"}`, "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusUnprocessableEntity)
		if _, ok := s.Call("x-1"); ok {
			t.Fatal("created anyway")
		}
	})

	t.Run("operations#completion-and-dead-letters complete ends a live call, then PATCH applies", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		patch := `{"revenue_paid_out": 25.50}`
		wantStatus(t, do(t, srv, http.MethodPatch, "/v1/calls/live-001", patch, "X-Account-Id", "acct_1"), http.StatusConflict)
		r := do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", "", "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		if got := r.json(t); got["state"] != StateCompleted || got["notified"] != nil {
			t.Fatalf("answer %s", r.body)
		}
		wantStatus(t, do(t, srv, http.MethodPatch, "/v1/calls/live-001", patch, "X-Account-Id", "acct_1"), http.StatusOK)
		if c := mustCall(t, s, "live-001"); c.RevenuePaidOut != "25.50" {
			t.Fatalf("stored %+v", c)
		}
		// Completing again is harmless.
		wantStatus(t, do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", ""), http.StatusOK)
	})

	t.Run("operations#the-reference-call-store complete of an unknown call answers 404", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPost, "/v1/calls/ghi-789/complete", "")
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, `{"error":"call not found"}`)
	})
}

func TestOtherRoutes(t *testing.T) {
	_, srv := newSeeded(t, nil)

	t.Run("operations#the-reference-call-store unknown paths answer 404 JSON", func(t *testing.T) {
		for _, p := range []string{"/", "/v1", "/v1/call", "/v1/callsx", "/v1/calls/", "/v1/calls/abc-123/",
			"/v1/calls/abc-123/completed", "/v1/calls/abc-123/complete/x", "/v2/calls/abc-123"} {
			r := do(t, srv, http.MethodGet, p, "")
			wantStatus(t, r, http.StatusNotFound)
			wantBody(t, r, `{"error":"not found"}`)
		}
	})

	t.Run("operations#the-reference-call-store a wrong method answers 405 JSON with Allow", func(t *testing.T) {
		for _, tc := range []struct{ method, path, allow string }{
			{http.MethodDelete, "/v1/calls", "GET, POST"},
			{http.MethodPatch, "/v1/calls", "GET, POST"},
			{http.MethodPost, "/v1/calls/abc-123", "GET, PATCH"},
			{http.MethodPut, "/v1/calls/abc-123", "GET, PATCH"},
			{http.MethodGet, "/v1/calls/abc-123/complete", "POST"},
		} {
			r := do(t, srv, tc.method, tc.path, "")
			wantStatus(t, r, http.StatusMethodNotAllowed)
			wantBody(t, r, `{"error":"method not allowed"}`)
			if got := r.header.Get("Allow"); got != tc.allow {
				t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
			}
		}
	})

	t.Run("partner-api#accounts X-Account-Id given twice answers 400", func(t *testing.T) {
		r := do(t, srv, http.MethodGet, "/v1/calls/abc-123", "", "X-Account-Id", "acct_1", "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusBadRequest)
	})

	t.Run("operations#updating-a-call a body over 1 MiB answers 413", func(t *testing.T) {
		r := do(t, srv, http.MethodPatch, "/v1/calls/abc-123", `{"reason": "`+strings.Repeat("x", maxBody)+`"}`)
		wantStatus(t, r, http.StatusRequestEntityTooLarge)
	})
}
