package caddymodule_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// partner-api#dry-run in real Caddy against a real HTTP call store: a batch
// with a completed, a live and an unknown call is answered as the real
// request is, with the PATCH body the real request then sends, and
// nothing is written.
func TestDryRunEndToEnd(t *testing.T) {
	store := newScriptedStore(t)
	store.set("dry-done", "completed")
	store.set("dry-live", "live")
	store.set("dry-gone", "gone")
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	batch := `"call_log_id":["dry-done","dry-live","dry-gone"],"converted":"yes","revenue_paid_out":"25.50","call_converted_at":"2026-03-27T12:00:00+02:00","add":{"tier":"gold"},"sub1":"x"`
	wantLists := `"call_log_ids":["dry-done","dry-live"],"failed_call_log_ids":["dry-gone"],"queued_call_log_ids":["dry-live"],` +
		`"errors":{"dry-gone":{"code":"not_found","message":"call not found"}},"ignored":["sub1"]`

	dryRuns := []struct {
		name   string
		body   string
		header string
	}{
		{"JSON dry_run", `{` + batch + `,"dry_run":true}`, ""},
		{"query dry_run=1", `{` + batch + `}`, "query"},
		{"Postback-Dry-Run header", `{` + batch + `}`, "header"},
	}
	var patch string
	for _, d := range dryRuns {
		u := url
		if d.header == "query" {
			u += "&dry_run=1"
		}
		req, _ := http.NewRequest("POST", u, strings.NewReader(d.body))
		req.Header.Set("Content-Type", jsonType)
		if d.header == "header" {
			req.Header.Set("Postback-Dry-Run", "1")
		}
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(resp)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d %s", d.name, resp.StatusCode, body)
		}
		patch = gjson.Get(body, "patch").Raw
		jsonEqual(t, body, `{"dry_run":true,`+wantLists+`,"patch":`+patch+`}`)
		if store.patchesSent() != 0 {
			t.Fatalf("%s: the call store received %d PATCHes", d.name, store.patchesSent())
		}
	}
	if _, q := adminDo(t, "GET", "/postback/queue"); gjson.Get(q, "pending_entries").Int() != 0 {
		t.Fatalf("partner-api#dry-run the queue holds entries after dry runs: %s", q)
	}
	if store.lookups < 3*3 {
		t.Errorf("the call store saw %d look-ups, want one per call of each dry run", store.lookups)
	}

	// The real request: the same lists, the same status, and the PATCH the
	// dry run showed, byte for byte.
	status, body := send(t, tester, "POST", url, jsonType, `{`+batch+`}`)
	if status != 200 {
		t.Fatalf("the real request: %d %s", status, body)
	}
	jsonEqual(t, body, `{`+wantLists+`}`)
	if got := store.applied("dry-done"); len(got) != 1 || got[0] != patch {
		t.Fatalf("the real request sent %q; the dry run said %s", got, patch)
	}

	t.Run("partner-api#dry-run an invalid dry run gets the real request's 400", func(t *testing.T) {
		invalid := `{"call_log_id":"dry-done","converted":"maybe","revenue_paid_out":"$5"`
		realStatus, realBody := send(t, tester, "POST", url, jsonType, invalid+`}`)
		for _, dry := range []string{invalid + `,"dry_run":true}`, invalid + `,"dry_run":1}`} {
			status, body := send(t, tester, "POST", url, jsonType, dry)
			if realStatus != 400 || status != realStatus || body != realBody {
				t.Errorf("dry run: %d %s\nreal:    %d %s", status, body, realStatus, realBody)
			}
		}
		status, body := send(t, tester, "GET", url+"&call_log_id=dry-done&converted=1&dry_run=perhaps", "", "")
		if status != 400 || gjson.Get(body, "error.fields.dry_run").String() == "" {
			t.Errorf("dry_run=perhaps: %d %s, want a 400 naming dry_run", status, body)
		}
	})

	t.Run("partner-api#dry-run call-completed answers what it would schedule", func(t *testing.T) {
		// dry-live's update waits in the queue since the real request.
		completed := edgeURL("/postback/call-completed?moja_auth_key=" + platformKey)
		status, body := send(t, tester, "POST", completed+"&dry_run=1", jsonType, `{"call_log_id":["dry-live","dry-done"]}`)
		if status != 202 {
			t.Fatalf("status %d %s", status, body)
		}
		jsonEqual(t, body, `{"dry_run":true,"call_log_ids":["dry-live"]}`)
		if _, q := adminDo(t, "GET", "/postback/queue/dry-live"); len(gjson.Get(q, "pending").Array()) != 1 {
			t.Fatalf("dry-live's queue after the dry run: %s, want its one update", q)
		}
	})

	store.mu.Lock()
	defer store.mu.Unlock()
	if store.hits["dry-done"] != 1 || store.hits["dry-gone"] != 1 {
		t.Fatalf("the call store received %d and %d PATCHes for dry-done and dry-gone; want only the real request's one each", store.hits["dry-done"], store.hits["dry-gone"])
	}
}
