package postback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// BenchmarkApplyBatch50 is Edge.Apply of a batch of 50 completed calls
// against a local call store that answers at once: the fan-out's own cost
// beside 50 round trips.
func BenchmarkApplyBatch50(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cs, err := NewCallStore(CallStoreConfig{URL: srv.URL, Timeout: 5 * time.Second, MaxConcurrency: 16})
	if err != nil {
		b.Fatal(err)
	}
	e := &Edge{Store: cs, Queue: queue.NewMemory(), MaxConcurrency: 8, Deadline: 5 * time.Second, DrainInterval: 5 * time.Second}
	w, err := NewWebhook("acme", TypeUpdateFields, "acct_1", "acme-secret", "")
	if err != nil {
		b.Fatal(err)
	}
	req, perr := testParser().Parse(EndpointUpdateFields, "", benchBatch, BodyJSON)
	if perr != nil {
		b.Fatal(perr)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := e.Apply(ctx, w, "req-1", req); res.Calls[49].Class != Applied {
			b.Fatal(res.Calls[49])
		}
	}
}
