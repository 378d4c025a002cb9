package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func adminURL(path string) string { return fmt.Sprintf("http://localhost:%d%s", adminPort, path) }

func adminDo(t *testing.T, method, path string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, adminURL(path), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, _ = fmt.Fprint(&b, readAll(resp))
	return resp.StatusCode, b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// operations#completion-and-dead-letters: an update the call store refuses moves to the dead letters, the
// admin API shows it, and a requeue applies it once the call is fixed.
func TestAdminQueueAndDeadLetters(t *testing.T) {
	store := newScriptedStore(t)
	id := "admin/live%1" // path-escaped on the admin API as on the call store
	escaped := "admin%2Flive%251"
	store.set(escaped, "live")
	tester := startEdge(t, edgeConfig(store.URL, "drain_interval 1h", ""))

	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":"admin/live%1","reason":"queued"}`)
	if status != 202 {
		t.Fatalf("status %d: %s", status, body)
	}
	status, body = adminDo(t, "GET", "/postback/queue/"+escaped)
	if status != 200 {
		t.Fatalf("admin queue: %d %s", status, body)
	}
	if got := gjson.Get(body, "pending.#").Int(); got != 1 {
		t.Fatalf("pending entries %d: %s", got, body)
	}
	if p := gjson.Get(body, "pending.0.patch").Raw; p != `{"reason":"queued"}` {
		t.Fatalf("pending patch %s", p)
	}
	if w := gjson.Get(body, "pending.0.webhook").String(); w != "acme" {
		t.Fatalf("pending webhook %q", w)
	}
	if strings.Contains(body, fieldsKey) {
		t.Fatal("operations#webhooks-and-keys the admin API shows a key")
	}
	_, body = adminDo(t, "GET", "/postback/queue")
	if gjson.Get(body, "pending_entries").Int() < 1 || gjson.Get(body, "backend").String() != "memory" {
		t.Fatalf("stats %s", body)
	}

	// The call store now refuses the call: the entry is buried with why.
	store.set(escaped, "refuse")
	send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, fmt.Sprintf(`{"call_log_id":%q}`, id))
	waitFor(t, "the dead letter", func() bool {
		_, body = adminDo(t, "GET", "/postback/queue/"+escaped)
		return gjson.Get(body, "dead.#").Int() == 1
	})
	if r := gjson.Get(body, "dead.0.reason").String(); r != "rejected: revenue is locked for billing" {
		t.Fatalf("dead reason %q", r)
	}
	if gjson.Get(body, "pending.#").Int() != 0 {
		t.Fatalf("still pending: %s", body)
	}

	// Fixed upstream; the operator requeues; the update is applied.
	store.set(escaped, "completed")
	status, body = adminDo(t, "POST", "/postback/dead/"+escaped+"/requeue")
	if status != 200 || gjson.Get(body, "requeued").Int() != 1 {
		t.Fatalf("requeue: %d %s", status, body)
	}
	waitFor(t, "the requeued update", func() bool { return len(store.applied(escaped)) == 1 })
	if got := store.applied(escaped)[0]; got != `{"reason":"queued"}` {
		t.Fatalf("applied %s", got)
	}
	if status, _ := adminDo(t, "GET", "/postback/dead/"+escaped+"/requeue"); status != 405 {
		t.Fatalf("GET on requeue: %d", status)
	}
}
