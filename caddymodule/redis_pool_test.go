package caddymodule

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// The Redis client is shared by the old and the new config of a reload,
// and closed when the last config using it is cleaned up (operations#several-instances).
func TestRedisClientSharedAcrossReloads(t *testing.T) {
	srv := redistest.Start(t)
	provision := func() *App {
		t.Helper()
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		app := &App{CallStore: &CallStoreConfig{URL: "http://127.0.0.1:1"}, Redis: &RedisConfig{URL: srv.URL(), Password: "{env.POSTBACK_TEST_REDIS_PASSWORD}"}}
		if err := app.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		return app
	}
	old := provision()
	reloaded := provision()
	if old.redisKey != reloaded.redisKey {
		t.Fatal("one configuration got two pool keys")
	}
	if refs, _ := redisPool.References(old.redisKey); refs != 2 {
		t.Fatalf("%d references to the client, want 2", refs)
	}
	v, _, _ := redisPool.LoadOrNew(old.redisKey, nil)
	client := v.(pooledRedis).client
	redisPool.Delete(old.redisKey) // the LoadOrNew above took a reference too

	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("the client closed while the reloaded config uses it: %v", err)
	}
	if err := reloaded.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(context.Background()).Err(); err != redis.ErrClosed {
		t.Fatalf("after the last cleanup, ping = %v, want the client closed", err)
	}
}

// Each distinct configuration gets its own client.
func TestRedisPoolKeyTellsConfigsApart(t *testing.T) {
	repl := caddy.NewReplacer()
	key := func(c RedisConfig) string {
		opts, err := c.options(repl)
		if err != nil {
			t.Fatal(err)
		}
		k, err := redisPoolKey(opts)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := RedisConfig{URL: "redis://127.0.0.1:6379/0"}
	seen := map[string]string{key(base): "base"}
	for name, c := range map[string]RedisConfig{
		"db":       {URL: "redis://127.0.0.1:6379/1"},
		"password": {URL: "redis://127.0.0.1:6379/0", Password: "x"},
		"tls":      {URL: "redis://127.0.0.1:6379/0", TLS: true},
		"cluster":  {Cluster: []string{"127.0.0.1:7000", "127.0.0.1:7001"}},
		"sentinel": {SentinelMaster: "mymaster", Sentinels: []string{"127.0.0.1:26379"}},
	} {
		k := key(c)
		if other, dup := seen[k]; dup {
			t.Errorf("%s and %s share a pool key", name, other)
		}
		seen[k] = name
	}
	if _, err := (&RedisConfig{URL: "redis://x", Cluster: []string{"a:1"}}).options(repl); err == nil {
		t.Error("a URL and cluster addresses together were accepted")
	}
}
