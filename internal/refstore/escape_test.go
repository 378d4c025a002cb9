package refstore

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

// escapedIDs are ids that would reach another route, or another call, if
// the store took them from the unescaped path.
var escapedIDs = []struct{ id, path string }{
	{"a/b", "a%2Fb"},
	{"..", "%2E%2E"},
	{".", "%2E"},
	{"a%b", "a%25b"},
	{"a?b", "a%3Fb"},
	{"a b", "a%20b"},
	{"a#b", "a%23b"},
	{"x/complete", "x%2Fcomplete"},
	{"../abc-123", "%2E%2E%2Fabc-123"},
}

func TestEscapedIDs(t *testing.T) {
	for _, tc := range escapedIDs {
		t.Run(fmt.Sprintf("operations#updating-a-call id %q sent as %s round-trips exactly", tc.id, tc.path), func(t *testing.T) {
			s, srv := newSeeded(t, nil)
			// Decoys: the calls a sloppy router would reach instead.
			for _, decoy := range []string{"a", "b", "x"} {
				wantStatus(t, do(t, srv, http.MethodPost, "/v1/calls",
					fmt.Sprintf(`{"call_log_id": %q, "state": "completed"}`, decoy)), http.StatusCreated)
			}
			before := map[string]Call{}
			for _, id := range []string{"a", "b", "x", "abc-123"} {
				before[id] = mustCall(t, s, id)
			}
			path := "/v1/calls/" + tc.path

			wantStatus(t, do(t, srv, http.MethodGet, path, ""), http.StatusNotFound)
			wantStatus(t, do(t, srv, http.MethodPatch, path, `{"reason": "r"}`), http.StatusNotFound)

			r := do(t, srv, http.MethodPost, "/v1/calls", fmt.Sprintf(`{"call_log_id": %q}`, tc.id))
			wantStatus(t, r, http.StatusCreated)
			if got := r.json(t)["call_log_id"]; got != tc.id {
				t.Fatalf("created %q", got)
			}
			wantStatus(t, do(t, srv, http.MethodPatch, path, `{"reason": "r"}`), http.StatusConflict)
			wantStatus(t, do(t, srv, http.MethodPost, path+"/complete", ""), http.StatusOK)
			wantStatus(t, do(t, srv, http.MethodPatch, path, `{"reason": "r"}`), http.StatusOK)

			r = do(t, srv, http.MethodGet, path, "")
			wantStatus(t, r, http.StatusOK)
			if got := r.json(t); got["call_log_id"] != tc.id || got["reason"] != "r" {
				t.Fatalf("read back %s", r.body)
			}
			p := s.Patches()
			if last := p[len(p)-1]; last.CallLogID != tc.id {
				t.Fatalf("recorded id %q", last.CallLogID)
			}
			for id, c := range before {
				if after := mustCall(t, s, id); !reflect.DeepEqual(c, after) {
					t.Errorf("decoy %q changed: %+v → %+v", id, c, after)
				}
			}
		})
	}

	t.Run("operations#updating-a-call an escaped /complete is part of the id, not the complete route", func(t *testing.T) {
		s, srv := newSeeded(t, nil)
		r := do(t, srv, http.MethodPost, "/v1/calls/live-001%2Fcomplete", "")
		wantStatus(t, r, http.StatusMethodNotAllowed)
		if c := mustCall(t, s, "live-001"); c.State != StateLive {
			t.Fatal("live-001 was completed")
		}
	})

	t.Run("operations#updating-a-call an unescaped dot segment is refused, never resolved", func(t *testing.T) {
		_, srv := newSeeded(t, nil)
		for _, p := range []string{"/v1/calls/..", "/v1/calls/.", "/v1/calls/../complete", "/v1/calls/./abc-123"} {
			wantStatus(t, do(t, srv, http.MethodGet, p, ""), http.StatusBadRequest)
		}
	})
}
