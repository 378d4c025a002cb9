package refstore

import (
	"net/http"
	"testing"
)

// The edge's dry run looks each call up with GET /v1/calls/{id} and reads
// call_log_id and state (docs/operations.md#looking-up-a-call).
func TestLookUpACall(t *testing.T) {
	_, srv := newSeeded(t, nil)
	for _, tt := range []struct{ id, account, state string }{
		{"abc-123", "acct_1", "completed"},
		{"live-001", "acct_1", "live"},
		{"other-live-001", "acct_2", "live"},
	} {
		r := do(t, srv, http.MethodGet, "/v1/calls/"+tt.id, "", "X-Account-Id", tt.account)
		wantStatus(t, r, http.StatusOK)
		if got := r.json(t); got["call_log_id"] != tt.id || got["state"] != tt.state {
			t.Errorf("operations#looking-up-a-call GET %s as %s: call_log_id %v state %v, want %s %s", tt.id, tt.account, got["call_log_id"], got["state"], tt.id, tt.state)
		}
	}
	wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/live-001", "", "X-Account-Id", "acct_2"), http.StatusNotFound)
	wantStatus(t, do(t, srv, http.MethodGet, "/v1/calls/no-such-call", "", "X-Account-Id", "acct_1"), http.StatusNotFound)
}
