package caddymodule_test

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// operations#delivery-guarantee: a partner that hangs up after its PATCH reached the call store
// has its update queued all the same and applied once the call completes,
// with the memory queue and with Redis. The partner is a raw client that
// closes its socket while the call store is still answering.
func TestPartnerHangsUpAfterThePatchWasSent(t *testing.T) {
	for _, backend := range []string{"memory", "redis"} {
		t.Run(backend, func(t *testing.T) {
			store := newScriptedStore(t)
			id := "hangup-live-" + backend
			store.set(id, "live-slow")
			global := ""
			if backend == "redis" {
				global = "redis " + redistest.Start(t).URL()
			}
			tester := startEdge(t, edgeConfig(store.URL, global, ""))

			conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", edgePort))
			if err != nil {
				t.Fatal(err)
			}
			body := fmt.Sprintf(`{"call_log_id":%q,"reason":"sale"}`, id)
			fmt.Fprintf(conn, "POST /postback/update-fields?moja_auth_key=%s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", fieldsKey, len(body), body)
			waitFor(t, "the PATCH to reach the call store", func() bool { return store.inFlight.Load() > 0 })
			conn.Close()

			waitFor(t, "the update to be queued after the hang-up", func() bool {
				_, call := adminDo(t, "GET", "/postback/queue/"+id)
				return gjson.Get(call, "pending.#").Int() == 1
			})
			store.set(id, "completed")
			status, answer := send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, fmt.Sprintf(`{"call_log_id":%q}`, id))
			if status != 202 {
				t.Fatalf("call-completed: %d %s", status, answer)
			}
			waitFor(t, "the update to be applied", func() bool { return len(store.applied(id)) == 1 })
			if got := store.applied(id)[0]; got != `{"reason":"sale"}` {
				t.Fatalf("applied %s", got)
			}
		})
	}
}

// operations#delivery-guarantee operations#when-redis-is-down: Redis paused (SIGSTOP) for longer
// than both its timeout and the deadline while updates for live calls
// arrive, then resumed: every update answered 202 is applied exactly once
// and in order, and no update answered 503 is ever applied, although
// copies of its appends waited in Redis's sockets all along.
func TestRedisPausedWhileUpdatesArrive(t *testing.T) {
	srv := redistest.Start(t)
	store := newScriptedStore(t)
	const workers = 4
	for w := range workers {
		store.set(fmt.Sprintf("paused-%d", w), "live")
	}
	tester := startEdge(t, edgeConfig(store.URL, "redis "+srv.URL()+" {\n\t\t\ttimeout 200ms\n\t\t}", ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)

	type answer struct {
		reason string
		status int
	}
	answers := make([][]answer, workers)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				reason := fmt.Sprintf("%d-%03d", w, i)
				req, _ := http.NewRequest("POST", url, strings.NewReader(fmt.Sprintf(`{"call_log_id":"paused-%d","reason":%q}`, w, reason)))
				req.Header.Set("Content-Type", jsonType)
				resp, err := tester.Client.Do(req)
				if err != nil {
					t.Errorf("%s: %v", reason, err)
					return
				}
				resp.Body.Close()
				answers[w] = append(answers[w], answer{reason, resp.StatusCode})
			}
		}()
	}
	waitFor(t, "updates queued before the pause", func() bool {
		_, st := adminDo(t, "GET", "/postback/queue")
		return gjson.Get(st, "pending_entries").Int() >= workers
	})
	srv.Pause()
	time.Sleep(4 * time.Second) // longer than the 200ms timeout and the 3s deadline
	srv.Resume()
	waitFor(t, "updates queued after the pause", func() bool {
		_, st := adminDo(t, "GET", "/postback/queue")
		n := gjson.Get(st, "pending_entries").Int()
		time.Sleep(200 * time.Millisecond)
		_, st = adminDo(t, "GET", "/postback/queue")
		return gjson.Get(st, "pending_entries").Int() > n
	})
	close(stop)
	wg.Wait()

	for w := range workers {
		store.set(fmt.Sprintf("paused-%d", w), "completed")
		send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, fmt.Sprintf(`{"call_log_id":"paused-%d"}`, w))
	}
	end := time.Now().Add(30 * time.Second)
	for {
		_, st := adminDo(t, "GET", "/postback/queue")
		if gjson.Get(st, "pending_entries").Int() == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("the queue did not drain: %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}

	refused := 0
	for w := range workers {
		applied := map[string]int{}
		var order []string
		for _, body := range store.applied(fmt.Sprintf("paused-%d", w)) {
			reason := gjson.Get(body, "reason").String()
			applied[reason]++
			order = append(order, reason)
		}
		if !slices.IsSorted(order) {
			t.Errorf("paused-%d applied out of order: %v", w, order)
		}
		for _, a := range answers[w] {
			switch {
			case a.status == 202 && applied[a.reason] != 1:
				t.Errorf("%s answered 202, applied %d times", a.reason, applied[a.reason])
			case a.status == 503 && applied[a.reason] != 0:
				t.Errorf("%s answered 503, applied %d times", a.reason, applied[a.reason])
			case a.status != 202 && a.status != 503:
				t.Errorf("%s answered %d", a.reason, a.status)
			}
			if a.status == 503 {
				refused++
			}
		}
	}
	if refused == 0 {
		t.Errorf("no update was refused while Redis was paused past the deadline: the test did not pause it")
	}
}

// operations#the-queue-in-production: five config reloads in the middle of a drain. Each old
// drainer lets its requests in flight finish and records them before its
// config stops, so no update is applied twice.
func TestReloadsDuringADrain(t *testing.T) {
	store := newScriptedStore(t)
	store.delay = 30 * time.Millisecond
	const calls, updates = 40, 5
	ids := make([]string, calls)
	for c := range ids {
		ids[c] = fmt.Sprintf("reload-%02d", c)
		store.set(ids[c], "live")
	}
	config := func(interval string) string {
		return strings.Replace(edgeConfig(store.URL, "", ""), "drain_interval 100ms", "drain_interval "+interval, 1)
	}
	tester := startEdge(t, config("100ms"))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	quoted := `"` + strings.Join(ids, `","`) + `"`
	for u := range updates {
		status, body := send(t, tester, "POST", url, jsonType, fmt.Sprintf(`{"call_log_id":[%s],"reason":"u%d"}`, quoted, u))
		if status != 202 {
			t.Fatalf("update %d: %d %s", u, status, body)
		}
	}
	for _, id := range ids {
		store.set(id, "completed")
	}
	send(t, tester, "POST", edgeURL("/postback/call-completed?moja_auth_key="+platformKey), jsonType, `{"call_log_id":[`+quoted+`]}`)
	for r := range 5 {
		waitFor(t, "the drain to make progress", func() bool { return len(store.records()) > r*calls*updates/8 })
		tester.InitServer(config(fmt.Sprintf("%dms", 101+r)), "caddyfile")
	}
	end := time.Now().Add(30 * time.Second)
	for len(store.records()) < calls*updates && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would land now
	for _, id := range ids {
		got := strings.Join(store.applied(id), " ")
		if want := `{"reason":"u0"} {"reason":"u1"} {"reason":"u2"} {"reason":"u3"} {"reason":"u4"}`; got != want {
			t.Errorf("%s applied %s, want each update once, in order", id, got)
		}
	}
}

// operations#the-queue-in-production: a call holds at most max_pending_per_call updates (default
// 1000); the next is refused with too_many_pending, 429, and nothing is
// stored.
func TestTooManyPendingForOneCall(t *testing.T) {
	store := newScriptedStore(t)
	store.set("full-live", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+redistest.Start(t).URL(), ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if status, body := send(t, tester, "POST", url, jsonType, fmt.Sprintf(`{"call_log_id":"full-live","reason":"r%d"}`, i)); status != 202 {
					t.Errorf("update %d: %d %s", i, status, body)
				}
			}
		}()
	}
	for i := range 1000 {
		next <- i
	}
	close(next)
	wg.Wait()
	status, body := send(t, tester, "POST", url, jsonType, `{"call_log_id":"full-live","reason":"one too many"}`)
	if status != 429 || gjson.Get(body, "errors.full-live.code").String() != "too_many_pending" {
		t.Fatalf("the 1001st update: %d %s, want 429 too_many_pending", status, body)
	}
	_, call := adminDo(t, "GET", "/postback/queue/full-live")
	if n := gjson.Get(call, "pending.#").Int(); n != 1000 || strings.Contains(call, "one too many") {
		t.Fatalf("%d updates waiting (want 1000, without the refused one)", n)
	}
}

// operations#the-queue-in-production: the queue gauges on Caddy's /metrics.
func TestQueueGauges(t *testing.T) {
	store := newScriptedStore(t)
	store.set("gauge-1", "live")
	store.set("gauge-2", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+redistest.Start(t).URL(), ""))
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	for _, body := range []string{`{"call_log_id":["gauge-1","gauge-2"],"converted":true}`, `{"call_log_id":"gauge-1","reason":"later"}`} {
		if status, answer := send(t, tester, "POST", url, jsonType, body); status != 202 {
			t.Fatalf("%d %s", status, answer)
		}
	}
	want := []string{
		"caddy_postback_queue_pending_updates 3",
		"caddy_postback_queue_calls_waiting 2",
		"caddy_postback_queue_dead_letters 0",
		"caddy_postback_queue_oldest_pending_age_seconds ",
	}
	var body string
	waitFor(t, "the queue gauges", func() bool {
		_, body = adminDo(t, "GET", "/metrics")
		for _, w := range want {
			if !strings.Contains(body, "\n"+w) {
				return false
			}
		}
		return true
	})
}

// operations#metrics: with Redis, every pipeline the edge sends is timed and sized, so an operator
// sees Redis's latency as the edge does and how many postbacks share a round trip.
func TestRedisPipelineMetrics(t *testing.T) {
	store := newScriptedStore(t)
	store.set("pipe-1", "live")
	tester := startEdge(t, edgeConfig(store.URL, "redis "+redistest.Start(t).URL(), ""))
	count := func(series string) float64 { return seriesValue(metricsText(t), series) }
	const pipelines, commands = "caddy_postback_redis_pipeline_duration_seconds_count", "caddy_postback_redis_pipeline_commands_sum"
	pipelinesBefore, commandsBefore := count(pipelines), count(commands)
	url := edgeURL("/postback/update-fields?moja_auth_key=" + fieldsKey)
	// The ordering check, then the append of the live call: two commands at least.
	if status, answer := send(t, tester, "POST", url, jsonType, `{"call_log_id":"pipe-1","converted":true}`); status != 202 {
		t.Fatalf("%d %s", status, answer)
	}
	if p, s := count(pipelines)-pipelinesBefore, count(commands)-commandsBefore; p < 1 || s < 2 {
		t.Fatalf("after a queued postback: %v more pipelines carrying %v more commands, want at least 1 carrying 2", p, s)
	}
}
