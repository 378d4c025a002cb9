package caddymodule_test

import (
	"fmt"
	"net"
	"testing"

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
