package caddymodule_test

import (
	"strings"
	"testing"
)

// Metrics count postbacks and calls by webhook and outcome, on Caddy's
// admin /metrics, and never carry a key (operations#webhooks-and-keys).
func TestMetrics(t *testing.T) {
	store := newScriptedStore(t)
	store.set("metrics-gone", "gone")
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":["metrics-ok","metrics-gone"],"converted":true}`)
	send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key=wrong-key"), jsonType, `{}`)

	status, body := adminDo(t, "GET", "/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`caddy_postback_requests_total{endpoint="update-fields",status="200",webhook="acme"}`,
		`caddy_postback_requests_total{endpoint="update-fields",status="401",webhook="unauthenticated"}`,
		`caddy_postback_calls_total{outcome="applied",webhook="acme"}`,
		`caddy_postback_calls_total{outcome="not_found",webhook="acme"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, key := range []string{fieldsKey, revenueKey, tagsKey, otherAcctKey, "wrong-key", "metrics-ok"} {
		if strings.Contains(body, key) {
			t.Errorf("/metrics shows %q", key)
		}
	}
}
