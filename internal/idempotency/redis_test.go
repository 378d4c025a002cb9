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

// partner-api#safe-retries: in Redis, an idempotency key is one key under its own hash tag (one
// Cluster slot), expiring with the hold until its outcome is saved, then with the window counted
// from that first save, which a retry's save keeps.
func TestRedisKeyExpiresWithTheHoldThenTheWindow(t *testing.T) {
	ctx := context.Background()
	client, s := startRedisStore(t)
	k := idempotency.Key{Webhook: "acme", Key: "k{1}"}
	const name = "p:idem:{acme:k%7B1%7D}"
	ttl := func(what string, low, high time.Duration) {
		t.Helper()
		keys, err := client.Keys(ctx, "p:*").Result()
		if err != nil || len(keys) != 1 || keys[0] != name || hashTag(name) != "acme:k%7B1%7D" {
			t.Fatalf("%s: keys %v %v, want only %s", what, keys, err, name)
		}
		if d := client.PTTL(ctx, name).Val(); d <= low || d > high {
			t.Fatalf("%s: TTL %s, want in (%s, %s]", what, d, low, high)
		}
	}
	mustClaim(t, s, k, "fp", "t1", 15*time.Second, idempotency.New)
	ttl("held", 0, 15*time.Second)
	mustSave(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, 24*time.Hour)
	ttl("saved", 23*time.Hour, 24*time.Hour)
	mustClaim(t, s, k, "fp", "t2", 15*time.Second, idempotency.Retry)
	mustSave(t, s, k, "t2", idempotency.Record{Fingerprint: "fp", Outcome: []byte("whole"), Final: true}, 48*time.Hour)
	ttl("saved again", 23*time.Hour, 24*time.Hour)
}

// partner-api#safe-retries: a request that outlived its hold saves its outcome without taking
// what the others need: the hold of the request that took the key over, and the expiry of a
// record saved since. (Its plain SET wrote over the key; the repair puts that right.)
func TestRedisSaveAfterItsHoldWasLost(t *testing.T) {
	ctx := context.Background()
	client, s := startRedisStore(t)
	mine := idempotency.Record{Fingerprint: "fp", Outcome: []byte("mine"), Final: true}
	n := 0
	// lost returns a key that t1 claimed and no longer holds, as if its
	// hold had expired, and the key's name in Redis.
	lost := func(t *testing.T) (idempotency.Key, string) {
		t.Helper()
		n++
		k := idempotency.Key{Webhook: "acme", Key: fmt.Sprint("k", n)}
		mustClaim(t, s, k, "fp", "t1", time.Minute, idempotency.New)
		if err := s.Release(ctx, k, "t1"); err != nil {
			t.Fatal(err)
		}
		return k, fmt.Sprintf("p:idem:{acme:k%d}", n)
	}
	ttl := func(t *testing.T, name string, low, high time.Duration) {
		t.Helper()
		if d := client.PTTL(ctx, name).Val(); d <= low || d > high {
			t.Fatalf("TTL %s, want in (%s, %s]", d, low, high)
		}
	}

	t.Run("nothing since: saved with the window", func(t *testing.T) {
		k, name := lost(t)
		mustSave(t, s, k, "t1", mine, 24*time.Hour)
		ttl(t, name, 23*time.Hour, 24*time.Hour)
		mustClaim(t, s, k, "fp", "t2", time.Minute, idempotency.Done)
	})
	t.Run("another's first hold: kept beside the record", func(t *testing.T) {
		k, name := lost(t)
		mustClaim(t, s, k, "fp", "t2", time.Minute, idempotency.New)
		mustSave(t, s, k, "t1", mine, 24*time.Hour)
		ttl(t, name, 23*time.Hour, 24*time.Hour)
		if c := mustClaim(t, s, k, "fp", "t3", time.Minute, idempotency.Done); string(c.Outcome) != "mine" {
			t.Fatalf("outcome %q, want mine", c.Outcome)
		}
		// Not final: t2 still holds the key for a retry of it.
		k2, _ := lost(t)
		mustClaim(t, s, k2, "fp", "t2", time.Minute, idempotency.New)
		mustSave(t, s, k2, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, 24*time.Hour)
		mustClaim(t, s, k2, "fp", "t3", time.Minute, idempotency.InUse)
		if err := s.Release(ctx, k2, "t2"); err != nil {
			t.Fatal(err)
		}
		if c := mustClaim(t, s, k2, "fp", "t3", time.Minute, idempotency.Retry); string(c.Outcome) != "half" {
			t.Fatalf("outcome %q, want half", c.Outcome)
		}
	})
	t.Run("another's record: overwritten, its expiry kept", func(t *testing.T) {
		k, name := lost(t)
		mustClaim(t, s, k, "fp", "t2", time.Minute, idempotency.New)
		mustSave(t, s, k, "t2", idempotency.Record{Fingerprint: "fp", Outcome: []byte("theirs"), Final: true}, time.Hour)
		mustSave(t, s, k, "t1", mine, 24*time.Hour)
		ttl(t, name, 59*time.Minute, time.Hour)
		if c := mustClaim(t, s, k, "fp", "t3", time.Minute, idempotency.Done); string(c.Outcome) != "mine" {
			t.Fatalf("outcome %q, want mine", c.Outcome)
		}
	})
	t.Run("a retry's hold: kept, with the record's expiry", func(t *testing.T) {
		k, name := lost(t)
		mustClaim(t, s, k, "fp", "t2", time.Minute, idempotency.New)
		mustSave(t, s, k, "t2", idempotency.Record{Fingerprint: "fp", Outcome: []byte("half")}, time.Hour)
		mustClaim(t, s, k, "fp", "t3", time.Minute, idempotency.Retry)
		mustSave(t, s, k, "t1", idempotency.Record{Fingerprint: "fp", Outcome: []byte("mine, half")}, 24*time.Hour)
		ttl(t, name, 59*time.Minute, time.Hour)
		mustClaim(t, s, k, "fp", "t4", time.Minute, idempotency.InUse)
		if err := s.Release(ctx, k, "t3"); err != nil {
			t.Fatal(err)
		}
		if c := mustClaim(t, s, k, "fp", "t4", time.Minute, idempotency.Retry); string(c.Outcome) != "mine, half" {
			t.Fatalf("outcome %q, want mine, half", c.Outcome)
		}
	})
}

// partner-api#safe-retries: keys an earlier version stored (a hash, its hold in <key>:hold) are
// still answered, held, saved and released in their own layout, which that version still reads.
func TestKeyStoredByAnEarlierVersion(t *testing.T) {
	ctx := context.Background()
	client, s := startRedisStore(t)
	earlier := func(key, out, final string) idempotency.Key {
		t.Helper()
		name := "p:idem:{acme:" + key + "}"
		if err := client.HSet(ctx, name, "fp", "fp", "out", out, "final", final).Err(); err != nil {
			t.Fatal(err)
		}
		client.PExpire(ctx, name, time.Hour)
		return idempotency.Key{Webhook: "acme", Key: key}
	}

	done := earlier("done", "out-1", "1")
	mustClaim(t, s, done, "fp", "t1", time.Minute, idempotency.Done)
	mustClaim(t, s, done, "other-fp", "t1", time.Minute, idempotency.Reused)

	half := earlier("half", "half", "0")
	mustClaim(t, s, half, "fp", "t2", time.Minute, idempotency.Retry)
	if holder := client.Get(ctx, "p:idem:{acme:half}:hold").Val(); holder != "t2" {
		t.Fatalf("the retry's hold is %q in the earlier layout, want t2", holder)
	}
	mustClaim(t, s, half, "fp", "t3", time.Minute, idempotency.InUse)
	if err := s.Release(ctx, half, "t2"); err != nil {
		t.Fatal(err)
	}
	mustClaim(t, s, half, "fp", "t4", time.Minute, idempotency.Retry)
	mustSave(t, s, half, "t4", idempotency.Record{Fingerprint: "fp", Outcome: []byte("whole"), Final: true}, 48*time.Hour)
	rec := client.HGetAll(ctx, "p:idem:{acme:half}").Val()
	if rec["fp"] != "fp" || rec["out"] != "whole" || rec["final"] != "1" || client.Exists(ctx, "p:idem:{acme:half}:hold").Val() != 0 {
		t.Fatalf("saved over an earlier record: %v, hold kept %d; want the hash updated and the hold gone", rec, client.Exists(ctx, "p:idem:{acme:half}:hold").Val())
	}
	if d := client.PTTL(ctx, "p:idem:{acme:half}").Val(); d <= 0 || d > time.Hour {
		t.Fatalf("TTL %s after the save, want the earlier record's", d)
	}
	mustClaim(t, s, half, "fp", "t5", time.Minute, idempotency.Done)
}

// partner-api#safe-retries: fingerprints, tokens and outcomes that look like the layout's own
// markers and separators are stored and compared whole.
func TestRedisValuesThatLookLikeTheLayout(t *testing.T) {
	_, s := startRedisStore(t)
	k := idempotency.Key{Webhook: "acme", Key: "H1:2:s"}
	fp, token := "12:h:s1:H9", "H99:3:abc"
	mustClaim(t, s, k, fp, token, time.Minute, idempotency.New)
	mustSave(t, s, k, token, idempotency.Record{Fingerprint: fp, Outcome: []byte("s1:2:h")}, time.Hour)
	mustClaim(t, s, k, fp+"x", "t2", time.Minute, idempotency.Reused)
	mustClaim(t, s, k, "12:h:s1:H", "t2", time.Minute, idempotency.Reused)
	c := mustClaim(t, s, k, fp, "h"+token, time.Minute, idempotency.Retry)
	if string(c.Outcome) != "s1:2:h" {
		t.Fatalf("outcome %q, want s1:2:h", c.Outcome)
	}
	mustClaim(t, s, k, fp, token, time.Minute, idempotency.InUse)
}

func mustClaim(t *testing.T, s idempotency.Store, k idempotency.Key, fp, token string, hold time.Duration, want idempotency.State) idempotency.Claim {
	t.Helper()
	c, err := s.Claim(context.Background(), k, fp, token, hold)
	if err != nil || c.State != want {
		t.Fatalf("Claim(%q, %q, %q) = %s %v, want %s", k.Key, fp, token, c.State, err, want)
	}
	return c
}

func mustSave(t *testing.T, s idempotency.Store, k idempotency.Key, token string, rec idempotency.Record, window time.Duration) {
	t.Helper()
	if err := s.Save(context.Background(), k, token, rec, window); err != nil {
		t.Fatalf("Save(%q, %q): %v", k.Key, token, err)
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

// startRedisStore is a store with prefix "p:" on a redis-server of its
// own, and a client to look at what it stored.
func startRedisStore(t *testing.T) (*redis.Client, *idempotency.Redis) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	return client, newRedisStore(t, client, "p:")
}

// newRedisStore is a store over client with a batcher of its own, closed
// when the test ends (before the client, which was registered first).
func newRedisStore(tb testing.TB, client redis.UniversalClient, prefix string) *idempotency.Redis {
	b := redisbatch.New(client)
	tb.Cleanup(b.Close)
	return idempotency.NewRedis(b, prefix)
}
