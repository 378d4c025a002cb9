package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"
)

// The handler sets {http.postback.webhook} and {http.postback.request_id}
// for access logs and the handlers around it: here, deferred response
// headers read them.
func TestPostbackPlaceholders(t *testing.T) {
	store := newScriptedStore(t)
	config := edgeConfig(store.URL, "", "")
	config = strings.Replace(config, "route /postback/* {", `route /postback/* {
		header {
			defer
			X-Seen-Webhook {http.postback.webhook}
			X-Seen-Request-Id {http.postback.request_id}
		}`, 1)
	tester := startEdge(t, config)
	req, _ := http.NewRequest("POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), strings.NewReader(`{"call_log_id":"ph-1","converted":true}`))
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("X-Request-Id", "partner-req-42")
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Seen-Webhook"); got != "acme" {
		t.Errorf("{http.postback.webhook} = %q, want acme", got)
	}
	if got := resp.Header.Get("X-Seen-Request-Id"); got != "partner-req-42" {
		t.Errorf("{http.postback.request_id} = %q, want partner-req-42", got)
	}
}
