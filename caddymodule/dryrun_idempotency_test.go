package caddymodule_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// partner-api#dry-run: a dry run with an idempotency key neither reads nor
// writes the idempotency store, so the key stays unused: the real request
// with it is then applied, and only its retry is a replay.
func TestDryRunLeavesTheIdempotencyKeyUnused(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, srv.URL()))
	applied := `{"call_log_ids":["dry-idem"],"failed_call_log_ids":[]}`

	dry := sendKey(t, tester, edgePort, fieldsKey, "dry-key", `{"call_log_id":"dry-idem","revenue_paid_out":"12.00","dry_run":true}`)
	wantAnswer(t, "dry run", dry, 200, `{"dry_run":true,"call_log_ids":["dry-idem"],"failed_call_log_ids":[],"patch":{"revenue_paid_out":12.00}}`, false)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	if keys := client.Keys(context.Background(), "idem-e2e:idem:*").Val(); len(keys) != 0 {
		t.Fatalf("partner-api#dry-run the dry run wrote to the idempotency store: %v", keys)
	}
	if got := store.applied("dry-idem"); len(got) != 0 {
		t.Fatalf("partner-api#dry-run the dry run sent PATCHes %v", got)
	}

	body := `{"call_log_id":"dry-idem","revenue_paid_out":"12.00"}`
	wantAnswer(t, "the real request after the dry run", sendKey(t, tester, edgePort, fieldsKey, "dry-key", body), 200, applied, false)
	wantAnswer(t, "its retry", sendKey(t, tester, edgePort, fieldsKey, "dry-key", body), 200, applied, true)
	if got := store.applied("dry-idem"); len(got) != 1 || got[0] != `{"revenue_paid_out":12.00}` {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}
}
