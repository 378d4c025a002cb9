package caddymodule

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/ratelimit"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redisqueue"
)

// RedisConfig puts the queue in Redis, shared by every Caddy instance that
// points at it (docs/operations.md#several-instances): a single node, Sentinel or Cluster. Values may
// hold placeholders such as {env.REDIS_PASSWORD}.
type RedisConfig struct {
	// URL of a single node: redis://[user:password@]host:port/db, or
	// rediss:// for TLS.
	URL string `json:"url,omitempty"`

	// Cluster lists seed addresses (host:port) of a Redis Cluster.
	Cluster []string `json:"cluster,omitempty"`

	// SentinelMaster is the master name of a Sentinel setup, and Sentinels
	// the sentinels' addresses.
	SentinelMaster string   `json:"sentinel_master,omitempty"`
	Sentinels      []string `json:"sentinels,omitempty"`

	// Username and Password authenticate to Redis (also to the sentinels,
	// unless SentinelPassword is set). They override the URL's.
	Username         string `json:"username,omitempty"`
	Password         string `json:"password,omitempty"`
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"`

	// DB is the database of a single node or Sentinel setup.
	DB int `json:"db,omitempty"`

	// TLS connects with TLS; TLSServerName overrides the name checked.
	TLS           bool   `json:"tls,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`

	// Prefix starts every key, so several deployments can share a Redis.
	// Default: "postback:".
	Prefix string `json:"prefix,omitempty"`

	// Timeout bounds each Redis command. Default: 1s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// defaultRedisTimeout bounds each Redis command when timeout is not set.
const defaultRedisTimeout = time.Second

// redisPool keeps one client per distinct Redis configuration across
// config reloads, closed when the last config using it is cleaned up.
var redisPool = caddy.NewUsagePool()

// pooledRedis is a client and the batcher that shares its pipelines among
// concurrent postbacks, so a reload keeps both.
type pooledRedis struct {
	client redis.UniversalClient
	batch  *redisbatch.Batcher
}

func (p pooledRedis) Destruct() error {
	p.batch.Close()
	return p.client.Close()
}

// options resolves placeholders and builds the client options.
func (c *RedisConfig) options(repl *caddy.Replacer) (*redis.UniversalOptions, error) {
	r := func(s string) string { return repl.ReplaceAll(s, "") }
	opts := &redis.UniversalOptions{DB: c.DB}
	modes := 0
	if c.URL != "" {
		modes++
		u, err := redis.ParseURL(r(c.URL))
		if err != nil {
			return nil, fmt.Errorf("redis url: %w", err)
		}
		opts.Addrs = []string{u.Addr}
		opts.Username, opts.Password, opts.DB, opts.TLSConfig = u.Username, u.Password, u.DB, u.TLSConfig
	}
	if len(c.Cluster) > 0 {
		modes++
		opts.IsClusterMode = true
		for _, a := range c.Cluster {
			opts.Addrs = append(opts.Addrs, r(a))
		}
	}
	if c.SentinelMaster != "" {
		modes++
		if len(c.Sentinels) == 0 {
			return nil, errors.New("redis sentinel: needs the sentinels' addresses")
		}
		opts.MasterName = r(c.SentinelMaster)
		for _, a := range c.Sentinels {
			opts.Addrs = append(opts.Addrs, r(a))
		}
		opts.SentinelUsername, opts.SentinelPassword = r(c.SentinelUsername), r(c.SentinelPassword)
	}
	if modes != 1 {
		return nil, errors.New("redis: give exactly one of a URL, cluster addresses, or a sentinel master with its sentinels")
	}
	if c.Username != "" {
		opts.Username = r(c.Username)
	}
	if c.Password != "" {
		opts.Password = r(c.Password)
	}
	if c.TLS || c.TLSServerName != "" {
		if opts.TLSConfig == nil {
			opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		opts.TLSConfig.ServerName = r(c.TLSServerName)
	}
	timeout := time.Duration(c.Timeout)
	if timeout <= 0 {
		timeout = defaultRedisTimeout
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = timeout, timeout, timeout
	// Commands are bounded by Timeout, never by a retry loop of their own:
	// a down Redis must fail fast so that a live call gets its 503 and a
	// completed one its update. A dial is tried once, not 5 times 100 ms
	// apart, which ate the deadline of every postback while Redis was down.
	// Nothing is sent twice by the client: a command that timed out may
	// still run when Redis resumes, and its copy would add a queue count or
	// a rate-limit hit twice; the edge settles an append without answer
	// itself (docs/operations.md#when-redis-is-down).
	opts.MaxRetries = -1
	opts.DialerRetries = 1
	opts.ContextTimeoutEnabled = true
	return opts, nil
}

// provisionRedis takes the shared client of this configuration from the
// pool and builds the queue on it.
func (a *App) provisionRedis(repl *caddy.Replacer) error {
	opts, err := a.Redis.options(repl)
	if err != nil {
		return fmt.Errorf("postback: %w", err)
	}
	key, err := redisPoolKey(opts)
	if err != nil {
		return err
	}
	v, loaded, err := redisPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		client := redis.NewUniversalClient(opts)
		return pooledRedis{client: client, batch: redisbatch.New(client, redisbatch.WithObserver(observePipeline))}, nil
	})
	if err != nil {
		return err
	}
	a.redisKey = key
	pooled := v.(pooledRedis)
	client := pooled.client
	prefix := a.Redis.Prefix
	if prefix == "" {
		prefix = "postback:"
	}
	q := redisqueue.New(client, prefix, redisqueue.WithBatcher(pooled.batch))
	a.queue = q
	a.limiter = ratelimit.NewRedis(client, prefix)
	a.redis, a.redisBatch, a.redisPrefix = client, pooled.batch, prefix
	// Say so at once if Redis cannot be reached, but start all the same:
	// completed calls are served without it.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		a.logger.Warn("redis unreachable at start; live calls get 503 queue_unavailable until it is back", zap.Error(err))
		return nil
	}
	if !loaded {
		a.logger.Info("redis queue ready", zap.Strings("addresses", opts.Addrs), zap.String("prefix", prefix))
	}
	// A Redis never counted is counted now, before this instance writes,
	// rather than by a first scrape in the middle of the traffic.
	if err := q.EnsureCounted(ctx); err != nil {
		a.logger.Warn("could not count the queue at start; the first admin count or scrape will", zap.Error(err))
	}
	return nil
}

// redisPoolKey is a digest of the resolved options, so that the password
// is never a map key that a debugger or dump would show.
func redisPoolKey(opts *redis.UniversalOptions) (string, error) {
	b, err := json.Marshal(struct {
		Addrs                                        []string
		Master, User, Pass, SentinelUser, SentinelPW string
		DB                                           int
		TLS                                          bool
		TLSName                                      string
		Timeout                                      time.Duration
		Cluster                                      bool
	}{opts.Addrs, opts.MasterName, opts.Username, opts.Password, opts.SentinelUsername, opts.SentinelPassword,
		opts.DB, opts.TLSConfig != nil, serverName(opts.TLSConfig), opts.ReadTimeout, opts.IsClusterMode})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "redis:" + hex.EncodeToString(sum[:]), nil
}

func serverName(c *tls.Config) string {
	if c == nil {
		return ""
	}
	return c.ServerName
}

// unmarshalRedis reads:
//
//	redis [<url>] {
//		cluster   <addr>...
//		sentinel  <master> <addr>...
//		username  <user>
//		password  <password>
//		sentinel_username <user>
//		sentinel_password <password>
//		db        <n>
//		tls       [<server name>]
//		prefix    <prefix>
//		timeout   <duration>
//	}
func (a *App) unmarshalRedis(d *caddyfile.Dispenser) error {
	if a.Redis != nil {
		return d.Err("redis is given twice")
	}
	rc := new(RedisConfig)
	if d.NextArg() {
		rc.URL = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "cluster":
			rc.Cluster = d.RemainingArgs()
			if len(rc.Cluster) == 0 {
				return d.Err("cluster needs the addresses of one or more nodes")
			}
		case "sentinel":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Err("sentinel needs the master name and the sentinels' addresses")
			}
			rc.SentinelMaster, rc.Sentinels = args[0], args[1:]
		case "username":
			err = parseString(d, &rc.Username)
		case "password":
			err = parseString(d, &rc.Password)
		case "sentinel_username":
			err = parseString(d, &rc.SentinelUsername)
		case "sentinel_password":
			err = parseString(d, &rc.SentinelPassword)
		case "db":
			var s string
			if err = parseString(d, &s); err == nil {
				if rc.DB, err = strconv.Atoi(s); err != nil || rc.DB < 0 {
					return d.Errf("db %q must be a database number", s)
				}
			}
		case "tls":
			rc.TLS = true
			if d.NextArg() {
				rc.TLSServerName = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "prefix":
			err = parseString(d, &rc.Prefix)
		case "timeout":
			err = parseDuration(d, &rc.Timeout)
		default:
			return d.Errf("unknown redis option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	modes := 0
	for _, set := range []bool{rc.URL != "", len(rc.Cluster) > 0, rc.SentinelMaster != ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return d.Err("redis needs exactly one of a URL, cluster addresses, or sentinel with its master name and addresses")
	}
	a.Redis = rc
	return nil
}
