package idempotency_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/internal/idempotency/idempotencytest"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	n := 0
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
		n++
		s := newRedisStore(t, client, fmt.Sprintf("t%d:", n))
		return s
	})
}

// partner-api#safe-retries: in Redis, a key's record expires with the window and its hold with
// the hold, each on its own, and both keys of one idempotency key share a
// hash tag (one cluster slot).
func TestRedisKeysExpireAndShareATag(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { client.Close() })
	s := newRedisStore(t, client, "p:")
	k := idempotency.Key{Webhook: "acme", Key: "k{1}"}
	if _, err := s.Claim(ctx, k, "fp", "t1", 15*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ctx, k, "other", idempotency.Record{Fingerprint: "fp", Outcome: []byte("x")}, 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "p:*").Result()
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys %v %v", keys, err)
	}
	tag := ""
	for _, key := range keys {
		ttl := client.PTTL(ctx, key).Val()
		switch key {
		case "p:idem:{acme:k%7B1%7D}":
			if ttl < 23*time.Hour || ttl > 24*time.Hour {
				t.Fatalf("record TTL %s, want the window", ttl)
			}
		case "p:idem:{acme:k%7B1%7D}:hold":
			if ttl <= 0 || ttl > 15*time.Second {
				t.Fatalf("hold TTL %s, want the hold", ttl)
			}
		default:
			t.Fatalf("unexpected key %q", key)
		}
		if tag != "" && hashTag(key) != tag {
			t.Fatalf("hash tags %q and %q", tag, hashTag(key))
		}
		tag = hashTag(key)
	}
}

// hashTag is the hash tag rule of Redis Cluster: the text between the first
// { and the next }, when not empty.
func hashTag(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}

// partner-api#safe-retries: Redis down: every method fails rather than answering as if the key
// were new.
func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	s := newRedisStore(t, client, "p:")
	srv.Stop()
	ctx := context.Background()
	k := idempotency.Key{Webhook: "acme", Key: "k1"}
	if _, err := s.Claim(ctx, k, "fp", "t", time.Second); err == nil {
		t.Fatal("Claim with Redis down did not fail")
	}
	if err := s.Save(ctx, k, "t", idempotency.Record{Fingerprint: "fp"}, time.Hour); err == nil {
		t.Fatal("Save with Redis down did not fail")
	}
	if err := s.Release(ctx, k, "t"); err == nil {
		t.Fatal("Release with Redis down did not fail")
	}
}

// partner-api#safe-retries: on Redis Cluster, each key's record and hold share a slot, and
// pipelines spanning several nodes answer every request.
func TestRedisCluster(t *testing.T) {
	addrs := redistest.StartCluster(t, 3)
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { client.Close() })
	n := 0
	idempotencytest.Run(t, func(t *testing.T) idempotency.Store {
		n++
		return newRedisStore(t, client, fmt.Sprintf("c%d:", n))
	})
}

// newRedisStore is a store over client with a batcher of its own, closed
// when the test ends (before the client, which was registered first).
func newRedisStore(tb testing.TB, client redis.UniversalClient, prefix string) *idempotency.Redis {
	b := redisbatch.New(client)
	tb.Cleanup(b.Close)
	return idempotency.NewRedis(b, prefix)
}
