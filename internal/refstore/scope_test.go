package refstore

import (
	"net/http"
	"reflect"
	"testing"
)

func TestAccountScope(t *testing.T) {
	t.Run("partner-api#accounts another account cannot read a call: 404", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodGet, "/v1/calls/abc-123", "", "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, `{"error":"call not found"}`)
	})

	t.Run("partner-api#accounts another account cannot patch a call: 404 and nothing applied", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		before := mustCall(t, s, "abc-123")
		r := do(t, srv, http.MethodPatch, "/v1/calls/abc-123", `{"reason": "stolen"}`, "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusNotFound)
		wantBody(t, r, `{"error":"call not found"}`)
		if after := mustCall(t, s, "abc-123"); !reflect.DeepEqual(before, after) {
			t.Fatalf("changed: %+v → %+v", before, after)
		}
	})

	t.Run("partner-api#accounts another account's live call answers 404, not 409", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPatch, "/v1/calls/live-001", `{"reason": "x"}`, "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusNotFound)
	})

	t.Run("partner-api#accounts another account cannot complete a call: 404", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		wantStatus(t, do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", "", "X-Account-Id", "acct_2"), http.StatusNotFound)
		if c := mustCall(t, s, "live-001"); c.State != StateLive {
			t.Fatalf("state %q", c.State)
		}
	})

	t.Run("partner-api#accounts another account cannot find a call by phone: empty list", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15551234567&limit=1", "", "X-Account-Id", "acct_2")
		wantStatus(t, r, http.StatusOK)
		wantBody(t, r, `{"calls":[]}`)
	})

	t.Run("partner-api#accounts the owning account reads, patches and finds its call", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/other-001", "", "X-Account-Id", "acct_2"), http.StatusOK)
		wantStatus(t, do(t, srv, http.MethodPatch, "/v1/calls/other-001", `{"reason": "x"}`, "X-Account-Id", "acct_2"), http.StatusOK)
		r := do(t, srv, http.MethodGet, "/v1/calls?phone_number=%2B15559876543", "", "X-Account-Id", "acct_2")
		wantBody(t, r, `{"calls":[{"call_log_id":"other-live-001","state":"live"},{"call_log_id":"other-001","state":"completed"}]}`)
	})

	t.Run("partner-api#accounts an empty X-Account-Id is a scope too, matching no seeded call", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/abc-123", "", "X-Account-Id", ""), http.StatusNotFound)
	})

	t.Run("partner-api#accounts without X-Account-Id every call is visible", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/abc-123", ""), http.StatusOK)
		wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/other-001", ""), http.StatusOK)
	})
}
