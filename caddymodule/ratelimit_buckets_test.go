package caddymodule_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// operations#webhooks-and-keys: the JSON form of rate_limit is structured,
// {"events": 1, "window": "1m", "burst": 2}.
func TestRateLimitJSONForm(t *testing.T) {
	store := newScriptedStore(t)
	caddyfile := edgeConfig(store.URL, "", `webhook limited {
				type update_fields
				account acct_1
				key limited-key-json
				rate_limit 1/m 2
			}`)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	const shorthand = `"rate_limit":{"burst":2,"events":1,"window":60000000000}`
	if !strings.Contains(string(adapted), shorthand) {
		t.Fatalf("the Caddyfile shorthand did not adapt to %s: %s", shorthand, adapted)
	}
	config := strings.Replace(string(adapted), shorthand, `"rate_limit":{"events":1,"window":"1m","burst":2}`, 1)
	tester := startEdgeWith(t, config, "json")
	url := edgeURL("/postback/update-fields?moja_auth_key=limited-key-json")
	for i, want := range []int{200, 200, 429} {
		if status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"rl-json","converted":true}`); status != want {
			t.Fatalf("request %d: %d %s, want %d", i, status, body, want)
		}
	}
}

// operations#the-queue-in-production: a rate-limit bucket belongs to one webhook of one handler,
// named by the webhook and a digest of its keys: two handlers whose
// webhooks share only a name do not share a bucket.
func TestRateLimitBucketPerHandler(t *testing.T) {
	store := newScriptedStore(t)
	handler := func(key string) string {
		return `postback {
				webhook acme {
					type update_fields
					key ` + key + `
					rate_limit 1/m 1
				}
			}`
	}
	config := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	postback {
		call_store %s
	}
}

http://127.0.0.1:%d {
	route /a/* {
		%s
	}
	route /b/* {
		%s
	}
}
`, adminPort, edgePort, store.URL, edgePort, handler("key-of-handler-a"), handler("key-of-handler-b"))
	tester := startEdge(t, config)
	a := edgeURL("/a/update-fields?moja_auth_key=key-of-handler-a")
	b := edgeURL("/b/update-fields?moja_auth_key=key-of-handler-b")
	for i, step := range []struct {
		url  string
		want int
	}{{a, 200}, {a, 429}, {b, 200}, {b, 429}} {
		if status, body := send(t, tester, "POST", step.url, jsonType, `{"call_log_id":"rl-bucket","converted":true}`); status != step.want {
			t.Fatalf("step %d: %d %s, want %d", i, status, body, step.want)
		}
	}
}

// operations#the-queue-in-production: with the limiter's Redis down, requests are allowed,
// each failure is counted, and the warning is logged once per 10 s with
// a count, not once per request.
func TestRateLimiterRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	config := edgeConfig(store.URL, "redis "+srv.URL(), `webhook limited {
				type update_fields
				account acct_1
				key limited-key-down
				rate_limit 100/s
			}`)
	config = strings.Replace(config, "skip_install_trust", "skip_install_trust\n\tlog {\n\t\toutput file "+logFile+"\n\t}", 1)
	tester := startEdge(t, config)
	srv.Stop()
	const n = 5
	for i := 0; i < n; i++ {
		if status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key=limited-key-down"), jsonType, `{"call_log_id":"rl-down","converted":true}`); status != 200 {
			t.Fatalf("request %d with the limiter's Redis down: %d %s, want 200", i, status, body)
		}
	}
	_, metrics := adminDo(t, "GET", "/metrics")
	want := fmt.Sprintf(`caddy_postback_limiter_failures_total{webhook="limited"} %d`, n)
	if !strings.Contains(metrics, want) {
		t.Errorf("/metrics lacks %s", want)
	}
	// Load another config so the log is flushed and closed.
	startEdge(t, edgeConfig("http://127.0.0.1:1", "", ""))
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var warnings []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if gjson.Get(sc.Text(), "msg").String() == "rate limiter unavailable; requests allowed" {
			warnings = append(warnings, sc.Text())
		}
	}
	if len(warnings) != 1 || gjson.Get(warnings[0], "count").Int() != 1 {
		t.Fatalf("%d warnings for %d failures within 10s, want one (with its count): %q", len(warnings), n, warnings)
	}
}

// startEdgeWith is startEdge for a config in another format.
func startEdgeWith(t *testing.T, config, adapter string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 10 * time.Second, TestRequestTimeout: 15 * time.Second})
	tester.InitServer(config, adapter)
	if t.Failed() || t.Skipped() {
		t.Fatal("Caddy did not take the config")
	}
	return tester
}
