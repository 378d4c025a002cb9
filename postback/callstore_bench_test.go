package postback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkCallStorePatch is one PATCH to a local call store and its
// answer: the per-call cost of the fan-out.
func BenchmarkCallStorePatch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	cs, err := NewCallStore(CallStoreConfig{URL: srv.URL, Timeout: 5 * time.Second, MaxConcurrency: 16})
	if err != nil {
		b.Fatal(err)
	}
	t := Target{Account: "acct_1", Webhook: "acme", RequestID: "req-1"}
	patch := []byte(`{"converted":true,"revenue_paid_out":25.50}`)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if out := cs.Patch(ctx, t, "abc-123", patch); out.Class != Applied {
			b.Fatal(out)
		}
	}
}
