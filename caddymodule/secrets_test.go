package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// operations#webhooks-and-keys: no key in any log line. The whole README scenario runs against
// Caddyfile.example with the plugin logging at debug level and Caddy's
// access log as configured there; then every log is searched for every key.
func TestNoKeyInAnyLog(t *testing.T) {
	dir := t.TempDir()
	tester := startExample(t, func(config string) string {
		config = strings.Replace(config, fmt.Sprintf("admin localhost:%d", adminPort), fmt.Sprintf("admin localhost:%d\n\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}", adminPort, filepath.Join(dir, "caddy.log")), 1)
		config = strings.Replace(config, "output stdout", "output file "+filepath.Join(dir, "access.log"), 1)
		if strings.Count(config, dir) != 2 {
			t.Fatal("Caddyfile.example changed shape; this test no longer sees its logs")
		}
		return config
	})

	// The walkthrough, then keys in every other place a partner may put one.
	for _, s := range append(walkthrough(t, "README.md"), walkthrough(t, "docs/partner-api.md")...) {
		doStep(t, tester.Client, s)
	}
	wrong := "wrong-key-9f8e7d"
	extra := []struct{ method, url, auth string }{
		{"GET", "http://127.0.0.1:8080/postback/update-fields?moja_auth_key=" + wrong + "&call_log_id=abc-123&converted=1", ""},
		{"GET", "http://127.0.0.1:8080/postback/update-tags?moja_auth_key=demo-revenue-key&call_log_id=abc-123&remove=x", ""},
		{"POST", "http://127.0.0.1:8080/postback/update-fields?call_log_id=abc-123&converted=1", "Bearer demo-fields-key"},
		{"POST", "http://127.0.0.1:8080/postback/update-fields?call_log_id=abc-123&converted=1", "Bearer " + wrong},
		{"GET", "http://127.0.0.1:8080/postback/nowhere?moja_auth_key=demo-fields-key", ""},
	}
	for _, e := range extra {
		req, _ := http.NewRequest(e.method, e.url, nil)
		if e.auth != "" {
			req.Header.Set("Authorization", e.auth)
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Load another config so the file logs are flushed and closed.
	startEdge(t, edgeConfig("http://127.0.0.1:1", "", ""))

	all := ""
	for _, name := range []string{"caddy.log", "access.log"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(data) == 0 {
			t.Fatalf("%s: empty or missing (%v); the test would prove nothing", name, err)
		}
		all += string(data)
	}
	if !strings.Contains(all, `"logger":"http.handlers.postback"`) || !strings.Contains(all, "handled request") {
		t.Fatal("the logs lack the plugin's debug lines or the access log")
	}
	for _, key := range append([]string{wrong}, values(demoKeys)...) {
		if strings.Contains(all, key) {
			for _, line := range strings.Split(all, "\n") {
				if strings.Contains(line, key) {
					t.Errorf("a log line holds the key %q: %.400s", key, line)
					break
				}
			}
		}
	}
}

func values(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
