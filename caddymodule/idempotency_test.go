package caddymodule_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// secondPort serves a second postback handler in the same config: with
// Redis, the two handlers share the idempotency keys as two instances do.
var secondPort = freePort()

// idemConfig is an edge with a short deadline, on edgePort and secondPort,
// with Redis when redisURL is set.
func idemConfig(storeURL, redisURL string) string {
	redis := ""
	if redisURL != "" {
		redis = "redis " + redisURL + " {\n\t\t\tprefix idem-e2e:\n\t\t}"
	}
	site := func(port int) string {
		return fmt.Sprintf(`
http://127.0.0.1:%d {
	route /postback/* {
		postback {
			webhook acme {
				type update_fields
				account acct_1
				key %s
			}
			webhook acme_revenue {
				type update_revenue
				account acct_1
				key %s
			}
			webhook other {
				type update_fields
				account acct_2
				key %s
			}
			webhook platform {
				type call_completed
				key_sha256 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
			}
		}
	}
}
`, port, fieldsKey, revenueKey, otherAcctKey)
	}
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	postback {
		call_store %s {
			timeout 500ms
			deadline 1s
		}
		drain_interval 100ms
		%s
	}
}
`, adminPort, edgePort, storeURL, redis) + site(edgePort) + site(secondPort)
}

// gatedStore is the scripted call store whose PATCHes of calls named
// slow-* wait, once arrived, until the test lets them go.
type gatedStore struct {
	*scriptedStore
	arrived chan string
	release chan struct{}
}

func newGatedStore(t *testing.T) *gatedStore {
	s := &scriptedStore{state: map[string]string{}, accounts: map[string]string{}, phones: map[string]string{}, hits: map[string]int{}}
	g := &gatedStore{scriptedStore: s, arrived: make(chan string, 16), release: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/v1/calls/slow-"); ok && r.Method == http.MethodPatch {
			g.arrived <- id
			<-g.release
		}
		s.serve(w, r)
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() {
		select {
		case <-g.release:
		default:
			close(g.release)
		}
	})
	return g
}

// runSuffixes end the idempotency keys of each test run: the in-memory
// store outlives a config reload, so a test run again in this process
// (-count) must not meet its own keys.
var (
	runSuffixes sync.Map // *testing.T → string
	runSeq      atomic.Int64
)

// runKey is key with the test run's suffix, inside the quotes of a quoted
// key.
func runKey(t *testing.T, key string) string {
	v, _ := runSuffixes.LoadOrStore(t, "-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"-"+strconv.FormatInt(runSeq.Add(1), 36))
	suffix := v.(string)
	if q, ok := strings.CutSuffix(key, `"`); ok && strings.HasPrefix(key, `"`) && len(key) > 1 {
		return q + suffix + `"`
	}
	return key + suffix
}

// idemAnswer is what a partner sees.
type idemAnswer struct {
	status int
	body   string
	header http.Header
}

func (a idemAnswer) replayed() bool { return a.header.Get("Idempotent-Replayed") == "true" }

// sendKey posts body as JSON to update-fields of port with the webhook key
// auth and, unless key is "", the Idempotency-Key header.
func sendKey(t *testing.T, tc *caddytest.Tester, port int, auth, key, body string) idemAnswer {
	t.Helper()
	return doIdem(t, tc, "POST", fmt.Sprintf("http://127.0.0.1:%d/postback/update-fields?moja_auth_key=%s", port, auth), jsonType, body, key)
}

func doIdem(t *testing.T, tc *caddytest.Tester, method, url, contentType, body, key string) idemAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", runKey(t, key))
	}
	resp, err := tc.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" || !gjson.ValidBytes(out) {
		t.Errorf("partner-api#responses answer is not JSON (%s): %s", ct, out)
	}
	return idemAnswer{resp.StatusCode, string(out), resp.Header}
}

func wantAnswer(t *testing.T, what string, got idemAnswer, status int, body string, replayed bool) {
	t.Helper()
	if got.status != status || !jsonSame(got.body, body) || got.replayed() != replayed {
		t.Fatalf("partner-api#safe-retries %s: %d %s (Idempotent-Replayed %q)\nwant %d %s (replayed %v)", what, got.status, got.body, got.header.Get("Idempotent-Replayed"), status, body, replayed)
	}
}

// partner-api#safe-retries: the retry of an applied update gets the same status and body with
// Idempotent-Replayed: true, and the call store sees one PATCH in all.
func TestIdempotentRetryOfAppliedUpdate(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	body := `{"call_log_id":"idem-1","revenue_paid_out":"10.50","cb":"1"}`
	first := sendKey(t, tester, edgePort, fieldsKey, "order-1", body)
	want := `{"call_log_ids":["idem-1"],"failed_call_log_ids":[],"ignored":["cb"]}`
	wantAnswer(t, "first sight", first, 200, want, false)
	// A pixel's cache-buster is not part of the postback.
	retry := sendKey(t, tester, edgePort, fieldsKey, `"order-1"`, `{"call_log_id":"idem-1","revenue_paid_out":"10.50","cb":"2"}`)
	wantAnswer(t, "retry with a new cache-buster and the key quoted", retry, 200, `{"call_log_ids":["idem-1"],"failed_call_log_ids":[],"ignored":["cb"]}`, true)
	if got := store.applied("idem-1"); len(got) != 1 || got[0] != `{"revenue_paid_out":10.50}` {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}
	// The key is not part of any PATCH, the answer or the X-Request-Id sent.
	for _, p := range store.records() {
		if strings.Contains(p.Body, "order-1") {
			t.Fatalf("the key reached the call store: %+v", p)
		}
	}
}

// partner-api#safe-retries: A(10, k1), B(20, k2), then the retry of A with k1: the call keeps 20.
func TestIdempotentStaleRetryKeepsNewerValue(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	url := fmt.Sprintf("http://127.0.0.1:%d/postback/update-revenue?moja_auth_key=%s", edgePort, revenueKey)
	a := doIdem(t, tester, "POST", url, jsonType, `{"call_log_id":"stale-1","revenue_paid_out":10}`, "k1")
	b := doIdem(t, tester, "POST", url, jsonType, `{"call_log_id":"stale-1","revenue_paid_out":20}`, "k2")
	retry := doIdem(t, tester, "POST", url, jsonType, `{"call_log_id":"stale-1","revenue_paid_out":10}`, "k1")
	applied := `{"call_log_ids":["stale-1"],"failed_call_log_ids":[]}`
	wantAnswer(t, "A", a, 200, applied, false)
	wantAnswer(t, "B", b, 200, applied, false)
	wantAnswer(t, "retry of A", retry, 200, applied, true)
	if got := strings.Join(store.applied("stale-1"), " "); got != `{"revenue_paid_out":10} {"revenue_paid_out":20}` {
		t.Fatalf("partner-api#safe-retries the call store got %s; the last must be 20", got)
	}
}

// partner-api#safe-retries: a GET pixel with idempotency_key and a JSON POST with the
// Idempotency-Key header, carrying one update, are one request: one PATCH.
func TestIdempotentGETAndJSONAreOneRequest(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	get := doIdem(t, tester, "GET", fmt.Sprintf("http://127.0.0.1:%d/postback/update-fields?moja_auth_key=%s&call_log_id=pixel-1&converted=yes&add[tier]=gold&idempotency_key=%s", edgePort, fieldsKey, runKey(t, "px-9")), "", "", "")
	wantAnswer(t, "GET pixel", get, 200, `{"call_log_ids":["pixel-1"],"failed_call_log_ids":[]}`, false)
	post := sendKey(t, tester, edgePort, fieldsKey, "px-9", `{"call_log_id":"pixel-1","converted":true,"add":{"tier":"gold"}}`)
	wantAnswer(t, "JSON POST", post, 200, `{"call_log_ids":["pixel-1"],"failed_call_log_ids":[]}`, true)
	form := doIdem(t, tester, "POST", fmt.Sprintf("http://127.0.0.1:%d/postback/update-fields?moja_auth_key=%s", edgePort, fieldsKey), "application/x-www-form-urlencoded", "call_log_id=pixel-1&converted=1&add[tier]=gold&idempotency_key="+runKey(t, "px-9"), "")
	wantAnswer(t, "form POST", form, 200, `{"call_log_ids":["pixel-1"],"failed_call_log_ids":[]}`, true)
	if got := store.applied("pixel-1"); len(got) != 1 {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}
}

// partner-api#safe-retries: a batch of three where one call fails with 5xx until the deadline;
// once the call store recovers, the retry sends exactly one PATCH, the
// failed call's, and answers all three.
func TestIdempotentBatchRetryReattemptsOnlyTheFailedCall(t *testing.T) {
	store := newScriptedStore(t)
	store.set("batch-b", "error")
	tester := startEdge(t, idemConfig(store.URL, ""))
	body := `{"call_log_id":["batch-a","batch-b","batch-c"],"converted":true}`
	first := sendKey(t, tester, edgePort, fieldsKey, "batch-key", body)
	if first.status != 200 || gjson.Get(first.body, "call_log_ids").Raw != `["batch-a","batch-c"]` || gjson.Get(first.body, "errors.batch-b.code").String() != "upstream_error" || first.replayed() {
		t.Fatalf("partner-api#safe-retries first sight: %d %s", first.status, first.body)
	}
	before := len(store.records())
	store.set("batch-b", "completed")
	retry := sendKey(t, tester, edgePort, fieldsKey, "batch-key", body)
	wantAnswer(t, "retry after the call store recovered", retry, 200, `{"call_log_ids":["batch-a","batch-b","batch-c"],"failed_call_log_ids":[]}`, false)
	if sent := store.records()[before:]; len(sent) != 1 || sent[0].ID != "batch-b" {
		t.Fatalf("partner-api#safe-retries the retry sent %+v, want one PATCH of batch-b", sent)
	}

	// A final failure (not_found) is reused, never sent again.
	store.set("batch-gone", "gone")
	gone := `{"call_log_id":["batch-a","batch-gone"],"converted":true}`
	wantAnswer(t, "a batch with an unknown call", sendKey(t, tester, edgePort, fieldsKey, "gone-key", gone), 200, `{"call_log_ids":["batch-a"],"failed_call_log_ids":["batch-gone"],"errors":{"batch-gone":{"code":"not_found","message":"call not found"}}}`, false)
	wantAnswer(t, "its retry", sendKey(t, tester, edgePort, fieldsKey, "gone-key", gone), 200, `{"call_log_ids":["batch-a"],"failed_call_log_ids":["batch-gone"],"errors":{"batch-gone":{"code":"not_found","message":"call not found"}}}`, true)
	store.mu.Lock()
	goneHits := store.hits["batch-gone"]
	store.mu.Unlock()
	if goneHits != 1 {
		t.Fatalf("partner-api#safe-retries the unknown call was asked for %d times, want once", goneHits)
	}
	again := sendKey(t, tester, edgePort, fieldsKey, "batch-key", body)
	wantAnswer(t, "a further retry", again, 200, `{"call_log_ids":["batch-a","batch-b","batch-c"],"failed_call_log_ids":[]}`, true)
	if n := len(store.records()); n != 4 {
		t.Fatalf("partner-api#safe-retries %d PATCHes applied in all, want 4 (three of the batch, one of batch-a with gone-key)", n)
	}
}

// partner-api#safe-retries: a live call's retry is answered 202 again, the queue holds one
// entry, and the call store gets one PATCH once the call completes.
func TestIdempotentRetryOfQueuedUpdate(t *testing.T) {
	store := newScriptedStore(t)
	store.set("idem-live", "live")
	tester := startEdge(t, idemConfig(store.URL, ""))
	body := `{"call_log_id":"idem-live","reason":"sale"}`
	queued := `{"call_log_ids":["idem-live"],"failed_call_log_ids":[],"queued_call_log_ids":["idem-live"]}`
	wantAnswer(t, "first sight", sendKey(t, tester, edgePort, fieldsKey, "live-key", body), 202, queued, false)
	wantAnswer(t, "retry", sendKey(t, tester, edgePort, fieldsKey, "live-key", body), 202, queued, true)
	_, q := adminDo(t, "GET", "/postback/queue/idem-live")
	if n := len(gjson.Get(q, "pending").Array()); n != 1 {
		t.Fatalf("partner-api#safe-retries the queue holds %d entries: %s", n, q)
	}
	store.set("idem-live", "completed")
	status, out := send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":"idem-live"}`)
	if status != 202 {
		t.Fatalf("call-completed: %d %s", status, out)
	}
	// The entry leaves the queue once the call store has answered the PATCH.
	waitFor(t, "the queued update applied and acknowledged", func() bool {
		_, q := adminDo(t, "GET", "/postback/queue/idem-live")
		return len(store.applied("idem-live")) == 1 && len(gjson.Get(q, "pending").Array()) == 0
	})
	wantAnswer(t, "retry after completion", sendKey(t, tester, edgePort, fieldsKey, "live-key", body), 202, queued, true)
	_, q = adminDo(t, "GET", "/postback/queue/idem-live")
	if n := len(gjson.Get(q, "pending").Array()); n != 0 || len(store.applied("idem-live")) != 1 {
		t.Fatalf("partner-api#safe-retries after a retry: queue %s, PATCHes %v", q, store.applied("idem-live"))
	}
}

// operations#order with an idempotency key on Redis: the ordering check is asked beside the key's
// hold; a keyed update of a call with an update waiting queues behind it, without a PATCH, and
// both are applied in order once the call completes; a keyed update of a call with nothing
// waiting goes straight to the call store.
func TestIdempotentUpdateWaitsBehindQueuedOnes(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	store.set("behind-1", "live")
	tester := startEdge(t, idemConfig(store.URL, srv.URL()))
	first := `{"call_log_id":"behind-1","reason":"first"}`
	if status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, first); status != 202 {
		t.Fatalf("unkeyed update of a live call: %d %s", status, body)
	}
	sent := store.patchesSent()
	queued := `{"call_log_ids":["behind-1"],"failed_call_log_ids":[],"queued_call_log_ids":["behind-1"]}`
	wantAnswer(t, "keyed update behind a waiting one", sendKey(t, tester, edgePort, fieldsKey, "behind-key", `{"call_log_id":"behind-1","reason":"second"}`), 202, queued, false)
	if store.patchesSent() != sent {
		t.Fatalf("operations#order the keyed update was sent to the call store while an older one waited")
	}
	store.set("behind-1", "completed")
	if status, body := send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":"behind-1"}`); status != 202 {
		t.Fatalf("call-completed: %d %s", status, body)
	}
	waitFor(t, "both updates applied", func() bool { return len(store.applied("behind-1")) == 2 })
	if got := strings.Join(store.applied("behind-1"), " "); got != `{"reason":"first"} {"reason":"second"}` {
		t.Fatalf("operations#order applied %s", got)
	}
	applied := `{"call_log_ids":["behind-1"],"failed_call_log_ids":[]}`
	wantAnswer(t, "keyed update once nothing waits", sendKey(t, tester, edgePort, fieldsKey, "after-key", `{"call_log_id":"behind-1","reason":"third"}`), 200, applied, false)
	if got := store.applied("behind-1"); len(got) != 3 || got[2] != `{"reason":"third"}` {
		t.Fatalf("operations#order applied %v", got)
	}
}

// partner-api#safe-retries: while a request with a key is with a slow call store, another with
// the same key gets 409 idempotency_key_in_use with Retry-After: 1 and
// sends nothing; on one instance (memory) and on two sharing Redis.
func TestIdempotentKeyInUse(t *testing.T) {
	for _, withRedis := range []bool{false, true} {
		name := "memory"
		if withRedis {
			name = "two instances sharing redis"
		}
		t.Run(name, func(t *testing.T) {
			store := newGatedStore(t)
			redisURL, other := "", edgePort
			var srv *redistest.Server
			if withRedis {
				srv = redistest.Start(t)
				redisURL, other = srv.URL(), secondPort
			}
			tester := startEdge(t, idemConfig(store.URL, redisURL))
			body := `{"call_log_id":"slow-1","converted":true}`
			done := make(chan idemAnswer, 1)
			go func() { done <- sendKey(t, tester, edgePort, fieldsKey, "busy-key", body) }()
			<-store.arrived
			second := sendKey(t, tester, other, fieldsKey, "busy-key", body)
			if second.status != 409 || gjson.Get(second.body, "error.code").String() != "idempotency_key_in_use" || second.header.Get("Retry-After") != "1" {
				t.Fatalf("partner-api#safe-retries concurrent request: %d %s Retry-After %q", second.status, second.body, second.header.Get("Retry-After"))
			}
			if withRedis {
				// The mark of a request in progress expires on its own
				// after the deadline (1s) plus the margin (5s).
				client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
				ttl := client.PTTL(context.Background(), "idem-e2e:idem:{acme:"+runKey(t, "busy-key")+"}").Val()
				client.Close()
				if ttl <= 5*time.Second || ttl > 6*time.Second {
					t.Errorf("partner-api#safe-retries the hold's TTL is %s, want the deadline plus 5s", ttl)
				}
			}
			close(store.release)
			wantAnswer(t, "the first request", <-done, 200, `{"call_log_ids":["slow-1"],"failed_call_log_ids":[]}`, false)
			wantAnswer(t, "retry once it is done", sendKey(t, tester, other, fieldsKey, "busy-key", body), 200, `{"call_log_ids":["slow-1"],"failed_call_log_ids":[]}`, true)
			if got := store.applied("slow-1"); len(got) != 1 {
				t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
			}
			_, metrics := adminDo(t, "GET", "/metrics")
			for _, want := range []string{
				`caddy_postback_idempotency_conflicts_total{code="idempotency_key_in_use",webhook="acme"}`,
				`caddy_postback_idempotent_replays_total{replayed="true",webhook="acme"}`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s", want)
				}
			}
		})
	}
}

// partner-api#safe-retries: with Redis, a retry that reaches another instance is replayed, and
// the key's Redis keys expire with the window.
func TestIdempotentRetryOnAnotherInstance(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, srv.URL()))
	body := `{"call_log_id":"moved-1","converted":false}`
	applied := `{"call_log_ids":["moved-1"],"failed_call_log_ids":[]}`
	wantAnswer(t, "first instance", sendKey(t, tester, edgePort, fieldsKey, "move-key", body), 200, applied, false)
	wantAnswer(t, "second instance", sendKey(t, tester, secondPort, fieldsKey, "move-key", body), 200, applied, true)
	if got := store.applied("moved-1"); len(got) != 1 {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	if ttl := client.PTTL(context.Background(), "idem-e2e:idem:{acme:"+runKey(t, "move-key")+"}").Val(); ttl < 23*time.Hour || ttl > 24*time.Hour {
		t.Fatalf("partner-api#safe-retries the record's TTL is %s, want the default window of 24h", ttl)
	}
}

// partner-api#safe-retries: refused requests store nothing: a 400 with a key, then the valid
// request with that key, is applied. Another update with a used key is a
// 422 that sends nothing; a bad key is a 400 naming it.
func TestIdempotentRefusalsAndReuse(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	bad := sendKey(t, tester, edgePort, fieldsKey, "fix-key", `{"call_log_id":"fix-1","converted":"perhaps"}`)
	if bad.status != 400 || gjson.Get(bad.body, "error.fields.converted").String() == "" {
		t.Fatalf("invalid request: %d %s", bad.status, bad.body)
	}
	unauthorized := sendKey(t, tester, edgePort, "wrong-key", "fix-key", `{"call_log_id":"fix-1","converted":true}`)
	if unauthorized.status != 401 {
		t.Fatalf("wrong auth key: %d %s", unauthorized.status, unauthorized.body)
	}
	wantAnswer(t, "the fixed request with the same key", sendKey(t, tester, edgePort, fieldsKey, "fix-key", `{"call_log_id":"fix-1","converted":true}`), 200, `{"call_log_ids":["fix-1"],"failed_call_log_ids":[]}`, false)

	reused := sendKey(t, tester, edgePort, fieldsKey, "fix-key", `{"call_log_id":"fix-1","converted":false}`)
	if reused.status != 422 || gjson.Get(reused.body, "error.code").String() != "idempotency_key_reused" {
		t.Fatalf("partner-api#safe-retries another update with a used key: %d %s", reused.status, reused.body)
	}
	if got := store.applied("fix-1"); len(got) != 1 {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}

	for _, tc := range []struct{ name, query, key, field string }{
		{"a key too long", "", strings.Repeat("k", 256), "Idempotency-Key"},
		{"a key that is not ASCII", "", "clé", "Idempotency-Key"},
		{"header and parameter disagree", "&idempotency_key=one", "two", "idempotency_key"},
		{"an empty parameter", "&idempotency_key=", "", "idempotency_key"},
	} {
		a := doIdem(t, tester, "POST", fmt.Sprintf("http://127.0.0.1:%d/postback/update-fields?moja_auth_key=%s%s", edgePort, fieldsKey, tc.query), jsonType, `{"call_log_id":"fix-2","converted":true}`, tc.key)
		if a.status != 400 || gjson.Get(a.body, "error.code").String() != "invalid_request" || !gjson.Get(a.body, "error.fields").Get(strings.ReplaceAll(tc.field, "-", "\\-")).Exists() || !strings.Contains(gjson.Get(a.body, "error.message").String(), tc.field) {
			t.Errorf("partner-api#safe-retries %s: %d %s, want a 400 naming %s", tc.name, a.status, a.body, tc.field)
		}
	}
	if got := store.applied("fix-2"); len(got) != 0 {
		t.Fatalf("a refused key sent %v", got)
	}
}

// partner-api#safe-retries: a key is scoped to its webhook: two webhooks may use one key for
// different updates.
func TestIdempotentKeysAreScopedToTheWebhook(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	a := sendKey(t, tester, edgePort, fieldsKey, "shared-key", `{"call_log_id":"scope-1","reason":"acme"}`)
	b := sendKey(t, tester, edgePort, otherAcctKey, "shared-key", `{"call_log_id":"scope-2","reason":"other"}`)
	wantAnswer(t, "acme", a, 200, `{"call_log_ids":["scope-1"],"failed_call_log_ids":[]}`, false)
	wantAnswer(t, "other", b, 200, `{"call_log_ids":["scope-2"],"failed_call_log_ids":[]}`, false)
	if len(store.applied("scope-1")) != 1 || len(store.applied("scope-2")) != 1 {
		t.Fatalf("PATCHes %+v", store.records())
	}
}

// partner-api#safe-retries: Redis down: a request with a key gets 503 idempotency_unavailable
// and sends nothing; one without a key goes through as before.
func TestIdempotentRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, srv.URL()))
	srv.Stop()
	withKey := sendKey(t, tester, edgePort, fieldsKey, "down-key", `{"call_log_id":"down-1","converted":true}`)
	if withKey.status != 503 || gjson.Get(withKey.body, "error.code").String() != "idempotency_unavailable" {
		t.Fatalf("partner-api#safe-retries with a key: %d %s", withKey.status, withKey.body)
	}
	if got := store.applied("down-1"); len(got) != 0 {
		t.Fatalf("partner-api#safe-retries sent %v with the store down", got)
	}
	without := sendKey(t, tester, edgePort, fieldsKey, "", `{"call_log_id":"down-1","converted":true}`)
	wantAnswer(t, "without a key", without, 200, `{"call_log_ids":["down-1"],"failed_call_log_ids":[]}`, false)
	_, metrics := adminDo(t, "GET", "/metrics")
	if !strings.Contains(metrics, `caddy_postback_idempotency_store_failures_total{webhook="acme"}`) {
		t.Error("/metrics lacks the store failure")
	}
	srv.Restart()
	wantAnswer(t, "with a key once Redis is back", sendKey(t, tester, edgePort, fieldsKey, "down-key", `{"call_log_id":"down-1","converted":true}`), 200, `{"call_log_ids":["down-1"],"failed_call_log_ids":[]}`, false)
}

// partner-api#safe-retries: a phone number's call is resolved once: a retry reuses the call
// the first request found, even when the number now names a newer call.
func TestIdempotentRetryDoesNotResolveThePhoneNumberAgain(t *testing.T) {
	store := newScriptedStore(t)
	store.mu.Lock()
	store.phones["+15551230001"] = "phone-old"
	store.mu.Unlock()
	tester := startEdge(t, idemConfig(store.URL, ""))
	body := `{"phone_number":"555-123-0001","converted":true}`
	applied := `{"call_log_ids":["phone-old"],"failed_call_log_ids":[]}`
	wantAnswer(t, "first sight", sendKey(t, tester, edgePort, fieldsKey, "phone-key", body), 200, applied, false)
	store.mu.Lock()
	store.phones["+15551230001"] = "phone-new"
	store.mu.Unlock()
	wantAnswer(t, "retry", sendKey(t, tester, edgePort, fieldsKey, "phone-key", body), 200, applied, true)
	if n := len(store.records()); n != 1 {
		t.Fatalf("partner-api#safe-retries %d PATCHes, want 1: %+v", n, store.records())
	}
}

// operations#configuration: the options load from JSON too, and a window past 168h fails the
// load naming it.
func TestIdempotencyOptionsJSON(t *testing.T) {
	config := func(options string) *caddy.Config {
		var c caddy.Config
		raw := `{"apps":{"postback":{"call_store":{"url":"http://127.0.0.1:1"}},"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"postback",` + options + `"webhooks":[{"name":"a","type":"update_fields","key":"k"}]}]}]}}}}}`
		if err := json.Unmarshal([]byte(raw), &c); err != nil {
			t.Fatal(err)
		}
		return &c
	}
	if err := caddy.Validate(config(`"idempotency_window":"48h","idempotency_max_keys":10,`)); err != nil {
		t.Fatalf("valid options refused: %v", err)
	}
	for _, bad := range []struct{ options, want string }{
		{`"idempotency_window":"169h",`, "idempotency_window 169h0m0s must be from 1s to 168h"},
		{`"idempotency_window":"10ms",`, "idempotency_window 10ms must be from 1s to 168h"},
		{`"idempotency_max_keys":-1,`, "idempotency_max_keys -1 must be positive"},
	} {
		if err := caddy.Validate(config(bad.options)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want %q", bad.options, err, bad.want)
		}
	}
}

// partner-api#safe-retries: without Redis the keys live in this process's memory, and a config
// reload keeps them.
func TestIdempotentKeysSurviveAReload(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, idemConfig(store.URL, ""))
	body := `{"call_log_id":"reload-1","converted":true}`
	applied := `{"call_log_ids":["reload-1"],"failed_call_log_ids":[]}`
	wantAnswer(t, "before the reload", sendKey(t, tester, edgePort, fieldsKey, "reload-key", body), 200, applied, false)
	tester = startEdge(t, strings.Replace(idemConfig(store.URL, ""), "drain_interval 100ms", "drain_interval 200ms", 1))
	wantAnswer(t, "after the reload", sendKey(t, tester, edgePort, fieldsKey, "reload-key", body), 200, applied, true)
	if got := store.applied("reload-1"); len(got) != 1 {
		t.Fatalf("partner-api#safe-retries PATCHes %v, want one", got)
	}
}
