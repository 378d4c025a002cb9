// Command upstream is the minimal call store of the load benchmark
// (bench/run.sh): on a loopback address it answers 200 {} to every
// PATCH /v1/calls/{id} (what the postback handler sends, docs/operations.md#updating-a-call) and to
// every POST (what reverse_proxy forwards), reading and discarding the
// body, with keep-alive. Anything else is a 404, so a misrouted benchmark
// shows up as errors instead of as speed, except GET /stats:
// {"conns_opened":N,"requests":M}, the connections accepted and the
// PATCH/POST requests answered since start (the load generator reads it at
// the edges of its window: how many calls reached the call store, and over
// how many new connections).
//
// For the drain benchmark (bench/drain), a call whose id starts with
// "live-" is in progress: its PATCH is answered 409 {"state":"live"} until
// POST /live/complete, after which it is applied and counted in
// "live_applied" of /stats.
//
//	go build -o /tmp/upstream ./bench/upstream
//	/tmp/upstream -addr 127.0.0.1:9191 -procs 1
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
)

var (
	okBody        = []byte("{}")
	jsonType      = []string{"application/json"}
	contentLength = []string{"2"}

	connsOpened atomic.Int64
	requests    atomic.Int64
	liveDone    atomic.Bool
	liveApplied atomic.Int64
	liveBody    = []byte(`{"state":"live"}`)
	liveLength  = []string{"16"}
)

func handle(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	switch {
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/calls/live-"):
		if !liveDone.Load() {
			h := w.Header()
			h["Content-Type"] = jsonType
			h["Content-Length"] = liveLength
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write(liveBody)
			return
		}
		liveApplied.Add(1)
	case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/calls/") && len(r.URL.Path) > len("/v1/calls/"):
	case r.Method == http.MethodPost && r.URL.Path == "/live/complete":
		liveDone.Store(true)
		w.WriteHeader(http.StatusNoContent)
		return
	case r.Method == http.MethodPost:
	case r.Method == http.MethodGet && r.URL.Path == "/stats":
		w.Header()["Content-Type"] = jsonType
		fmt.Fprintf(w, `{"conns_opened":%d,"requests":%d,"live_applied":%d}`, connsOpened.Load(), requests.Load(), liveApplied.Load())
		return
	default:
		http.NotFound(w, r)
		return
	}
	requests.Add(1)
	h := w.Header()
	h["Content-Type"] = jsonType
	h["Content-Length"] = contentLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9191", "loopback `address` to listen on")
	procs := flag.Int("procs", 0, "GOMAXPROCS (0: leave the runtime's default)")
	flag.Parse()
	if *procs > 0 {
		runtime.GOMAXPROCS(*procs)
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		log.Fatalf("upstream: -addr: %v", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		log.Fatalf("upstream: -addr must be a loopback address, got %q", *addr)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("upstream: %v", err)
	}
	fmt.Fprintf(os.Stderr, "upstream: listening on %s, GOMAXPROCS=%d\n", ln.Addr(), runtime.GOMAXPROCS(0))
	srv := &http.Server{
		Handler:           http.HandlerFunc(handle),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				connsOpened.Add(1)
			}
		},
	}
	log.Fatal(srv.Serve(ln))
}
