package refstore

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// edgeRecorder stands in for the edge's call-completed endpoint.
type edgeRecorder struct {
	mu       sync.Mutex
	requests []recorded
}

type recorded struct {
	method, path, contentType, authorization, body string
}

func (e *edgeRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	e.requests = append(e.requests, recorded{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)})
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, `{"call_log_ids":["live-001"]}`)
}

func TestNotify(t *testing.T) {
	t.Run("operations#completion-and-dead-letters complete posts the call id to call-completed with the bearer key", func(t *testing.T) {
		edge := &edgeRecorder{}
		edgeSrv := httptest.NewServer(edge)
		t.Cleanup(edgeSrv.Close)
		s, srv := newSeeded(t, &NotifyConfig{URL: edgeSrv.URL + "/postback/call-completed", Key: "internal-secret"})

		r := do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", "", "X-Account-Id", "acct_1")
		wantStatus(t, r, http.StatusOK)
		if !strings.HasSuffix(strings.TrimSpace(string(r.body)), `"notified":{"status":202}}`) {
			t.Fatalf("answer %s", r.body)
		}
		if c := mustCall(t, s, "live-001"); c.State != StateCompleted {
			t.Fatalf("state %q", c.State)
		}
		want := recorded{http.MethodPost, "/postback/call-completed", "application/json", "Bearer internal-secret", `{"call_log_id":"live-001"}`}
		if len(edge.requests) != 1 || edge.requests[0] != want {
			t.Fatalf("edge got %+v, want %+v", edge.requests, want)
		}
	})

	t.Run("operations#completion-and-dead-letters a failed notification is reported and the call stays completed", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		url := dead.URL + "/postback/call-completed?moja_auth_key=in-the-url"
		dead.Close()
		s, srv := newSeeded(t, &NotifyConfig{URL: url, Key: "k", Client: &http.Client{Timeout: 2 * time.Second}})

		r := do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", "")
		wantStatus(t, r, http.StatusOK)
		n, _ := r.json(t)["notified"].(map[string]any)
		msg, _ := n["error"].(string)
		if msg == "" || n["status"] != nil {
			t.Fatalf("answer %s", r.body)
		}
		// A key in the notify URL must not come back in the answer (operations#webhooks-and-keys).
		if strings.Contains(string(r.body), "in-the-url") {
			t.Fatalf("answer leaks the URL: %s", r.body)
		}
		if c := mustCall(t, s, "live-001"); c.State != StateCompleted {
			t.Fatalf("state %q", c.State)
		}
	})

	t.Run("operations#completion-and-dead-letters the edge's refusal is reported as its status", func(t *testing.T) {
		edgeSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusUnauthorized)
		}))
		t.Cleanup(edgeSrv.Close)
		_, srv := newSeeded(t, &NotifyConfig{URL: edgeSrv.URL, Key: "wrong"})
		r := do(t, srv, http.MethodPost, "/v1/calls/live-001/complete", "")
		wantStatus(t, r, http.StatusOK)
		if !strings.Contains(string(r.body), `"notified":{"status":401}`) {
			t.Fatalf("answer %s", r.body)
		}
	})

	t.Run("operations#the-reference-call-store an unknown call is not notified", func(t *testing.T) {
		edge := &edgeRecorder{}
		edgeSrv := httptest.NewServer(edge)
		t.Cleanup(edgeSrv.Close)
		_, srv := newSeeded(t, &NotifyConfig{URL: edgeSrv.URL, Key: "k"})
		wantStatus(t, do(t, srv, http.MethodPost, "/v1/calls/ghi-789/complete", ""), http.StatusNotFound)
		if len(edge.requests) != 0 {
			t.Fatalf("edge got %+v", edge.requests)
		}
	})
}
