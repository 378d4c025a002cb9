package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// deadBackends are the global options of each queue the dead-letter tests
// run on: the memory queue and a real redis-server.
func deadBackends(t *testing.T) map[string]string {
	return map[string]string{
		"memory": "",
		"redis":  "redis " + redistest.Start(t).URL(),
	}
}

func adminSend(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, adminURL(path), strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	return resp.StatusCode, readAll(resp)
}

// queueUpdate posts an update for a live call and checks it was queued.
func queueUpdate(t *testing.T, tester *caddytest.Tester, key, body string) {
	t.Helper()
	status, answer := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+key), jsonType, body)
	if status != 202 {
		t.Fatalf("postback %s: %d %s", body, status, answer)
	}
}

func complete(t *testing.T, tester *caddytest.Tester, ids ...string) {
	t.Helper()
	list := `["` + strings.Join(ids, `","`) + `"]`
	if status, body := send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":`+list+`}`); status != 202 {
		t.Fatalf("call-completed: %d %s", status, body)
	}
}

// deadCalls lists the calls of GET /postback/dead?query, following next.
func deadCalls(t *testing.T, query string) []gjson.Result {
	t.Helper()
	var calls []gjson.Result
	cursor := ""
	for pages := 0; pages < 50; pages++ {
		path := "/postback/dead?" + query
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		status, body := adminDo(t, "GET", path)
		if status != 200 {
			t.Fatalf("GET %s: %d %s", path, status, body)
		}
		calls = append(calls, gjson.Get(body, "calls").Array()...)
		if cursor = gjson.Get(body, "next").String(); cursor == "" {
			return calls
		}
	}
	t.Fatal("pages do not end")
	return nil
}

func callIDs(calls []gjson.Result) string {
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.Get("call_log_id").String())
	}
	return strings.Join(ids, " ")
}

// sortedIDs is callIDs in sorted order, for sets whose death order the
// concurrent drainer decides.
func sortedIDs(calls []gjson.Result) string {
	ids := strings.Fields(callIDs(calls))
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[j] < ids[i] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	return strings.Join(ids, " ")
}

// TestAdminDeadLetters: dead letters of calls of two webhooks with two
// reasons, listed with each filter and by pages, then requeued by filter,
// a dry run first (operations#dead-letters).
func TestAdminDeadLetters(t *testing.T) {
	for backend, global := range deadBackends(t) {
		t.Run(backend, func(t *testing.T) {
			store := newScriptedStore(t)
			calls := []string{"d-acme-1", "d-acme-2", "d-other-1", "d-other-2"}
			for _, id := range calls {
				store.set(id, "live")
			}
			tester := startEdge(t, edgeConfig(store.URL, global, ""))
			queueUpdate(t, tester, fieldsKey, `{"call_log_id":"d-acme-1","reason":"first"}`)
			queueUpdate(t, tester, fieldsKey, `{"call_log_id":"d-acme-1","reason":"second"}`)
			queueUpdate(t, tester, fieldsKey, `{"call_log_id":"d-acme-2","reason":"third"}`)
			queueUpdate(t, tester, otherAcctKey, `{"call_log_id":"d-other-1","reason":"fourth"}`)
			queueUpdate(t, tester, otherAcctKey, `{"call_log_id":"d-other-2","reason":"fifth"}`)
			store.set("d-acme-1", "refuse")
			store.set("d-other-1", "refuse")
			store.set("d-acme-2", "gone")
			store.set("d-other-2", "gone")
			complete(t, tester, calls...)
			waitFor(t, "five dead letters", func() bool {
				n := int64(0)
				for _, c := range deadCalls(t, "") {
					n += c.Get("count").Int()
				}
				return n == 5
			})

			all := deadCalls(t, "")
			if sortedIDs(all) != "d-acme-1 d-acme-2 d-other-1 d-other-2" {
				t.Fatalf("listed %s", callIDs(all))
			}
			for i := 1; i < len(all); i++ {
				// Ranked to the microsecond, as the index scores.
				if all[i].Get("newest_dead_at").Time().Truncate(time.Microsecond).After(all[i-1].Get("newest_dead_at").Time()) {
					t.Fatalf("operations#dead-letters not newest first: %s", all)
				}
			}
			for _, c := range all {
				if c.Get("call_log_id").String() == "d-acme-1" {
					if c.Get("count").Int() != 2 || c.Get("reasons").Raw != `["rejected: revenue is locked for billing"]` ||
						c.Get("oldest_dead_at").Time().After(c.Get("newest_dead_at").Time()) {
						t.Fatalf("d-acme-1 summed up as %s", c.Raw)
					}
				}
			}
			for query, want := range map[string]string{
				"webhook=acme":     "d-acme-1 d-acme-2",
				"account=acct_2":   "d-other-1 d-other-2",
				"reason=rejected":  "d-acme-1 d-other-1",
				"reason=not_found": "d-acme-2 d-other-2",
				"since=2000-01-01T00:00:00Z&webhook=other&reason=not": "d-other-2",
				"since=2999-01-01T00:00:00Z":                          "",
			} {
				if got := sortedIDs(deadCalls(t, query)); got != want {
					t.Errorf("operations#dead-letters ?%s listed %q, want %q", query, got, want)
				}
			}
			if paged := deadCalls(t, "limit=1"); callIDs(paged) != callIDs(all) {
				t.Fatalf("operations#dead-letters pages of one: %s, want %s", callIDs(paged), callIDs(all))
			}
			for _, bad := range []string{"limit=1001", "limit=0", "since=yesterday", "cursor=nope!", "colour=red", "webhook=a&webhook=b"} {
				if status, body := adminDo(t, "GET", "/postback/dead?"+bad); status != 400 {
					t.Errorf("?%s: %d %s, want 400", bad, status, body)
				}
			}

			// Bulk requeue of the rejected ones: a dry run moves nothing.
			status, body := adminSend(t, "POST", "/postback/dead/requeue", `{"reason":"rejected","dry_run":true}`)
			if status != 200 || !jsonSame(body, `{"calls":2,"entries":3,"dry_run":true}`) {
				t.Fatalf("dry run: %d %s", status, body)
			}
			if n := len(deadCalls(t, "")); n != 4 {
				t.Fatalf("a dry run moved letters: %d calls left", n)
			}
			for _, bad := range []string{`{"limit":1001}`, `{"dry_run":"yes"}`, `{"webhook":1}`, `{"colour":"red"}`, `[1]`, `{"reason":"a","reason":"b"}`} {
				if status, body := adminSend(t, "POST", "/postback/dead/requeue", bad); status != 400 {
					t.Errorf("bulk %s: %d %s, want 400", bad, status, body)
				}
			}
			// The calls are still live, so the requeued entries wait where
			// they were put back: at the head, in their order.
			store.set("d-acme-1", "live")
			store.set("d-other-1", "live")
			queueUpdate(t, tester, fieldsKey, `{"call_log_id":"d-acme-1","reason":"later"}`)
			status, body = adminSend(t, "POST", "/postback/dead/requeue", `{"reason":"rejected"}`)
			if status != 200 || !jsonSame(body, `{"calls":2,"entries":3}`) {
				t.Fatalf("requeue: %d %s", status, body)
			}
			_, body = adminDo(t, "GET", "/postback/queue/d-acme-1")
			if got := gjson.Get(body, "pending.#.patch.reason").Raw; got != `["first","second","later"]` || gjson.Get(body, "dead.#").Int() != 0 {
				t.Fatalf("operations#dead-letters d-acme-1 after requeue: %s", body)
			}
			if got := sortedIDs(deadCalls(t, "")); got != "d-acme-2 d-other-2" {
				t.Fatalf("left dead: %s", got)
			}
			store.set("d-acme-1", "completed")
			store.set("d-other-1", "completed")
			complete(t, tester, "d-acme-1", "d-other-1")
			waitFor(t, "the requeued updates applied", func() bool {
				return len(store.applied("d-acme-1")) == 3 && len(store.applied("d-other-1")) == 1
			})
			if got := fmt.Sprint(store.applied("d-acme-1")); got != `[{"reason":"first"} {"reason":"second"} {"reason":"later"}]` {
				t.Fatalf("applied in the order %s", got)
			}
		})
	}
}

// TestAdminDeadLetterEdit: a 422-refused revenue_paid_out set to 20.50 and
// reason deleted reaches the call store as 20.50 with every other byte as
// first stored; an invalid edit is a 400 and moves nothing (operations#dead-letters).
func TestAdminDeadLetterEdit(t *testing.T) {
	for backend, global := range deadBackends(t) {
		t.Run(backend, func(t *testing.T) {
			store := newScriptedStore(t)
			store.set("edit-1", "live")
			tester := startEdge(t, edgeConfig(store.URL, global, ""))
			queueUpdate(t, tester, fieldsKey, `{"call_log_id":"edit-1","converted":"yes","call_converted_at":"2026-03-27T12:00:00+02:00","revenue_paid_out":"999999.9900","publisher_paid_out":10.00,"reason":"sale","add":{"customer_type":"premium"},"remove":"old_tag"}`)
			_, body := adminDo(t, "GET", "/postback/queue/edit-1")
			stored := gjson.Get(body, "pending.0.patch").Raw
			if stored != `{"converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":999999.9900,"publisher_paid_out":10.00,"reason":"sale","tags":{"add":{"customer_type":"premium"},"remove":["old_tag"]}}` {
				t.Fatalf("stored PATCH %s", stored)
			}
			store.set("edit-1", "refuse")
			complete(t, tester, "edit-1")
			waitFor(t, "the dead letter", func() bool {
				_, body = adminDo(t, "GET", "/postback/queue/edit-1")
				return gjson.Get(body, "dead.#").Int() == 1
			})

			for edit, field := range map[string]string{
				`{"set":{"converted":"maybe"}}`:        "converted",
				`{"set":{"revenue_paid_out":"20.50"}}`: "revenue_paid_out",
				`{"set":{"amount":20.50}}`:             "set.amount",
				`{"delete":["tags","converted","call_converted_at","revenue_paid_out","publisher_paid_out","reason"]}`: "nothing to update",
			} {
				status, answer := adminSend(t, "POST", "/postback/dead/edit-1/requeue", edit)
				if status != 400 || !strings.Contains(gjson.Get(answer, "error").String(), field) {
					t.Errorf("edit %s: %d %s, want a 400 naming %s", edit, status, answer, field)
				}
			}
			_, body = adminDo(t, "GET", "/postback/queue/edit-1")
			if gjson.Get(body, "dead.#").Int() != 1 || gjson.Get(body, "pending.#").Int() != 0 || gjson.Get(body, "dead.0.patch").Raw != stored {
				t.Fatalf("operations#dead-letters a refused edit moved or changed something: %s", body)
			}

			// Requeued while the call is live again, the admin view shows the edit.
			store.set("edit-1", "live")
			status, answer := adminSend(t, "POST", "/postback/dead/edit-1/requeue", `{"set": {"revenue_paid_out": 20.50}, "delete": ["reason"]}`)
			if status != 200 || !jsonSame(answer, `{"call_log_id":"edit-1","requeued":1,"edited":["revenue_paid_out","reason"]}`) {
				t.Fatalf("edit: %d %s", status, answer)
			}
			_, body = adminDo(t, "GET", "/postback/queue/edit-1")
			if gjson.Get(body, "pending.0.edited").Raw != `["revenue_paid_out","reason"]` || !gjson.Get(body, "pending.0.edited_at").Exists() {
				t.Fatalf("operations#dead-letters the admin view does not show the edit: %s", body)
			}
			store.set("edit-1", "completed")
			complete(t, tester, "edit-1")
			waitFor(t, "the edited update", func() bool { return len(store.applied("edit-1")) == 1 })
			want := `{"converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":20.50,"publisher_paid_out":10.00,"tags":{"add":{"customer_type":"premium"},"remove":["old_tag"]}}`
			if got := store.applied("edit-1")[0]; got != want {
				t.Fatalf("operations#dead-letters the call store received\n%s\nwant\n%s", got, want)
			}
			if status, answer := adminSend(t, "POST", "/postback/dead/edit-1/requeue", `{"delete":["reason"]}`); status != 404 {
				t.Fatalf("edit of a call without dead letters: %d %s", status, answer)
			}
		})
	}
}
