package caddymodule

import (
	"github.com/caddyserver/caddy/v2"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/ratelimit"
)

// queuePool keeps a queue alive across config reloads: the old and the new
// config hold it at once, and it goes when the last one is cleaned up.
var queuePool = caddy.NewUsagePool()

// memoryQueueKey names the one in-memory queue of this process.
const memoryQueueKey = "memory"

type pooledQueue struct {
	queue.Queue
	// limiter keeps the rate-limit buckets of this process, which also
	// outlive a reload.
	limiter ratelimit.Limiter
	close   func() error
}

func (p pooledQueue) Destruct() error {
	if p.close != nil {
		return p.close()
	}
	return nil
}

// provisionQueue takes the app's queue from the pool: Redis when
// configured, else the in-memory queue (docs/operations.md#the-memory-queue).
func (a *App) provisionQueue(repl *caddy.Replacer) error {
	if a.Redis != nil {
		return a.provisionRedis(repl)
	}
	v, _, err := queuePool.LoadOrNew(memoryQueueKey, func() (caddy.Destructor, error) {
		return pooledQueue{Queue: queue.NewMemory(), limiter: ratelimit.NewMemory()}, nil
	})
	if err != nil {
		return err
	}
	pooled := v.(pooledQueue)
	a.queue, a.limiter, a.queueKey = pooled.Queue, pooled.limiter, memoryQueueKey
	return nil
}

// queueBackend names the queue in use, for the admin API.
func (a *App) queueBackend() string {
	if a.Redis != nil {
		return "redis"
	}
	return "memory"
}
