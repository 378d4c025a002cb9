package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// operations#webhooks-and-keys: no key, signing secret or signature in any log line. The whole README scenario runs against
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
		req, _ := http.NewRequest(e.method, examplePorts(e.url), nil)
		if e.auth != "" {
			req.Header.Set("Authorization", e.auth)
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	// Signed requests (operations#keys-rotation-and-signatures): valid, tampered, stale, with a
	// secret of no webhook, and with a key as well. Their signatures must
	// not reach a log either.
	secret := demoKeys["ACME_SIGNING_SECRET"]
	strayed := "whsec_c3RyYXktc2VjcmV0LW9mLW5vLXdlYmhvb2stMDAwMQ=="
	body := `{"call_log_id":"abc-123","revenue_paid_out":"12.50"}`
	signedURL := "http://127.0.0.1:8080/postback/update-revenue"
	secrets := []string{secret, strings.TrimPrefix(secret, "whsec_"), strayed, strings.TrimPrefix(strayed, "whsec_")}
	for _, s := range []struct {
		url, body string
		header    http.Header
	}{
		{signedURL, body, signedHeaders(secret, "msg_log_1", time.Now(), body)},
		{signedURL, body + " ", signedHeaders(secret, "msg_log_2", time.Now(), body)},
		{signedURL, body, signedHeaders(secret, "msg_log_3", time.Now().Add(-time.Hour), body)},
		{signedURL, body, signedHeaders(strayed, "msg_log_4", time.Now(), body)},
		{signedURL + "?moja_auth_key=" + wrong, body, signedHeaders(secret, "msg_log_5", time.Now(), body)},
		{"http://127.0.0.1:8080/postback/update-fields?call_log_id=abc-123&converted=1", "", signedHeaders(secret, "msg_log_6", time.Now(), "")},
	} {
		if status, out := do(t, tester.Client, "POST", examplePorts(s.url), s.body, s.header); status == 0 {
			t.Fatal(out)
		}
		secrets = append(secrets, strings.TrimPrefix(s.header.Get("Webhook-Signature"), "v1,"))
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
	for _, key := range append(append([]string{wrong}, values(demoKeys)...), secrets...) {
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
