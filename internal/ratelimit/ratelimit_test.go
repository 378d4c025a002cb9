package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]Rate{
		"100/s":   {Events: 100, Per: time.Second},
		"600/m":   {Events: 600, Per: time.Minute},
		"1/h":     {Events: 1, Per: time.Hour},
		"5/10s":   {Events: 5, Per: 10 * time.Second},
		"3/250ms": {Events: 3, Per: 250 * time.Millisecond},
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "100", "0/s", "-1/s", "x/s", "10/day", "10/0s", "2000000000/ns"} {
		if _, err := ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
}

// limiterSuite is what both limiters must do.
func limiterSuite(t *testing.T, newLimiter func(t *testing.T) Limiter) {
	ctx := context.Background()
	t.Run("a burst is allowed, the next event waits about one interval", func(t *testing.T) {
		l := newLimiter(t)
		r := Rate{Events: 10, Per: time.Second, Burst: 3}
		for i := 0; i < 3; i++ {
			if ok, _, err := l.Allow(ctx, "acme", r); !ok || err != nil {
				t.Fatalf("event %d of the burst refused: %v", i, err)
			}
		}
		ok, wait, err := l.Allow(ctx, "acme", r)
		if ok || err != nil {
			t.Fatalf("event past the burst allowed: %v", err)
		}
		if wait <= 0 || wait > 100*time.Millisecond {
			t.Fatalf("retry after %s, want at most one interval (100ms)", wait)
		}
		time.Sleep(wait + 20*time.Millisecond)
		if ok, _, _ := l.Allow(ctx, "acme", r); !ok {
			t.Fatal("refused after waiting as told")
		}
	})
	t.Run("keys are independent", func(t *testing.T) {
		l := newLimiter(t)
		r := Rate{Events: 1, Per: time.Hour, Burst: 1}
		if ok, _, _ := l.Allow(ctx, "a", r); !ok {
			t.Fatal("first event of a refused")
		}
		if ok, _, _ := l.Allow(ctx, "b", r); !ok {
			t.Fatal("b refused because of a")
		}
		if ok, wait, _ := l.Allow(ctx, "a", r); ok || wait < 59*time.Minute {
			t.Fatalf("second event of a: allowed %v, wait %s", ok, wait)
		}
	})
}

func TestMemory(t *testing.T) {
	limiterSuite(t, func(*testing.T) Limiter { return NewMemory() })
}

func TestRedis(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	limiterSuite(t, func(t *testing.T) Limiter {
		client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { client.Close() })
		n++
		return NewRedis(client, "rl-test-"+string(rune('a'+n))+":")
	})

	t.Run("instances share one bucket", func(t *testing.T) {
		var limiters []Limiter
		for i := 0; i < 2; i++ {
			client := redis.NewClient(&redis.Options{Addr: srv.Addr()})
			t.Cleanup(func() { client.Close() })
			limiters = append(limiters, NewRedis(client, "rl-shared:"))
		}
		r := Rate{Events: 1, Per: time.Hour, Burst: 4}
		allowed := 0
		for i := 0; i < 10; i++ {
			if ok, _, _ := limiters[i%2].Allow(context.Background(), "acme", r); ok {
				allowed++
			}
		}
		if allowed != 4 {
			t.Fatalf("two instances allowed %d events, want the burst of 4 in all", allowed)
		}
	})

	t.Run("Redis down: allowed, with the error", func(t *testing.T) {
		client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
		t.Cleanup(func() { client.Close() })
		ok, _, err := NewRedis(client, "x:").Allow(context.Background(), "acme", Rate{Events: 1, Per: time.Second})
		if !ok || err == nil {
			t.Fatalf("ok %v err %v; want allowed with an error", ok, err)
		}
	})
}
