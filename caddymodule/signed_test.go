package caddymodule_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/tidwall/gjson"
)

// Signing secrets of these tests; made with `caddy postback new-secret`.
const (
	signedSecretOld = "whsec_lxj4m2pR8ZJqJbDUp0yuYVpx/D9G1vvGqG0kuhnlXUE="
	signedSecretNew = "whsec_3OQ5kn2CAlqBpOBgF8tEo2qBLJQzbQqfHN0HR6bdHQc="
	revenueSecret   = "whsec_bm9O2gyNQy8OVs2VAQ0PXTn1nq3rYBGcWwQm6aw7pT4="
)

// signedWebhooks are webhooks added in front of edgeConfig's: one signed
// update_fields webhook with secrets (in this order) and a signed
// update_revenue one.
func signedWebhooks(secrets ...string) string {
	var b strings.Builder
	b.WriteString("id partner_edge\n\t\t\twebhook signed {\n\t\t\t\ttype update_fields\n\t\t\t\taccount acct_1\n")
	for _, s := range secrets {
		fmt.Fprintf(&b, "\t\t\t\tsigning_secret %s\n", s)
	}
	fmt.Fprintf(&b, "\t\t\t}\n\t\t\twebhook signed_revenue {\n\t\t\t\ttype update_revenue\n\t\t\t\taccount acct_1\n\t\t\t\tsigning_secret %s\n\t\t\t}\n", revenueSecret)
	return b.String()
}

// signature is the webhook-signature entry of Standard Webhooks, computed
// here independently of the handler's code.
func signature(secret, id, timestamp, body string) string {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		panic(err)
	}
	m := hmac.New(sha256.New, key)
	io.WriteString(m, id+"."+timestamp+"."+body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// signedHeaders signs body as sent at, under secret.
func signedHeaders(secret, id string, at time.Time, body string) http.Header {
	ts := strconv.FormatInt(at.Unix(), 10)
	return http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {signature(secret, id, ts, body)}}
}

// do sends one request with headers and returns the status and body.
func do(t *testing.T, client *http.Client, method, url, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// In real Caddy, against a real HTTP call store: signed requests are
// applied; each way a signature can be wrong is a 401 that says which, and
// nothing reaches the call store.
func TestSignedPostbacks(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", signedWebhooks(signedSecretOld, signedSecretNew)))
	url := edgeURL("/postback/update-fields")
	now := time.Now()

	t.Run("partner-api#signed-postbacks a signed POST without key is applied", func(t *testing.T) {
		body := `{"call_log_id":"sig-post","converted":true}`
		status, out := do(t, tester.Client, "POST", url, body, signedHeaders(signedSecretNew, "msg_post_1", now, body))
		if status != 200 {
			t.Fatalf("status %d: %s", status, out)
		}
		jsonEqual(t, out, `{"call_log_ids":["sig-post"],"failed_call_log_ids":[]}`)
		recs := store.records()
		if got := store.applied("sig-post"); len(got) != 1 || got[0] != `{"converted":true}` {
			t.Fatalf("applied %v", got)
		}
		if last := recs[len(recs)-1]; last.Webhook != "signed" || last.Account != "acct_1" {
			t.Errorf("partner-api#signed-postbacks the PATCH came as %+v, want webhook signed of acct_1", last)
		}
	})
	t.Run("partner-api#signed-postbacks a signed GET signs the empty body and is applied", func(t *testing.T) {
		status, out := do(t, tester.Client, "GET", url+"?call_log_id=sig-get&converted=1", "", signedHeaders(signedSecretNew, "msg_get_1", now, ""))
		if status != 200 || len(store.applied("sig-get")) != 1 {
			t.Fatalf("status %d: %s; applied %v", status, out, store.applied("sig-get"))
		}
	})
	t.Run("partner-api#signed-postbacks a header with two signatures, the second valid, passes", func(t *testing.T) {
		body := `{"call_log_id":"sig-two","converted":true}`
		h := signedHeaders(signedSecretNew, "msg_two", now, body)
		h["Webhook-Signature"] = []string{signature(revenueSecret, "msg_two", h.Get("Webhook-Timestamp"), body+" ") + " " + h.Get("Webhook-Signature")}
		if status, out := do(t, tester.Client, "POST", url, body, h); status != 200 || len(store.applied("sig-two")) != 1 {
			t.Fatalf("status %d: %s", status, out)
		}
	})
	t.Run("partner-api#signed-postbacks signatures on two header lines are read as one list", func(t *testing.T) {
		body := `{"call_log_id":"sig-lines","converted":true}`
		h := signedHeaders(signedSecretNew, "msg_lines", now, body)
		h["Webhook-Signature"] = []string{signature(revenueSecret, "msg_lines", h.Get("Webhook-Timestamp"), body), h.Get("Webhook-Signature")}
		if status, out := do(t, tester.Client, "POST", url, body, h); status != 200 || len(store.applied("sig-lines")) != 1 {
			t.Fatalf("status %d: %s", status, out)
		}
	})
	t.Run("partner-api#signed-postbacks the same signed request sent twice is applied once", func(t *testing.T) {
		body := `{"call_log_id":"sig-twice","revenue_paid_out":"10.00"}`
		h := signedHeaders(signedSecretNew, "msg_twice", now, body)
		firstStatus, first := do(t, tester.Client, "POST", url, body, h)
		status, again := do(t, tester.Client, "POST", url, body, h)
		if firstStatus != 200 || status != 200 || again != first {
			t.Fatalf("first %d %s, again %d %s", firstStatus, first, status, again)
		}
		if got := store.applied("sig-twice"); len(got) != 1 {
			t.Fatalf("partner-api#safe-retries webhook-id is the idempotency key: applied %v, want once", got)
		}
	})
	t.Run("partner-api#signed-postbacks the webhook's older secret still signs until it is removed", func(t *testing.T) {
		body := `{"call_log_id":"sig-old","converted":true}`
		if status, out := do(t, tester.Client, "POST", url, body, signedHeaders(signedSecretOld, "msg_old", now, body)); status != 200 {
			t.Fatalf("status %d: %s", status, out)
		}
	})

	body := `{"call_log_id":"sig-refused","converted":true}`
	noTimestamp := signedHeaders(signedSecretNew, "msg_r1", now, body)
	delete(noTimestamp, "Webhook-Timestamp")
	noSignature := signedHeaders(signedSecretNew, "msg_r2", now, body)
	delete(noSignature, "Webhook-Signature")
	refusals := []struct {
		name    string
		method  string
		url     string
		body    string
		header  http.Header
		status  int
		message string
	}{
		{"a body changed by one byte", "POST", url, strings.Replace(body, "true", "True", 1), signedHeaders(signedSecretNew, "msg_r3", now, body), 401,
			"invalid webhook-signature: no v1 signature matches webhook-id.webhook-timestamp.body under the webhook's signing secret"},
		{"a timestamp 6 minutes old", "POST", url, body, signedHeaders(signedSecretNew, "msg_r4", now.Add(-6*time.Minute), body), 401,
			"webhook-timestamp is more than 5 minutes old: sign each request when it is sent"},
		{"no webhook-timestamp header", "POST", url, body, noTimestamp, 401,
			"missing webhook-timestamp header: a signed request carries webhook-id, webhook-timestamp and webhook-signature"},
		{"no webhook-signature header", "POST", url, body, noSignature, 401,
			"missing webhook-signature header: a signed request carries webhook-id, webhook-timestamp and webhook-signature"},
		{"a GET whose query is not what was signed", "GET", url + "?call_log_id=sig-refused&converted=1", "", signedHeaders(signedSecretNew, "msg_r5", now, `{"x":1}`), 401,
			"invalid webhook-signature: no v1 signature matches webhook-id.webhook-timestamp.body under the webhook's signing secret"},
		{"the update_revenue webhook's signature on update-fields", "POST", url, body, signedHeaders(revenueSecret, "msg_r6", now, body), 403,
			"this signature belongs to a webhook of type update_revenue and cannot be used on update-fields"},
		{"neither key nor signature", "POST", url, body, nil, 401,
			"missing auth key: send it as the moja_auth_key query parameter or as Authorization: Bearer <key>, or sign the request (webhook-id, webhook-timestamp, webhook-signature)"},
	}
	for _, tt := range refusals {
		t.Run("partner-api#signed-postbacks "+tt.name+": "+strconv.Itoa(tt.status)+", nothing sent", func(t *testing.T) {
			before := len(store.records())
			status, out := do(t, tester.Client, tt.method, tt.url, tt.body, tt.header)
			if status != tt.status || gjson.Get(out, "error.message").String() != tt.message {
				t.Fatalf("status %d %s\nwant   %d %q", status, out, tt.status, tt.message)
			}
			if got := len(store.records()); got != before {
				t.Errorf("the call store got %d PATCHes", got-before)
			}
		})
	}

	// Rotation: the old secret is removed from the config.
	startEdge(t, edgeConfig(store.URL, "", signedWebhooks(signedSecretNew)))
	t.Run("partner-api#signed-postbacks a signature with a rotated-out secret: 401, nothing sent", func(t *testing.T) {
		before := len(store.records())
		status, out := do(t, tester.Client, "POST", url, body, signedHeaders(signedSecretOld, "msg_r7", time.Now(), body))
		if status != 401 || !strings.Contains(gjson.Get(out, "error.message").String(), "invalid webhook-signature") || len(store.records()) != before {
			t.Fatalf("status %d %s; %d PATCHes", status, out, len(store.records())-before)
		}
		status, out = do(t, tester.Client, "POST", url, body, signedHeaders(signedSecretNew, "msg_r8", time.Now(), body))
		if status != 200 {
			t.Fatalf("the new secret: status %d %s", status, out)
		}
	})
}

// operations#keys-rotation-and-signatures: old and new keys both work before the old one's
// expires, only the new one after, with no reload at the switch; the
// expiry is set at runtime through Caddy's admin API, as an operator does.
func TestKeyRotationInCaddy(t *testing.T) {
	store := newScriptedStore(t)
	extra := "id partner_edge\n\t\t\twebhook rotating {\n\t\t\t\ttype update_fields\n\t\t\t\taccount acct_1\n" +
		"\t\t\t\tkey rot-old-key expires " + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + "\n\t\t\t\tkey rot-new-key\n\t\t\t}\n"
	tester := startEdge(t, edgeConfig(store.URL, "", extra))
	send := func(key, id string) (int, string) {
		return do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key="+key+"&converted=1&call_log_id="+id), "", nil)
	}
	for i, key := range []string{"rot-old-key", "rot-new-key"} {
		if status, out := send(key, "rot-before-"+strconv.Itoa(i)); status != 200 {
			t.Fatalf("operations#keys-rotation-and-signatures before the old key's expires, key %d: %d %s", i, status, out)
		}
	}
	if m := metricsText(t); !strings.Contains(m, `caddy_postback_authenticated_total{credential="key",index="1",webhook="rotating"} `) ||
		!strings.Contains(m, `caddy_postback_authenticated_total{credential="key",index="0",webhook="rotating"} `) {
		t.Errorf("operations#keys-rotation-and-signatures the metrics do not count each key index:\n%s", grepLines(m, "authenticated_total"))
	}

	// The operator brings the old key's end forward to a moment just ahead.
	expires := time.Now().Add(500 * time.Millisecond).UTC()
	adminCall(t, "PUT", "/id/partner_edge/webhooks/0/keys/0/expires", strconv.Quote(expires.Format(time.RFC3339Nano)), http.StatusConflict)
	adminCall(t, "PATCH", "/id/partner_edge/webhooks/0/keys/0/expires", strconv.Quote(expires.Format(time.RFC3339Nano)), http.StatusOK)
	// Wait for the moment itself, not a margin: the handler reads the same clock.
	time.Sleep(time.Until(expires))
	status, out := send("rot-old-key", "rot-after-0")
	if status != 401 || gjson.Get(out, "error.message").String() != "key expired" {
		t.Errorf("operations#keys-rotation-and-signatures the old key after its expires: %d %s, want 401 key expired", status, out)
	}
	if status, out := send("rot-new-key", "rot-after-1"); status != 200 {
		t.Errorf("operations#keys-rotation-and-signatures the new key after the old one's expires: %d %s", status, out)
	}
	if got := store.applied("rot-after-0"); len(got) != 0 {
		t.Errorf("the expired key's postback reached the call store: %v", got)
	}
}

// operations#keys-rotation-and-signatures: a key whose expires is already past at load is a
// warning, not an error; the key is refused as expired.
func TestKeyExpiredAtLoad(t *testing.T) {
	store := newScriptedStore(t)
	dir := t.TempDir()
	extra := "webhook lapsed {\n\t\t\t\ttype update_fields\n\t\t\t\tkey lapsed-key expires 2020-01-01T00:00:00Z\n\t\t\t\tkey current-key\n\t\t\t}\n"
	config := strings.Replace(edgeConfig(store.URL, "", extra), "skip_install_trust", "skip_install_trust\n\tlog {\n\t\toutput file "+dir+"/caddy.log\n\t\tlevel WARN\n\t}", 1)
	tester := startEdge(t, config)
	status, out := do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key=lapsed-key&converted=1&call_log_id=x"), "", nil)
	if status != 401 || gjson.Get(out, "error.message").String() != "key expired" {
		t.Errorf("the lapsed key: %d %s", status, out)
	}
	if status, out := do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key=current-key&converted=1&call_log_id=x"), "", nil); status != 200 {
		t.Errorf("the current key: %d %s", status, out)
	}
	startEdge(t, edgeConfig("http://127.0.0.1:1", "", "")) // closes the log file
	log := readFile(t, dir+"/caddy.log")
	if !strings.Contains(log, "webhook key already expired") || !strings.Contains(log, `"webhook":"lapsed"`) || !strings.Contains(log, `"key_index":0`) {
		t.Errorf("no load warning naming the webhook and the key's index:\n%s", log)
	}
	if strings.Contains(log, "lapsed-key") {
		t.Error("the warning shows the key")
	}
}

// operations#keys-rotation-and-signatures: a webhook added through Caddy's admin API answers at
// once, and a key added to a running webhook (single form in the
// Caddyfile) works at once, without a reload of the Caddyfile.
func TestWebhookAddedThroughAdminAPI(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", "id partner_edge"))
	lateKey := "late-partner-key-0001"
	digest := sha256.Sum256([]byte(lateKey))
	status, out := do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key="+lateKey+"&converted=1&call_log_id=late-1"), "", nil)
	if status != 401 {
		t.Fatalf("before: %d %s", status, out)
	}
	adminCall(t, "POST", "/id/partner_edge/webhooks",
		`{"name":"late","type":"update_fields","account":"acct_9","key_sha256":"`+hex.EncodeToString(digest[:])+`"}`, http.StatusOK)
	status, out = do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key="+lateKey+"&converted=1&call_log_id=late-1"), "", nil)
	if status != 200 {
		t.Fatalf("operations#keys-rotation-and-signatures a webhook added through the admin API: %d %s", status, out)
	}
	if recs := store.records(); recs[len(recs)-1].Account != "acct_9" || recs[len(recs)-1].Webhook != "late" {
		t.Errorf("the PATCH came as %+v", recs[len(recs)-1])
	}

	// Webhook 0 is acme, `key fields-key-0001` in the Caddyfile: a second
	// key joins it, and the first is given an end.
	adminCall(t, "POST", "/id/partner_edge/webhooks/0/keys/...", `[{"key":"acme-second-key"}]`, http.StatusOK)
	adminCall(t, "PUT", "/id/partner_edge/webhooks/0/key_expires", `"2099-01-01T00:00:00Z"`, http.StatusOK)
	for _, key := range []string{fieldsKey, "acme-second-key"} {
		if status, out := do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key="+key+"&converted=1&call_log_id=late-2"), "", nil); status != 200 {
			t.Errorf("operations#keys-rotation-and-signatures key %s after the runtime change: %d %s", key, status, out)
		}
	}
	cfg := adminCall(t, "GET", "/id/partner_edge/webhooks/0", "", http.StatusOK)
	if gjson.Get(cfg, "keys.0.key").String() != "acme-second-key" || gjson.Get(cfg, "key_expires").String() != "2099-01-01T00:00:00Z" {
		t.Errorf("webhook 0 reads %s", cfg)
	}
	// A bad change is refused (Caddy answers a failed load with 500) and
	// the running config stays.
	refused := adminCall(t, "PUT", "/id/partner_edge/webhooks/0/keys/0/expires", `"next week"`, http.StatusInternalServerError)
	if !strings.Contains(refused, `webhook acme: key 1: expires \"next week\" must be an RFC 3339 time`) {
		t.Errorf("the refusal does not name the webhook, key and value: %s", refused)
	}
	if status, _ := do(t, tester.Client, "GET", edgeURL("/postback/update-fields?moja_auth_key=acme-second-key&converted=1&call_log_id=late-3"), "", nil); status != 200 {
		t.Errorf("after a refused change: %d", status)
	}
}

// `caddy postback new-key` output pasted into a Caddyfile authenticates
// with the printed key; `caddy postback new-secret` output signs.
func TestNewKeyAndSecretCommands(t *testing.T) {
	key, keyLine := "", ""
	if out := runPostbackCommand(t, "new-key"); true {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "key_sha256 ") {
			t.Fatalf("new-key printed %q, want the key and a key_sha256 line", out)
		}
		key, keyLine = lines[0], lines[1]
		if len(key) != 43 || strings.Trim(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("key %q is not 256 bits of base64url", key)
		}
	}
	secret := strings.TrimSpace(runPostbackCommand(t, "new-secret"))
	if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_")); !strings.HasPrefix(secret, "whsec_") || err != nil || len(raw) != 32 {
		t.Fatalf("new-secret printed %q", secret)
	}
	if again := runPostbackCommand(t, "new-key"); strings.Contains(again, key) {
		t.Fatal("new-key printed the same key twice")
	}

	store := newScriptedStore(t)
	extra := "webhook fresh {\n\t\t\t\ttype update_revenue\n\t\t\t\t" + keyLine + "\n\t\t\t}\n" +
		"\t\t\twebhook fresh_signed {\n\t\t\t\ttype update_fields\n\t\t\t\tsigning_secret " + secret + "\n\t\t\t}\n"
	tester := startEdge(t, edgeConfig(store.URL, "", extra))
	if status, out := do(t, tester.Client, "GET", edgeURL("/postback/update-revenue?moja_auth_key="+key+"&revenue_paid_out=1&call_log_id=fresh-1"), "", nil); status != 200 {
		t.Errorf("operations#keys-rotation-and-signatures the printed key against its pasted key_sha256: %d %s", status, out)
	}
	body := `{"call_log_id":"fresh-2","converted":true}`
	if status, out := do(t, tester.Client, "POST", edgeURL("/postback/update-fields"), body, signedHeaders(secret, "msg_fresh", time.Now(), body)); status != 200 {
		t.Errorf("operations#keys-rotation-and-signatures a request signed with the printed secret: %d %s", status, out)
	}
}

// runPostbackCommand runs `caddy postback <sub>` as Caddy's command line
// builds it, and returns what it printed.
func runPostbackCommand(t *testing.T, sub string) string {
	t.Helper()
	c, ok := caddycmd.Commands()["postback"]
	if !ok {
		t.Fatal("no `caddy postback` command")
	}
	root := &cobra.Command{Use: "postback"}
	c.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs([]string{sub})
	if err := root.Execute(); err != nil {
		t.Fatalf("caddy postback %s: %v", sub, err)
	}
	return out.String()
}

// adminCall calls Caddy's admin API and checks the status.
func adminCall(t *testing.T, method, path, body string, want int) string {
	t.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://localhost:%d%s", adminPort, path), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, out, want)
	}
	return string(out)
}

func metricsText(t *testing.T) string {
	t.Helper()
	return adminCall(t, "GET", "/metrics", "", http.StatusOK)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
