package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
)

// Redis keeps the buckets in Redis with github.com/go-redis/redis_rate
// (GCRA on the Redis server's clock), so every instance sharing it draws
// from one bucket per key.
type Redis struct {
	limiter *redis_rate.Limiter
	prefix  string
}

// NewRedis returns a limiter whose keys start with prefix (redis_rate
// puts its own "rate:" in front).
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{limiter: redis_rate.NewLimiter(client), prefix: prefix}
}

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, r Rate) (bool, time.Duration, error) {
	// The key in braces is a hash tag: one slot per bucket on a cluster.
	res, err := l.limiter.Allow(ctx, l.prefix+"ratelimit:{"+key+"}", redis_rate.Limit{Rate: r.Events, Period: r.Per, Burst: max(r.Burst, 1)})
	if err != nil {
		return true, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if res.Allowed == 0 {
		return false, max(res.RetryAfter, time.Microsecond), nil
	}
	return true, 0, nil
}

var _ Limiter = (*Redis)(nil)
