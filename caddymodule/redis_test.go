package caddymodule_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/redis/go-redis/v9"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// operations#the-queue: the queue in Redis, through Caddy: a live call's update is stored in
// Redis and applied once the call completes.
func TestRedisQueueThroughCaddy(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	store.set("redis-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+srv.URL()+" {\n\t\t\tprefix e2e:\n\t\t}", ""))
	liveQueuedThenApplied(t, tester, store, "redis-live")
	_, body := adminDo(t, "GET", "/postback/queue")
	if gjson.Get(body, "backend").String() != "redis" {
		t.Fatalf("admin says %s", body)
	}
}

// operations#the-queue-in-production: the counts of a Redis queue are kept by the scripts; counts
// that drifted (here set by hand, as a difference lost to a crash leaves them) are shown as they
// are by GET and set again from the queue itself by POST /postback/queue.
func TestRedisQueueRecountedThroughAdmin(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	store.set("recount-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+srv.URL(), ""))
	for i := range 3 {
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, fmt.Sprintf(`{"call_log_id":"recount-live","reason":"r%d"}`, i))
		if status != 202 {
			t.Fatalf("update %d: %d %s", i, status, body)
		}
	}
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.HSet(context.Background(), "postback:{stats}", "pending_entries", 9, "pending_calls", 4).Err(); err != nil {
		t.Fatal(err)
	}
	if _, body := adminDo(t, "GET", "/postback/queue"); gjson.Get(body, "pending_entries").Int() != 9 {
		t.Fatalf("GET after the drift = %s; want the drifted 9 entries", body)
	}
	status, body := adminDo(t, "POST", "/postback/queue")
	if status != 200 || gjson.Get(body, "pending_entries").Int() != 3 || gjson.Get(body, "pending_calls").Int() != 1 {
		t.Fatalf("POST = %d %s; want 3 entries of 1 call", status, body)
	}
	if _, body := adminDo(t, "GET", "/postback/queue"); gjson.Get(body, "pending_entries").Int() != 3 {
		t.Fatalf("GET after the recount = %s", body)
	}
}

// operations#several-instances: Redis Cluster with three masters; every key of a call shares a slot.
func TestRedisClusterThroughCaddy(t *testing.T) {
	cluster := redistest.StartCluster(t, 3)
	store := newScriptedStore(t)
	store.set("cluster-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis {\n\t\t\tcluster "+strings.Join(cluster, " ")+"\n\t\t}", ""))
	liveQueuedThenApplied(t, tester, store, "cluster-live")
}

func liveQueuedThenApplied(t *testing.T, tc *caddytest.Tester, store *scriptedStore, id string) {
	t.Helper()
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	for _, reason := range []string{"first", "second"} {
		status, body := send(t, tc, "POST", url, jsonType, fmt.Sprintf(`{"call_log_id":%q,"reason":%q}`, id, reason))
		if status != 202 {
			t.Fatalf("operations#the-queue status %d: %s", status, body)
		}
	}
	store.set(id, "completed")
	status, body := send(t, tc, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, fmt.Sprintf(`{"call_log_id":%q}`, id))
	if status != 202 || !strings.Contains(body, id) {
		t.Fatalf("operations#completion-and-dead-letters call-completed: %d %s", status, body)
	}
	waitFor(t, "the queued updates", func() bool { return len(store.applied(id)) == 2 })
	if got := strings.Join(store.applied(id), " "); got != `{"reason":"first"} {"reason":"second"}` {
		t.Fatalf("operations#order applied %s", got)
	}
}

// Redis down: a live call fails with 503 queue_unavailable (nothing is
// accepted that is not stored), completed calls keep being served, and
// all is well again once Redis is back.
func TestRedisDownWhileRequestsArrive(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	store.set("down-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+srv.URL(), ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)

	srv.Stop()
	status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"down-live","converted":true}`)
	if status != 503 {
		t.Fatalf("operations#the-queue live call with Redis down: status %d: %s", status, body)
	}
	// Redis never answered, so the edge cannot know whether the append
	// ran: the message says so (operations#delivery-guarantee).
	jsonEqual(t, body, `{"call_log_ids":[],"failed_call_log_ids":["down-live"],"errors":{"down-live":{"code":"queue_unavailable","message":"the call is in progress and the queue did not answer; the update may still be applied"}}}`)
	status, body = send(t, tester, "POST", url, jsonType, `{"call_log_id":["down-done","down-live"],"converted":true}`)
	if status != 200 || gjson.Get(body, "call_log_ids").Raw != `["down-done"]` {
		t.Fatalf("completed call with Redis down: %d %s", status, body)
	}
	if len(store.applied("down-done")) != 1 {
		t.Fatal("the completed call was not updated")
	}
	_, metrics := adminDo(t, "GET", "/metrics")
	if !strings.Contains(metrics, "\ncaddy_postback_ordering_check_skipped_total ") || strings.Contains(metrics, "\ncaddy_postback_ordering_check_skipped_total 0\n") {
		t.Error("operations#the-queue-in-production the updates sent past the ordering check are not counted")
	}
	status, _ = send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":"down-live"}`)
	if status != 503 {
		t.Fatalf("call-completed with Redis down: %d", status)
	}

	srv.Restart()
	waitFor(t, "the live call to be queued again", func() bool {
		status, _ = send(t, tester, "POST", url, jsonType, `{"call_log_id":"down-live","converted":true}`)
		return status == 202
	})
}

// Redis slow: commands past the redis timeout fail fast and a completed
// call is still applied, as when Redis is down. The live call's append,
// unanswered, is settled before the answer (operations#delivery-guarantee): queued if Redis
// stored it, else 503, and then it is never stored, not even when the copy
// of the append waiting in Redis's socket runs as Redis wakes.
func TestRedisSlow(t *testing.T) {
	srv := redistest.Start(t, redistest.Args("--enable-debug-command", "yes"))
	store := newScriptedStore(t)
	store.set("slow-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+srv.URL()+" {\n\t\t\ttimeout 200ms\n\t\t}", ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)

	blocker := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second})
	defer blocker.Close()
	done := make(chan struct{})
	go func() { blocker.Do(context.Background(), "DEBUG", "SLEEP", "2"); close(done) }()
	time.Sleep(100 * time.Millisecond) // the server is now asleep

	status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":["slow-done","slow-live"],"reason":"asleep"}`)
	if !slices.Contains(store.applied("slow-done"), `{"reason":"asleep"}`) {
		t.Fatalf("the completed call was not applied with Redis asleep: %d %s", status, body)
	}
	queued := gjson.Get(body, "queued_call_log_ids").Raw == `["slow-live"]`
	if !queued && (status != 200 || gjson.Get(body, "errors.slow-live.code").String() != "queue_unavailable") {
		t.Fatalf("with Redis asleep: %d %s; want slow-live queued or queue_unavailable", status, body)
	}
	<-done
	_, call := adminDo(t, "GET", "/postback/queue/slow-live")
	if stored := gjson.Get(call, `pending.#(request_id!="")#`).Get("#").Int() == 1; stored != queued {
		t.Fatalf("answered queued=%v, but the queue holds %s", queued, call)
	}
	waitFor(t, "the live call to be queued once Redis wakes", func() bool {
		status, _ = send(t, tester, "POST", url, jsonType, `{"call_log_id":"slow-live","converted":true}`)
		return status == 202
	})
}
