package caddymodule_test

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// TestDashboardMetricsExported scrapes /metrics of a running Caddy after a
// scenario that applies, fails, queues, buries and drops updates, and checks
// that every metric docs/grafana/postback.json queries is exported
// (operations#metrics).
func TestDashboardMetricsExported(t *testing.T) {
	data, err := os.ReadFile("../docs/grafana/postback.json")
	if err != nil {
		t.Fatal(err)
	}
	if !gjson.ValidBytes(data) {
		t.Fatal("docs/grafana/postback.json is not JSON")
	}
	names := map[string]bool{}
	for _, expr := range gjson.GetBytes(data, "panels.#.targets.#.expr|@flatten").Array() {
		for _, name := range regexp.MustCompile(`caddy_postback_[a-z_]+`).FindAllString(expr.Str, -1) {
			names[name] = true
		}
	}
	if len(names) < 8 {
		t.Fatalf("the dashboard queries only %v", names)
	}

	// Counters are the process's, shared with other tests: compare.
	dropped := `caddy_postback_dead_letters_dropped_total{cause="max_per_call"}`
	buried := `caddy_postback_dead_letters_total{reason="rejected",webhook="acme"}`
	store := newScriptedStore(t)
	store.set("m-live", "live")
	store.set("m-gone", "gone")
	tester := startEdge(t, edgeConfig(store.URL, "dead_max_per_call 1", ""))
	_, before := adminDo(t, "GET", "/metrics")
	send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":["m-ok","m-gone"],"converted":true}`)
	queueUpdate(t, tester, fieldsKey, `{"call_log_id":"m-live","reason":"one"}`)
	queueUpdate(t, tester, fieldsKey, `{"call_log_id":"m-live","reason":"two"}`)
	store.set("m-live", "refuse")
	complete(t, tester, "m-live")

	var body string
	waitFor(t, "a dead letter dropped", func() bool {
		_, body = adminDo(t, "GET", "/metrics")
		return seriesValue(body, dropped) == seriesValue(before, dropped)+1
	})
	if got := seriesValue(body, buried) - seriesValue(before, buried); got != 2 {
		t.Errorf("%s rose by %v, want 2", buried, got)
	}
	exported := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if name := regexp.MustCompile(`^caddy_postback_[a-z_]+`).FindString(line); name != "" {
			exported[name] = true
		}
	}
	var missing []string
	for name := range names {
		if !exported[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("operations#metrics the dashboard queries %v, which /metrics does not export", missing)
	}
	for _, want := range []string{
		`caddy_postback_call_store_request_duration_seconds_count{outcome="live"}`,
		`caddy_postback_call_store_request_duration_seconds_count{outcome="not_found"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// seriesValue is the value of one series in a /metrics body, 0 if absent.
func seriesValue(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}
