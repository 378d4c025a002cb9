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
