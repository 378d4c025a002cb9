package postback_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisqueue"
	"github.com/callpostback/caddy-postback/internal/redistest"
	"github.com/callpostback/caddy-postback/postback"
)

// recordingStore is a real HTTP call store that applies every PATCH and
// remembers, per call, the bodies in the order they arrived.
type recordingStore struct {
	*httptest.Server
	mu      sync.Mutex
	applied map[string][]string
	hold    chan struct{} // when set, PATCHes wait on it
}

func newRecordingStore(t *testing.T) *recordingStore {
	s := &recordingStore{applied: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.hold != nil {
			select {
			case <-s.hold:
			case <-r.Context().Done():
				return
			}
		}
		body, _ := io.ReadAll(r.Body)
		id := strings.TrimPrefix(r.URL.Path, "/v1/calls/")
		s.mu.Lock()
		s.applied[id] = append(s.applied[id], string(body))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *recordingStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.applied {
		n += len(a)
	}
	return n
}

func newDrainer(t *testing.T, addr string, store *postback.CallStore, lease time.Duration) (*postback.Drainer, queue.Queue) {
	client := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { client.Close() })
	q := redisqueue.New(client, "drain-test:")
	return &postback.Drainer{Queue: q, Store: store, Interval: 20 * time.Millisecond, LeaseTTL: lease, Timeout: time.Second}, q
}

func callStore(t *testing.T, url string) *postback.CallStore {
	cs, err := postback.NewCallStore(postback.CallStoreConfig{URL: url, Timeout: time.Second, MaxConcurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func waitUntil(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// operations#several-instances: two instances drain one Redis concurrently; every accepted update
// is applied exactly once, in the order it was accepted.
func TestTwoDrainersShareOneRedis(t *testing.T) {
	srv := redistest.Start(t)
	store := newRecordingStore(t)
	cs := callStore(t, store.URL)
	a, qa := newDrainer(t, srv.Addr(), cs, 5*time.Second)
	b, _ := newDrainer(t, srv.Addr(), cs, 5*time.Second)

	const calls, updates = 20, 10
	ctx := context.Background()
	now := time.Now()
	for u := 0; u < updates; u++ {
		for c := 0; c < calls; c++ {
			e := &queue.Entry{CallLogID: fmt.Sprintf("call-%02d", c), AcceptedAt: now, Patch: []byte(fmt.Sprintf(`{"seq":%d}`, u))}
			if _, err := qa.Append(ctx, e, false, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*postback.Drainer{a, b} {
		wg.Add(1)
		go func(d *postback.Drainer) { defer wg.Done(); d.Run(runCtx) }(d)
	}
	waitUntil(t, "every update applied", 20*time.Second, func() bool { return store.count() >= calls*updates })
	time.Sleep(100 * time.Millisecond) // a duplicate would land now
	cancel()
	wg.Wait()

	if n := store.count(); n != calls*updates {
		t.Fatalf("%d PATCHes, want exactly %d", n, calls*updates)
	}
	for c := 0; c < calls; c++ {
		id := fmt.Sprintf("call-%02d", c)
		got := store.applied[id]
		for u := range got {
			if got[u] != fmt.Sprintf(`{"seq":%d}`, u) {
				t.Fatalf("%s applied out of order: %v", id, got)
			}
		}
	}
	if st, _ := qa.Stats(ctx); st.PendingEntries != 0 {
		t.Fatalf("left in the queue: %+v", st)
	}
}

// operations#several-instances: an instance that dies holding a call's lease stops nobody for
// longer than the lease: another resumes where it stopped.
func TestCrashedDrainersLeaseExpires(t *testing.T) {
	srv := redistest.Start(t)
	store := newRecordingStore(t)
	cs := callStore(t, store.URL)
	survivor, q := newDrainer(t, srv.Addr(), cs, 5*time.Second)
	ctx := context.Background()
	now := time.Now()
	for u := 0; u < 3; u++ {
		if _, err := q.Append(ctx, &queue.Entry{CallLogID: "c1", AcceptedAt: now, Patch: []byte(fmt.Sprintf(`{"seq":%d}`, u))}, false, now); err != nil {
			t.Fatal(err)
		}
	}
	// The crashed instance applied the first entry, then died before it
	// could acknowledge it or release its 1s lease.
	if ok, err := q.Claim(ctx, "c1", "crashed-instance", time.Second); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	store.mu.Lock()
	store.applied["c1"] = []string{`{"seq":0}`}
	store.mu.Unlock()

	survivor.DrainCall(ctx, "c1", 0)
	if n := store.count(); n != 1 {
		t.Fatalf("the survivor drained a call under another's lease: %d PATCHes", n)
	}
	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go survivor.Run(runCtx)
	waitUntil(t, "the survivor to take over", 5*time.Second, func() bool { return store.count() == 4 })
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("took over after %s, before the lease expired", waited)
	}
	// At least once: the entry the crashed instance applied but did not
	// acknowledge is applied again, then the rest in order.
	if got := strings.Join(store.applied["c1"], " "); got != `{"seq":0} {"seq":0} {"seq":1} {"seq":2}` {
		t.Fatalf("applied %s", got)
	}
}

// operations#several-instances: a graceful stop releases the leases it holds, so another instance
// resumes at once, not after the lease expires.
func TestGracefulStopReleasesLeases(t *testing.T) {
	srv := redistest.Start(t)
	store := newRecordingStore(t)
	store.hold = make(chan struct{})
	cs := callStore(t, store.URL)
	first, q := newDrainer(t, srv.Addr(), cs, time.Minute)
	second, _ := newDrainer(t, srv.Addr(), cs, time.Minute)
	ctx := context.Background()
	now := time.Now()
	if _, err := q.Append(ctx, &queue.Entry{CallLogID: "c1", AcceptedAt: now, Patch: []byte(`{"seq":0}`)}, false, now); err != nil {
		t.Fatal(err)
	}
	firstCtx, stopFirst := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { first.Run(firstCtx); close(done) }()
	time.Sleep(200 * time.Millisecond) // first is now waiting on the held PATCH
	stopFirst()
	<-done
	close(store.hold)
	secondCtx, stopSecond := context.WithCancel(ctx)
	defer stopSecond()
	go second.Run(secondCtx)
	waitUntil(t, "the second instance to drain", 3*time.Second, func() bool { return store.count() >= 1 })
}

// overlapStore is a slow call store that applies every PATCH and records
// any moment at which one call had two requests in flight.
type overlapStore struct {
	*httptest.Server
	mu       sync.Mutex
	inFlight map[string]int
	overlaps []string
	applied  map[string][]string
}

func newOverlapStore(t *testing.T, delay time.Duration) *overlapStore {
	s := &overlapStore{inFlight: map[string]int{}, applied: map[string][]string{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := strings.TrimPrefix(r.URL.Path, "/v1/calls/")
		s.mu.Lock()
		s.inFlight[id]++
		if s.inFlight[id] > 1 {
			s.overlaps = append(s.overlaps, id+" "+string(body))
		}
		s.mu.Unlock()
		time.Sleep(delay)
		s.mu.Lock()
		s.inFlight[id]--
		s.applied[id] = append(s.applied[id], string(body))
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *overlapStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, a := range s.applied {
		n += len(a)
	}
	return n
}

// operations#the-queue-in-production: with a call store slower than half the lease, the lease is
// renewed while each request is in flight, so two drainers never have
// requests for one call in flight at once and every update lands in order.
func TestTwoDrainersSlowCallStore(t *testing.T) {
	srv := redistest.Start(t)
	// Renewals are timed from the lease, so a loaded machine's delays
	// must exceed a third of it (0.5 s) to lose it.
	const lease = 1500 * time.Millisecond
	store := newOverlapStore(t, lease/2+lease/20)
	cs, err := postback.NewCallStore(postback.CallStoreConfig{URL: store.URL, Timeout: 5 * time.Second, MaxConcurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	a, qa := newDrainer(t, srv.Addr(), cs, lease)
	b, _ := newDrainer(t, srv.Addr(), cs, lease)
	a.Timeout, b.Timeout = 5*time.Second, 5*time.Second

	const calls, updates = 6, 4
	ctx := context.Background()
	now := time.Now()
	for u := 0; u < updates; u++ {
		for c := 0; c < calls; c++ {
			e := &queue.Entry{CallLogID: fmt.Sprintf("slow-%02d", c), AcceptedAt: now, Patch: []byte(fmt.Sprintf(`{"seq":%d}`, u))}
			if _, err := qa.Append(ctx, e, false, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*postback.Drainer{a, b} {
		wg.Add(1)
		go func(d *postback.Drainer) { defer wg.Done(); d.Run(runCtx) }(d)
	}
	waitUntil(t, "every update applied", 60*time.Second, func() bool {
		st, _ := qa.Stats(ctx)
		return store.count() >= calls*updates && st.PendingEntries == 0
	})
	cancel()
	wg.Wait()

	store.mu.Lock()
	defer store.mu.Unlock()
	if len(store.overlaps) > 0 {
		t.Fatalf("two requests for one call in flight at once: %v", store.overlaps)
	}
	for c := 0; c < calls; c++ {
		id := fmt.Sprintf("slow-%02d", c)
		got := store.applied[id]
		if len(got) != updates {
			t.Fatalf("%s: %d PATCHes, want %d: %v", id, len(got), updates, got)
		}
		for u := range got {
			if got[u] != fmt.Sprintf(`{"seq":%d}`, u) {
				t.Fatalf("%s applied out of order: %v", id, got)
			}
		}
	}
}

// slowRenewals is the Redis queue with a Redis that answers a call's
// renewals late: every Claim of a call after its first waits delay first.
type slowRenewals struct {
	queue.Queue
	delay   time.Duration
	mu      sync.Mutex
	claimed map[string]bool
}

func (q *slowRenewals) Claim(ctx context.Context, callLogID, owner string, ttl time.Duration) (bool, error) {
	q.mu.Lock()
	renewal := q.claimed[callLogID]
	q.claimed[callLogID] = true
	q.mu.Unlock()
	if renewal {
		select {
		case <-time.After(q.delay):
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	return q.Queue.Claim(ctx, callLogID, owner, ttl)
}

// operations#the-queue-in-production: a renewal answered after a third of the lease, but
// well before the lease ends, keeps the lease: the request in flight is not
// cut short and sent again, so each update is applied once.
func TestLateRenewalKeepsTheLease(t *testing.T) {
	srv := redistest.Start(t)
	const lease = 3 * time.Second
	// The request outlives the first renewal's answer (a third of the
	// lease, then 0.4 of it).
	store := newOverlapStore(t, lease*3/4)
	cs, err := postback.NewCallStore(postback.CallStoreConfig{URL: store.URL, Timeout: 5 * time.Second, MaxConcurrency: 16})
	if err != nil {
		t.Fatal(err)
	}
	d, q := newDrainer(t, srv.Addr(), cs, lease)
	d.Timeout = 5 * time.Second
	d.Queue = &slowRenewals{Queue: q, delay: lease * 2 / 5, claimed: map[string]bool{}}
	ctx := context.Background()
	now := time.Now()
	for u := 0; u < 2; u++ {
		if _, err := q.Append(ctx, &queue.Entry{CallLogID: "late", AcceptedAt: now, Patch: []byte(fmt.Sprintf(`{"seq":%d}`, u))}, false, now); err != nil {
			t.Fatal(err)
		}
	}
	d.DrainCall(ctx, "late", 0)
	store.mu.Lock()
	defer store.mu.Unlock()
	if got := strings.Join(store.applied["late"], " "); got != `{"seq":0} {"seq":1}` {
		t.Fatalf("applied %s, want each update once, in order", got)
	}
}
