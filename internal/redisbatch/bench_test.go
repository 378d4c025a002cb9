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
			b.Run("resp"+strconv.Itoa(protocol)+"/"+way, func(b *testing.B) { runConcurrently(b, run[way]) })
		}
	}
}

// BenchmarkAgainstAutoPipeline compares the Batcher with go-redis's own
// AutoPipeline (experimental in go-redis 9.23), which also sends the
// commands of concurrent callers together, on the ordering check's
// command (LLEN) from 16 callers per core: why the plugin keeps its own
// (docs/operations.md#the-queue-in-production). The figure to read is the
// time per command.
func BenchmarkAgainstAutoPipeline(b *testing.B) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(b).Addr(), PoolSize: 64})
	b.Cleanup(func() { client.Close() })
	batcher := redisbatch.New(client)
	b.Cleanup(batcher.Close)
	auto, err := client.AutoPipeline()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { auto.Close() })
	b.Run("batcher", func(b *testing.B) {
		runConcurrently(b, func(ctx context.Context, key string) error {
			_, err := batcher.Do(ctx, "llen", key)
			return err
		})
	})
	b.Run("autopipeline", func(b *testing.B) {
		runConcurrently(b, func(ctx context.Context, key string) error {
			return auto.LLen(ctx, key).Err()
		})
	})
}

// runConcurrently runs op from 16 goroutines per core (32 on 2), each time with a
// new key.
func runConcurrently(b *testing.B, op func(ctx context.Context, key string) error) {
	var seq atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := op(ctx, "call:"+strconv.FormatInt(seq.Add(1), 10)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
