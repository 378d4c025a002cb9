package caddymodule_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

// The call store failing in every way (partner-api#status-codes, operations#updating-a-call): retried where it can
// be, and otherwise each call reported with the class of its failure.
func TestCallStoreFaults(t *testing.T) {
	store := newScriptedStore(t)
	for id, state := range map[string]string{"busy-1": "busy-once", "flaky-1": "flaky", "teapot-1": "teapot", "garbage-1": "garbage-409"} {
		store.set(id, state)
	}
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	tests := []struct {
		id, code string
		status   int
	}{
		{"busy-1", "", 200},  // 429 with Retry-After: 1, then applied
		{"flaky-1", "", 200}, // a burst of three 503s, then applied
		{"teapot-1", "upstream_error", 502},
		{"garbage-1", "upstream_error", 502},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			start := time.Now()
			status, body := send(t, tester, "POST", url, jsonType, fmt.Sprintf(`{"call_log_id":%q,"converted":true}`, tt.id))
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if got := gjson.Get(body, "errors."+tt.id+".code").String(); got != tt.code {
				t.Fatalf("error code %q, want %q: %s", got, tt.code, body)
			}
			if tt.id == "busy-1" && time.Since(start) < 900*time.Millisecond {
				t.Fatalf("retried after %s, before the Retry-After of 1s", time.Since(start))
			}
		})
	}

	t.Run("refused connections", func(t *testing.T) {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		closed := "http://" + l.Addr().String()
		l.Close()
		tester := startEdge(t, edgeConfig(closed, "", ""))
		start := time.Now()
		status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"refused-1","converted":true}`)
		if status != 502 || gjson.Get(body, "errors.refused-1.message").String() != "the call store refused the connection" {
			t.Fatalf("status %d: %s", status, body)
		}
		if d := time.Since(start); d > 3500*time.Millisecond {
			t.Fatalf("took %s, past the 3s deadline", d)
		}
	})
}

// A partner that hangs up mid-request cuts nothing (operations#delivery-guarantee): every call of
// the batch is still sent and runs to the deadline, and nothing is
// half-queued.
func TestPartnerDisconnectsMidRequest(t *testing.T) {
	store := newScriptedStore(t)
	ids := make([]string, 16)
	for i := range ids {
		id := fmt.Sprintf("hangup-%02d", i)
		store.set(id, "hang")
		ids[i] = fmt.Sprintf("%q", id)
	}
	startEdge(t, edgeConfig(store.URL, "", ""))
	_, before := adminDo(t, "GET", "/postback/queue")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), strings.NewReader(`{"call_log_id":[`+strings.Join(ids, ",")+`],"converted":true}`))
	req.Header.Set("Content-Type", jsonType)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the request finished; it should have been cut off")
	}
	// Every call is sent although the partner is gone (max_concurrency 16).
	sent := func() int {
		store.mu.Lock()
		defer store.mu.Unlock()
		n := 0
		for _, hits := range store.hits {
			n += min(hits, 1)
		}
		return n
	}
	waitFor(t, "every call of the batch to be sent", func() bool { return sent() == len(ids) })
	end := time.Now().Add(15 * time.Second)
	for store.inFlight.Load() != 0 {
		if time.Now().After(end) {
			t.Fatal("call-store requests still in flight 15s after the hang-up: the 3s deadline does not bound them")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, after := adminDo(t, "GET", "/postback/queue")
	if gjson.Get(before, "pending_entries").Int() != gjson.Get(after, "pending_entries").Int() {
		t.Fatalf("the queue changed: before %s after %s", before, after)
	}
	if n := len(store.records()); n != 0 {
		t.Fatalf("%d updates applied", n)
	}
}
