package caddymodule_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// A webhook over its rate limit gets 429 with Retry-After, and the call
// store is not touched; other webhooks are not affected.
func TestWebhookRateLimit(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", `webhook limited {
				type update_fields
				account acct_1
				key limited-key-0001
				rate_limit 1/m 2
			}`))
	url := edgeURL("/postback/update-fields?moja_auth_key=limited-key-0001")
	for i := 0; i < 2; i++ {
		if status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"rl-1","converted":true}`); status != 200 {
			t.Fatalf("request %d within the burst: %d %s", i, status, body)
		}
	}
	req, _ := http.NewRequest("POST", url, strings.NewReader(`{"call_log_id":"rl-1","converted":true}`))
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp)
	resp.Body.Close()
	if resp.StatusCode != 429 || gjson.Get(body, "error.code").String() != "too_many_requests" {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || secs < 1 || secs > 60 {
		t.Fatalf("Retry-After %q, want 1 to 60 seconds", resp.Header.Get("Retry-After"))
	}
	if n := len(store.applied("rl-1")); n != 2 {
		t.Fatalf("the call store saw %d updates, want the 2 allowed", n)
	}
	if status, _ := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":"rl-2","converted":true}`); status != 200 {
		t.Fatalf("another webhook was limited too: %d", status)
	}
}
