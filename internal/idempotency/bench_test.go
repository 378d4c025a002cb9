package idempotency_test

import (
	"context"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// benchmarkNewKey is what a request with a key not seen before costs the
// store: a claim, then a save of a one-call outcome.
func benchmarkNewKey(b *testing.B, s idempotency.Store) {
	ctx := context.Background()
	rec := idempotency.Record{Fingerprint: "3f1c0d5e9a7b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f80", Outcome: []byte(`[["abc-123","applied",""]]`), Final: true}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		k := idempotency.Key{Webhook: "bench", Key: "k-" + strconv.Itoa(i)}
		if _, err := s.Claim(ctx, k, rec.Fingerprint, "token", 15*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := s.Save(ctx, k, "token", rec, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMemoryNewKey(b *testing.B) {
	benchmarkNewKey(b, idempotency.NewMemory(0))
}

// benchRecord is what a signed single-id postback leaves: a hex SHA-256
// fingerprint and a one-call outcome.
var benchRecord = idempotency.Record{Fingerprint: "3f1c0d5e9a7b2c4d6e8f0a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f80", Outcome: []byte(`[["abc-123","applied",""]]`), Final: true}

// fillMemory saves n keys shaped like the webhook-ids of signed postbacks.
func fillMemory(b *testing.B, m *idempotency.Memory, n int) {
	ctx := context.Background()
	for i := range n {
		k := idempotency.Key{Webhook: "bench_signed", Key: "msg_2Lx8Q3fbVwZ9kd0" + strconv.Itoa(i)}
		if _, err := m.Claim(ctx, k, benchRecord.Fingerprint, "token", 15*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := m.Save(ctx, k, "token", benchRecord, time.Hour); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMemoryNewKeyFull is a new key in a store already at its bound,
// as every signed postback finds it once traffic has filled it: the claim,
// the save, and the eviction of the oldest key.
func BenchmarkMemoryNewKeyFull(b *testing.B) {
	m := idempotency.NewMemory(0)
	fillMemory(b, m, idempotency.DefaultMaxKeys)
	benchmarkNewKey(b, m)
}

// BenchmarkMemoryFullGC is what a full store costs the rest of the
// process: the time of one garbage collection with DefaultMaxKeys keys
// saved, and the heap each key keeps (heap-B/key).
func BenchmarkMemoryFullGC(b *testing.B) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	m := idempotency.NewMemory(0)
	fillMemory(b, m, idempotency.DefaultMaxKeys)
	runtime.GC()
	runtime.ReadMemStats(&after)
	for b.Loop() {
		runtime.GC()
	}
	runtime.KeepAlive(m)
	// After the loop: its start resets the metrics reported before.
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/idempotency.DefaultMaxKeys, "heap-B/key")
}

func BenchmarkRedisNewKey(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { client.Close() })
	s := newRedisStore(b, client, "bench:")
	benchmarkNewKey(b, s)
}

// BenchmarkRedisNewKeyParallel is the same under 32 concurrent requests,
// whose scripts share pipelines.
func BenchmarkRedisNewKeyParallel(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	b.Cleanup(func() { client.Close() })
	s := newRedisStore(b, client, "bench:")
	ctx := context.Background()
	rec := idempotency.Record{Fingerprint: "fp", Outcome: []byte(`[["abc-123","applied",""]]`), Final: true}
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			k := idempotency.Key{Webhook: "bench", Key: "p-" + strconv.FormatInt(seq.Add(1), 36)}
			if _, err := s.Claim(ctx, k, rec.Fingerprint, "token", 15*time.Second); err != nil {
				b.Error(err)
				return
			}
			if err := s.Save(ctx, k, "token", rec, time.Hour); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
