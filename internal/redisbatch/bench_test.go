package redisbatch_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// check is a script as cheap as the ordering check of a call with nothing
// queued: one read, nothing written.
var check = redis.NewScript(`return redis.call('LLEN', KEYS[1])`)

// BenchmarkConcurrentScripts compares 32 concurrent callers each running a
// script on its own pipeline with the same callers sharing pipelines, on
// RESP2 and RESP3 connections. The figure to read is the CPU per script.
func BenchmarkConcurrentScripts(b *testing.B) {
	addr := redistest.Start(b).Addr()
	for _, protocol := range []int{2, 3} {
		client := redis.NewClient(&redis.Options{Addr: addr, Protocol: protocol, PoolSize: 64})
		b.Cleanup(func() { client.Close() })
		batcher := redisbatch.New(client)
		b.Cleanup(batcher.Close)
		run := map[string]func(ctx context.Context, key string) error{
			"alone": func(ctx context.Context, key string) error {
				return check.Run(ctx, client, []string{key}).Err()
			},
			"shared": func(ctx context.Context, key string) error {
				_, err := batcher.Run(ctx, check, []string{key})
				return err
			},
		}
		for _, way := range []string{"alone", "shared"} {
			b.Run("resp"+strconv.Itoa(protocol)+"/"+way, func(b *testing.B) {
				var seq atomic.Int64
				b.SetParallelism(16) // 32 goroutines on 2 cores
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						if err := run[way](ctx, "call:"+strconv.FormatInt(seq.Add(1), 10)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
