// Package caddymodule is the Caddy glue of caddy-postback: the postback
// app (global option), the postback handler and its Caddyfile directive,
// and the admin API. The logic lives in package postback; the reference
// call store is package refcallstore, not registered here.
package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/ratelimit"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/postback"
)

func init() {
	caddy.RegisterModule(new(App))
}

// App is the postback app: the call-store client, the queue of updates
// for calls in progress, and the drainer that applies them (docs/operations.md#call-store-api, operations#the-queue).
// It is configured by the global `postback` option; every postback handler
// of the config shares it.
type App struct {
	// CallStore is the platform's call-store API. Required.
	CallStore *CallStoreConfig `json:"call_store,omitempty"`

	// Redis holds the queue in Redis, shared by every instance that
	// points at it. Without it, an in-memory queue serves one instance and
	// what it holds is lost on restart.
	Redis *RedisConfig `json:"redis,omitempty"`

	// DrainInterval is the first wait before a queued call is checked
	// again; the wait doubles up to 5 minutes. Default: 5s.
	DrainInterval caddy.Duration `json:"drain_interval,omitempty"`

	// MaxAge moves an update still waiting after it to the dead letters.
	// Default: 72h.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// LeaseTTL is how long one instance may drain a call before another
	// may take over, should it stop renewing; it is renewed every third of
	// it while a request is in flight. At least 3 × call_store deadline,
	// so that no request outlives its lease; default: the larger of 30s
	// and 3 × deadline (docs/operations.md#the-queue-in-production).
	LeaseTTL caddy.Duration `json:"lease_ttl,omitempty"`

	// MaxPendingPerCall bounds the updates waiting for one call; one more
	// is refused for that call with too_many_pending, nothing stored.
	// Default: 1000.
	MaxPendingPerCall int `json:"max_pending_per_call,omitempty"`

	// DeadMaxAge is how long a dead letter is kept for inspection and
	// requeue before it is dropped. Default: 720h (30 days).
	DeadMaxAge caddy.Duration `json:"dead_max_age,omitempty"`

	// DeadMaxPerCall is the most dead letters kept per call; beyond it the
	// oldest are dropped, and counted. Default: 1000.
	DeadMaxPerCall int `json:"dead_max_per_call,omitempty"`

	store    *postback.CallStore
	queue    queue.Queue
	queueKey string
	redisKey string
	drainer  *postback.Drainer
	upstream *postback.ConcurrencyLimit
	limiter  ratelimit.Limiter
	// redis, redisBatch and redisPrefix, when Redis is configured, also hold the
	// handlers' idempotency keys.
	redis       redis.UniversalClient
	redisBatch  *redisbatch.Batcher
	redisPrefix string
	logger      *zap.Logger
	// events carries the postback_dead_letter event (deadletters.go).
	events *caddyevents.App
	ctx    caddy.Context

	cancel context.CancelFunc
	done   sync.WaitGroup

	orderingWarn throttledWarning
	statsWarn    throttledWarning
}

// CallStoreConfig configures the client of the call-store API.
type CallStoreConfig struct {
	// URL is the call store's base URL, e.g. http://127.0.0.1:9090.
	// Placeholders such as {env.CALL_STORE_URL} are replaced at load.
	URL string `json:"url,omitempty"`

	// Timeout bounds each attempt of a call-store request. Default: 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	// Deadline bounds the whole fan-out of one postback, retries included.
	// Default: 10s.
	Deadline caddy.Duration `json:"deadline,omitempty"`

	// MaxConcurrency bounds the concurrent call-store requests of one
	// postback, and the calls whose waiting updates the drain sends at
	// once (each call's in order, one at a time). Default: 16.
	MaxConcurrency int `json:"max_concurrency,omitempty"`

	// MaxUpstream bounds the call-store requests in flight across all
	// postbacks of this instance, so one partner's batches cannot starve
	// the others. Default: 256.
	MaxUpstream int `json:"max_upstream,omitempty"`

	// Headers are added to every call-store request, e.g. an
	// Authorization header. Values may hold placeholders.
	Headers http.Header `json:"headers,omitempty"`

	// TransportRaw is how requests reach the call store: reverse_proxy's
	// HTTP transport, {"protocol": "http", ...}, with every option it has
	// (TLS with a private CA or a client certificate, network_proxy,
	// versions, dial_timeout, keep_alive, resolver, ...). An https URL
	// turns TLS on by itself. Default: the http transport with its
	// defaults, keeping max_upstream idle connections.
	TransportRaw json.RawMessage `json:"transport,omitempty" caddy:"namespace=http.reverse_proxy.transport inline_key=protocol"`
}

// Defaults of the app.
const (
	DefaultTimeout        = 5 * time.Second
	DefaultDeadline       = 10 * time.Second
	DefaultMaxConcurrency = 16
	DefaultMaxUpstream    = 256
	// DefaultMaxPendingPerCall bounds the updates one call may hold.
	DefaultMaxPendingPerCall = 1000
)

// leaseFactor is how many call-store deadlines a lease must last at
// least: a send starts with two thirds of the lease left and takes at
// most one deadline, so it ends under the lease even if no renewal gets
// through (docs/operations.md#the-queue-in-production).
const leaseFactor = 3

// leaseTooShort is the load error of a lease_ttl below leaseFactor
// deadlines, naming both values.
func leaseTooShort(lease, deadline time.Duration) error {
	return fmt.Errorf("lease_ttl %s is below 3 × call_store deadline %s (%s): a request could outlive its lease and another instance send the next update of the same call; raise lease_ttl to at least %s or lower deadline", lease, deadline, leaseFactor*deadline, leaseFactor*deadline)
}

// CaddyModule returns the Caddy module information.
func (*App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "postback",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision fills defaults, resolves placeholders and sets up the client
// and the queue.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if a.CallStore == nil || a.CallStore.URL == "" {
		return errors.New("postback: call_store is required: add `call_store <url>` to the global postback option")
	}
	cs := a.CallStore
	if cs.Timeout <= 0 {
		cs.Timeout = caddy.Duration(DefaultTimeout)
	}
	if cs.Deadline <= 0 {
		cs.Deadline = caddy.Duration(DefaultDeadline)
	}
	if cs.MaxConcurrency <= 0 {
		cs.MaxConcurrency = DefaultMaxConcurrency
	}
	if cs.MaxUpstream <= 0 {
		cs.MaxUpstream = DefaultMaxUpstream
	}
	if a.DrainInterval <= 0 {
		a.DrainInterval = caddy.Duration(postback.DefaultDrainInterval)
	}
	if a.MaxAge <= 0 {
		a.MaxAge = caddy.Duration(postback.DefaultMaxAge)
	}
	if a.LeaseTTL <= 0 {
		a.LeaseTTL = max(caddy.Duration(postback.DefaultLeaseTTL), leaseFactor*cs.Deadline)
	}
	if a.MaxPendingPerCall <= 0 {
		a.MaxPendingPerCall = DefaultMaxPendingPerCall
	}
	if a.DeadMaxAge <= 0 {
		a.DeadMaxAge = caddy.Duration(postback.DefaultDeadMaxAge)
	}
	if a.DeadMaxPerCall <= 0 {
		a.DeadMaxPerCall = postback.DefaultDeadMaxPerCall
	}
	if err := a.Validate(); err != nil {
		return err
	}

	repl := caddy.NewReplacer()
	header := make(http.Header, len(cs.Headers))
	for k, vs := range cs.Headers {
		for _, v := range vs {
			header.Add(k, repl.ReplaceAll(v, ""))
		}
	}
	storeURL := repl.ReplaceAll(cs.URL, "")
	base, err := url.Parse(storeURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("postback: call_store URL must be an absolute http or https URL, got %q", storeURL)
	}
	transport, err := cs.loadTransport(ctx, base, cs.MaxUpstream)
	if err != nil {
		return fmt.Errorf("postback: %w", err)
	}
	store, err := postback.NewCallStore(postback.CallStoreConfig{
		URL:            storeURL,
		Timeout:        time.Duration(cs.Timeout),
		MaxConcurrency: cs.MaxConcurrency,
		MaxIdle:        cs.MaxUpstream,
		Header:         header,
		Transport:      transport,
		Logger:         a.logger.Named("call_store"),
		Observe:        observeCallStore,
	})
	if err != nil {
		return fmt.Errorf("postback: call_store: %w", err)
	}
	a.store = store
	a.upstream = postback.NewConcurrencyLimit(cs.MaxUpstream)

	// Before the queue: its Redis client's sending goroutine reads them.
	if err := registerRedisMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}
	if err := a.provisionQueue(repl); err != nil {
		return err
	}
	a.drainer = &postback.Drainer{
		Queue:    a.queue,
		Store:    a.store,
		Interval: time.Duration(a.DrainInterval),
		MaxAge:   time.Duration(a.MaxAge),
		LeaseTTL: time.Duration(a.LeaseTTL),
		Timeout:  time.Duration(cs.Deadline),
		// The drain is one more fan-out over calls, bounded as a postback's.
		Workers: cs.MaxConcurrency,
		Logger:  a.logger.Named("drain"),
	}
	if err := registerQueueSignals(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}
	return a.provisionDeadLetters(ctx)
}

// Validate rejects settings that cannot work.
func (a *App) Validate() error {
	cs := a.CallStore
	switch {
	case cs.Timeout > cs.Deadline:
		return fmt.Errorf("postback: call_store timeout (%s) must not exceed deadline (%s)", time.Duration(cs.Timeout), time.Duration(cs.Deadline))
	case cs.MaxConcurrency > 1024:
		return fmt.Errorf("postback: call_store max_concurrency %d is above 1024", cs.MaxConcurrency)
	case a.LeaseTTL < caddy.Duration(time.Second):
		return fmt.Errorf("postback: lease_ttl %s is below 1s", time.Duration(a.LeaseTTL))
	case a.LeaseTTL < leaseFactor*cs.Deadline:
		return fmt.Errorf("postback: %w", leaseTooShort(time.Duration(a.LeaseTTL), time.Duration(cs.Deadline)))
	case a.MaxPendingPerCall < 0:
		return fmt.Errorf("postback: max_pending_per_call %d is negative", a.MaxPendingPerCall)
	}
	return nil
}

// Start runs the drainer and says which queue is in use.
func (a *App) Start() error {
	if a.Redis == nil {
		a.logger.Warn("no redis configured: updates for calls in progress are held in memory and lost on restart; configure `redis` in the global postback option for production")
	}
	queueSignals.gauges.app.Store(a)
	// Stopping tells the drainer to take no new work; its call-store
	// requests in flight finish (operations#the-queue-in-production).
	ctx, cancel := context.WithCancel(callStoreContext(context.Background()))
	a.cancel = cancel
	a.done.Add(1)
	go func() {
		defer a.done.Done()
		a.drainer.Run(ctx)
	}()
	return nil
}

// Stop ends the drainer; the leases it held are released as it returns.
func (a *App) Stop() error {
	// On a reload the new app has started already: leave it in place.
	queueSignals.gauges.app.CompareAndSwap(a, nil)
	if a.cancel != nil {
		a.cancel()
		a.done.Wait()
	}
	return nil
}

// Cleanup releases the shared queue; the config's context cleans up the
// transport and its connections.
func (a *App) Cleanup() error {
	var errs []error
	if a.queueKey != "" {
		_, err := queuePool.Delete(a.queueKey)
		errs = append(errs, err)
	}
	if a.redisKey != "" {
		_, err := redisPool.Delete(a.redisKey)
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// edge builds the request path of one handler over the app's parts.
func (a *App) edge() *postback.Edge {
	return &postback.Edge{
		Store:           a.store,
		Queue:           a.queue,
		MaxConcurrency:  a.CallStore.MaxConcurrency,
		Deadline:        time.Duration(a.CallStore.Deadline),
		DrainInterval:   time.Duration(a.DrainInterval),
		UpstreamLimit:   a.upstream,
		MaxPending:      a.MaxPendingPerCall,
		OrderingSkipped: a.orderingSkipped,
		QueueTimeout:    a.queueTimeout(),
	}
}

// queueTimeout is the Redis client's command timeout; 0 for the memory
// queue, which answers at once.
func (a *App) queueTimeout() time.Duration {
	if a.Redis == nil {
		return 0
	}
	if a.Redis.Timeout > 0 {
		return time.Duration(a.Redis.Timeout)
	}
	return defaultRedisTimeout
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.Validator    = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
