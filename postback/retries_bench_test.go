package postback

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redisqueue"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// inProcessStore answers call-store requests with its handler in the
// calling goroutine, without a socket, so that a benchmark shows the
// edge's own work rather than a loopback round trip.
type inProcessStore struct{ http.Handler }

func (s inProcessStore) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func benchEdge(b *testing.B) (*Edge, *Webhook, *Request) {
	b.Helper()
	cs, err := NewCallStore(CallStoreConfig{URL: "http://callstore.invalid", Timeout: 5 * time.Second, MaxConcurrency: 16,
		Transport: inProcessStore{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNoContent)
		})}})
	if err != nil {
		b.Fatal(err)
	}
	e := &Edge{Store: cs, Queue: queue.NewMemory(), MaxConcurrency: 8, Deadline: 5 * time.Second, DrainInterval: 5 * time.Second}
	w, err := NewWebhook("acme", TypeUpdateFields, "acct_1", "acme-secret", "")
	if err != nil {
		b.Fatal(err)
	}
	req, perr := testParser().Parse(EndpointUpdateFields, "", benchSingle, BodyJSON)
	if perr != nil {
		b.Fatal(perr)
	}
	return e, w, req
}

// BenchmarkApplySingle is a single-id postback without an idempotency
// key: the baseline of BenchmarkApplySingleNewKey.
func BenchmarkApplySingle(b *testing.B) {
	e, w, req := benchEdge(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if res := e.Apply(ctx, w, "req-1", req); res.Calls[0].Class != Applied {
			b.Fatal(res.Calls[0])
		}
	}
}

// BenchmarkApplySingleNewKey is the same postback with a key not seen
// before, as every signed postback has (its webhook-id), in a memory store
// already at its bound, as steady traffic keeps it: what the key costs is
// the difference.
func BenchmarkApplySingleNewKey(b *testing.B) {
	e, w, req := benchEdge(b)
	store := idempotency.NewMemory(0)
	x := &Retries{Store: store, Window: DefaultIdempotencyWindow, Hold: 10 * time.Second}
	ctx := context.Background()
	rec := idempotency.Record{Fingerprint: req.Fingerprint(EndpointUpdateFields), Outcome: []byte(`[["abc-123","applied",""]]`), Final: true}
	for i := range idempotency.DefaultMaxKeys {
		k := idempotency.Key{Webhook: w.Name, Key: "msg_earlier" + strconv.Itoa(i)}
		if _, err := store.Claim(ctx, k, rec.Fingerprint, "t", time.Second); err != nil {
			b.Fatal(err)
		}
		if err := store.Save(ctx, k, "t", rec, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		out, perr, err := x.Apply(ctx, e, w, "req-1", EndpointUpdateFields, "msg_2Lx8Q3fbVwZ9kd0"+strconv.Itoa(i), req)
		if perr != nil || err != nil || out.Calls[0].Class != Applied || out.Seen {
			b.Fatal(perr, err, out.Calls[0])
		}
	}
}

// BenchmarkRedisApplySingle and BenchmarkRedisApplySingleNewKey are the
// two above in the production configuration: the queue's ordering check
// and the key on a real redis-server, through one shared batcher, with 16
// postbacks in flight (the call store still answers in process). Their
// difference is what a new key costs the edge with Redis.
func BenchmarkRedisApplySingle(b *testing.B) { benchRedisApply(b, false) }

func BenchmarkRedisApplySingleNewKey(b *testing.B) { benchRedisApply(b, true) }

func benchRedisApply(b *testing.B, keyed bool) {
	e, w, req := benchEdge(b)
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(b).Addr()})
	b.Cleanup(func() { client.Close() })
	batch := redisbatch.New(client)
	b.Cleanup(batch.Close)
	e.Queue = redisqueue.New(client, "bench:", redisqueue.WithBatcher(batch))
	x := &Retries{Store: idempotency.NewRedis(batch, "bench:"), Window: DefaultIdempotencyWindow, Hold: 10 * time.Second}
	ctx := context.Background()
	var keys atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !keyed {
				if res := e.Apply(ctx, w, "req-1", req); res.Calls[0].Class != Applied {
					b.Error(res.Calls[0])
					return
				}
				continue
			}
			key := "msg_2Lx8Q3fbVwZ9kd0" + strconv.FormatInt(keys.Add(1), 10)
			out, perr, err := x.Apply(ctx, e, w, "req-1", EndpointUpdateFields, key, req)
			if perr != nil || err != nil || out.Calls[0].Class != Applied || out.Seen {
				b.Error(perr, err, out.Calls[0])
				return
			}
		}
	})
}
