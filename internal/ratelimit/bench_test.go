package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// The cost of one decision, allowed, per limiter.
func BenchmarkMemoryAllow(b *testing.B) {
	l := NewMemory()
	r := Rate{Events: 1 << 30, Per: time.Second, Burst: 1 << 30}
	ctx := context.Background()
	for b.Loop() {
		_, _, _ = l.Allow(ctx, "acme:0123456789abcdef", r)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	srv := redistest.Start(b)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer client.Close()
	l := NewRedis(client, "bench:")
	r := Rate{Events: 1 << 30, Per: time.Second, Burst: 1 << 30}
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := l.Allow(ctx, "acme:0123456789abcdef", r); err != nil {
			b.Fatal(err)
		}
	}
}
