package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

const jsonType = "application/json"

// The examples of the two release notes this product implements, verbatim.
func TestReleaseNoteExamples(t *testing.T) {
	store := newScriptedStore(t)
	store.set("ghi-789", "gone")
	tester := startEdge(t, edgeConfig(store.URL, "", ""))

	t.Run("single update_fields still works", func(t *testing.T) {
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{
  "call_log_id": "abc-123",
  "converted": true,
  "revenue_paid_out": 25.50
}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		jsonEqual(t, body, `{"call_log_ids":["abc-123"],"failed_call_log_ids":[]}`)
		if got := store.applied("abc-123"); len(got) != 1 || got[0] != `{"converted":true,"revenue_paid_out":25.50}` {
			t.Fatalf("operations#updating-a-call PATCH bodies = %q", got)
		}
	})

	batch := []struct{ endpoint, key, body, patch string }{
		{"update-revenue", revenueKey, `{
  "call_log_id": ["abc-123", "def-456", "ghi-789"],
  "revenue_paid_out": 25.50
}`, `{"revenue_paid_out":25.50}`},
		{"update-tags", tagsKey, `{
  "call_log_id": ["abc-123", "def-456", "ghi-789"],
  "add": [{"customer_type": "premium"}],
  "remove": ["old_tag"]
}`, `{"tags":{"add":{"customer_type":"premium"},"remove":["old_tag"]}}`},
		{"update-fields", fieldsKey, `{
  "call_log_id": ["abc-123", "def-456", "ghi-789"],
  "converted": true,
  "revenue_paid_out": 25.50,
  "disposition": "sale"
}`, `{"converted":true,"revenue_paid_out":25.50,"reason":"sale"}`},
	}
	for _, b := range batch {
		t.Run("batch "+b.endpoint, func(t *testing.T) {
			before := len(store.applied("def-456"))
			status, body := send(t, tester, "POST", edgeURL("/postback/"+b.endpoint+"?moja_auth_key="+b.key), jsonType, b.body)
			if status != 200 {
				t.Fatalf("partner-api#status-codes status %d, want 200: %s", status, body)
			}
			// The release note's response, plus the why of partner-api#responses.
			jsonEqual(t, body, `{"call_log_ids":["abc-123","def-456"],"failed_call_log_ids":["ghi-789"],
				"errors":{"ghi-789":{"code":"not_found","message":"call not found"}}}`)
			got := store.applied("def-456")
			if len(got) != before+1 || got[len(got)-1] != b.patch {
				t.Fatalf("operations#updating-a-call PATCH bodies for def-456 = %q, want last %s", got, b.patch)
			}
		})
	}

	t.Run("GET pixel with query parameters", func(t *testing.T) {
		status, body := send(t, tester, "GET", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey+"&call_log_id=pixel-1&converted=1&revenue_paid_out=12.5&sub1=campaign"), "", "")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		jsonEqual(t, body, `{"call_log_ids":["pixel-1"],"failed_call_log_ids":[],"ignored":["sub1"]}`)
		if got := store.applied("pixel-1"); len(got) != 1 || got[0] != `{"converted":true,"revenue_paid_out":12.5}` {
			t.Fatalf("PATCH bodies = %q", got)
		}
	})

	t.Run("GET on update_revenue and update_tags", func(t *testing.T) {
		status, body := send(t, tester, "GET", edgeURL("/postback/update-revenue?moja_auth_key="+revenueKey+"&call_log_id=pixel-2&revenue_paid_out=3"), "", "")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		status, body = send(t, tester, "GET", edgeURL("/postback/update-tags?moja_auth_key="+tagsKey+"&call_log_id=pixel-2&add[source]=pixel&remove=old"), "", "")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		if got := store.applied("pixel-2"); len(got) != 2 || got[1] != `{"tags":{"add":{"source":"pixel"},"remove":["old"]}}` {
			t.Fatalf("PATCH bodies = %q", got)
		}
	})

	t.Run("headers upstream", func(t *testing.T) {
		recs := store.records()
		r := recs[0]
		if r.Account != "acct_1" || r.Webhook != "acme" || r.ReqID == "" {
			t.Fatalf("operations#updating-a-call headers: account %q webhook %q request id %q", r.Account, r.Webhook, r.ReqID)
		}
	})
}

func TestRequestErrors(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	tests := []struct {
		name, method, path, ctype, body string
		status                          int
		code, contains                  string
	}{
		{"partner-api#authentication missing key", "POST", "/postback/update-fields", jsonType, `{"call_log_id":"a","converted":true}`, 401, "unauthorized", "moja_auth_key"},
		{"partner-api#authentication unknown key", "POST", "/postback/update-fields?moja_auth_key=nope", jsonType, `{"call_log_id":"a","converted":true}`, 401, "unauthorized", "invalid auth key"},
		{"partner-api#authentication key of another type", "POST", "/postback/update-tags?moja_auth_key=" + revenueKey, jsonType, `{"call_log_id":"a","remove":"x"}`, 403, "forbidden", "update_revenue"},
		{"partner-api#endpoints unknown endpoint", "POST", "/postback/update-everything?moja_auth_key=" + fieldsKey, jsonType, `{}`, 404, "not_found", "update-fields"},
		{"partner-api#endpoints method", "PUT", "/postback/update-fields?moja_auth_key=" + fieldsKey, jsonType, `{}`, 405, "method_not_allowed", "GET or POST"},
		{"partner-api#request-format content type", "POST", "/postback/update-fields?moja_auth_key=" + fieldsKey, "text/xml", `<a/>`, 415, "unsupported_media_type", "text/xml"},
		{"partner-api#limits body too large", "POST", "/postback/update-fields?moja_auth_key=" + fieldsKey, jsonType, `{"call_log_id":"a","reason":"` + strings.Repeat("x", 70000) + `"}`, 413, "payload_too_large", "65536"},
		{"partner-api#request-format not an object", "POST", "/postback/update-fields?moja_auth_key=" + fieldsKey, jsonType, `"abc"`, 400, "invalid_request", "JSON object"},
		{"partner-api#batches batch in a GET", "GET", "/postback/update-fields?moja_auth_key=" + fieldsKey + "&call_log_id=a&call_log_id=b&converted=1", "", "", 400, "invalid_request", "JSON POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := send(t, tester, tt.method, edgeURL(tt.path), tt.ctype, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			if code := gjson.Get(body, "error.code").String(); code != tt.code {
				t.Errorf("partner-api#errors code %q, want %q: %s", code, tt.code, body)
			}
			if msg := gjson.Get(body, "error.message").String(); !strings.Contains(msg, tt.contains) {
				t.Errorf("message %q does not name %q", msg, tt.contains)
			}
		})
	}

	t.Run("partner-api#errors validation names every field at once", func(t *testing.T) {
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType,
			`{"call_log_id":"a","converted":"maybe","revenue_paid_out":"$5","no_payout_reason":"because"}`)
		if status != 400 {
			t.Fatalf("status %d: %s", status, body)
		}
		for _, f := range []string{"converted", "revenue_paid_out", "no_payout_reason"} {
			if !gjson.Get(body, "error.fields."+f).Exists() {
				t.Errorf("field %s not named: %s", f, body)
			}
		}
	})

	t.Run("partner-api#endpoints 405 carries Allow", func(t *testing.T) {
		req, _ := http.NewRequest("DELETE", edgeURL("/postback/update-fields"), nil)
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, POST" {
			t.Fatalf("status %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
		}
	})

	t.Run("partner-api#authentication bearer key", func(t *testing.T) {
		req, _ := http.NewRequest("POST", edgeURL("/postback/update-fields"), strings.NewReader(`{"call_log_id":"bearer-1","converted":true}`))
		req.Header.Set("Authorization", "Bearer "+fieldsKey)
		resp, err := tester.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})

	if n := len(store.records()); n != 1 {
		t.Fatalf("refused requests reached the call store: %d PATCHes, want only the bearer one", n)
	}
}

// partner-api#status-codes: when every call failed, the status is the failure's.
func TestFailureClasses(t *testing.T) {
	store := newScriptedStore(t)
	store.set("gone-1", "gone")
	store.set("refuse-1", "refuse")
	store.set("error-1", "error")
	store.set("hang-1", "hang")
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	tests := []struct {
		id, code, message string
		status            int
	}{
		{"gone-1", "not_found", "call not found", 404},
		{"refuse-1", "rejected", "revenue is locked for billing", 422},
		{"error-1", "upstream_error", "the call store answered 503", 502},
		{"hang-1", "upstream_timeout", "the call store did not answer in time", 504},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":"`+tt.id+`","converted":true}`)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, body)
			}
			jsonEqual(t, body, fmt.Sprintf(`{"call_log_ids":[],"failed_call_log_ids":[%q],"errors":{%q:{"code":%q,"message":%q}}}`, tt.id, tt.id, tt.code, tt.message))
		})
	}
	t.Run("one failed call does not block the rest", func(t *testing.T) {
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":["ok-1","error-1","ok-2"],"converted":true}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		if got := gjson.Get(body, "call_log_ids").Raw; got != `["ok-1","ok-2"]` {
			t.Fatalf("call_log_ids %s", got)
		}
	})
}

// operations#the-queue: a live call's update waits, later ones queue behind it, and
// call-completed applies them in order.
func TestLiveCallQueuedThenApplied(t *testing.T) {
	store := newScriptedStore(t)
	store.set("live-e2e", "live")
	tester := startEdge(t, edgeConfig(store.URL, "drain_interval 1h", ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)

	status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"live-e2e","reason":"first"}`)
	if status != 202 {
		t.Fatalf("partner-api#status-codes status %d, want 202: %s", status, body)
	}
	jsonEqual(t, body, `{"call_log_ids":["live-e2e"],"failed_call_log_ids":[],"queued_call_log_ids":["live-e2e"]}`)

	// The call completes, but the platform has not said so yet: a new
	// update must still wait behind the first (operations#order).
	store.set("live-e2e", "completed")
	status, body = send(t, tester, "POST", url, jsonType, `{"call_log_id":"live-e2e","reason":"second"}`)
	if status != 202 {
		t.Fatalf("operations#order second update: status %d, want 202: %s", status, body)
	}
	if got := store.applied("live-e2e"); len(got) != 0 {
		t.Fatalf("operations#order an update overtook the queue: %q", got)
	}

	status, body = send(t, tester, "POST", edgeURL("/postback/call-completed"), jsonType, `{"call_log_id":"live-e2e"}`)
	if status != 401 {
		t.Fatalf("call-completed without its key: status %d", status)
	}
	status, body = send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":["live-e2e","nothing-queued"]}`)
	if status != 202 {
		t.Fatalf("operations#completion-and-dead-letters call-completed: status %d: %s", status, body)
	}
	jsonEqual(t, body, `{"call_log_ids":["live-e2e"]}`)

	deadline := time.Now().Add(5 * time.Second)
	for len(store.applied("live-e2e")) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got := store.applied("live-e2e")
	if len(got) != 2 || got[0] != `{"reason":"first"}` || got[1] != `{"reason":"second"}` {
		t.Fatalf("operations#order applied %q, want first then second", got)
	}
	// Drained: the next update goes straight to the call store.
	status, body = send(t, tester, "POST", url, jsonType, `{"call_log_id":"live-e2e","reason":"third"}`)
	if status != 200 {
		t.Fatalf("after draining: status %d: %s", status, body)
	}
}

// partner-api#batches, operations#connections-and-deadlines: a batch of 50 is fanned out concurrently, within the bound.
func TestBatchOf50IsConcurrent(t *testing.T) {
	store := newScriptedStore(t)
	store.delay = 50 * time.Millisecond
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("batch-%02d", i))
	}
	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":[`+strings.Join(ids, ",")+`],"converted":true}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	if n := len(gjson.Get(body, "call_log_ids").Array()); n != 50 {
		t.Fatalf("%d calls updated, want 50", n)
	}
	if got := gjson.Get(body, "call_log_ids.49").String(); got != "batch-49" {
		t.Fatalf("order not kept: last id %q", got)
	}
	peak := store.peak.Load()
	if peak < 8 || peak > 16 {
		t.Fatalf("operations#connections-and-deadlines peak concurrent PATCHes %d, want between 8 and max_concurrency 16", peak)
	}
}

// operations#completion-and-dead-letters: the drain sends the updates of up to max_concurrency
// calls at once, and no more.
func TestDrainSendsUpToMaxConcurrencyCallsAtOnce(t *testing.T) {
	store := newScriptedStore(t)
	ids := make([]string, 12)
	for i := range ids {
		ids[i] = fmt.Sprintf("drained-%02d", i)
		store.set(ids[i], "live")
	}
	config := strings.Replace(edgeConfig(store.URL, "drain_interval 1h", ""), "max_concurrency 16", "max_concurrency 4", 1)
	tester := startEdge(t, config)
	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType,
		`{"call_log_id":["`+strings.Join(ids, `","`)+`"],"converted":true}`)
	if status != 202 || len(gjson.Get(body, "queued_call_log_ids").Array()) != len(ids) {
		t.Fatalf("queueing: status %d: %s", status, body)
	}
	for _, id := range ids {
		store.set(id, "completed")
	}
	release := store.holdAll()
	store.peak.Store(0)
	status, body = send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType,
		`{"call_log_id":["`+strings.Join(ids, `","`)+`"]}`)
	if status != 202 {
		t.Fatalf("call-completed: status %d: %s", status, body)
	}
	// Fewer than four at once would keep this waiting until the test's timeout.
	for store.inFlight.Load() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	release()
	for _, id := range ids {
		for len(store.applied(id)) < 1 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if peak := store.peak.Load(); peak != 4 {
		t.Fatalf("drained calls in flight at once: %d, want max_concurrency, 4", peak)
	}
}

// partner-api#identifying-calls, operations#finding-a-call-by-phone-number: a phone number resolves to the most recent call.
func TestPhoneNumber(t *testing.T) {
	store := newScriptedStore(t)
	store.phones["+15551234567"] = "phone-call-1"
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"phone_number":"(555) 123-4567","converted":true}`)
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	jsonEqual(t, body, `{"call_log_ids":["phone-call-1"],"failed_call_log_ids":[]}`)
	status, body = send(t, tester, "GET", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey+"&phone_number=%2B15550000000&converted=1"), "", "")
	if status != 404 {
		t.Fatalf("unknown number: status %d: %s", status, body)
	}
	jsonEqual(t, body, `{"call_log_ids":[],"failed_call_log_ids":["+15550000000"],"errors":{"+15550000000":{"code":"not_found","message":"no call found for this phone number"}}}`)
}

// partner-api#accounts: a key of one account cannot touch another account's call.
func TestAccountScoping(t *testing.T) {
	store := newScriptedStore(t)
	store.accounts["acct1-call"] = "acct_1"
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+otherAcctKey), jsonType, `{"call_log_id":"acct1-call","converted":true}`)
	if status != 404 {
		t.Fatalf("status %d: %s", status, body)
	}
	if got := store.applied("acct1-call"); len(got) != 0 {
		t.Fatalf("another account changed the call: %q", got)
	}
	status, _ = send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":"acct1-call","converted":true}`)
	if status != 200 {
		t.Fatalf("own account: status %d", status)
	}
}
