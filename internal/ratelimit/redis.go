package ratelimit

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis keeps the buckets in Redis, on the Redis server's clock, so every
// instance sharing it draws from one bucket per key.
type Redis struct {
	client redis.UniversalClient
	prefix string
}

// NewRedis returns a limiter whose keys start with prefix.
func NewRedis(client redis.UniversalClient, prefix string) *Redis {
	return &Redis{client: client, prefix: prefix}
}

// gcraScript is gcra on the server: KEYS[1] holds the theoretical arrival
// time in microseconds. ARGV: interval and burst×interval in microseconds.
// Returns 0 when allowed, else the wait in microseconds.
var gcraScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next = tat + interval
local allow_at = next - window
if now < allow_at then
	return allow_at - now
end
redis.call('SET', KEYS[1], next, 'PX', math.ceil((next - now) / 1000) + 1)
return 0
`)

// Allow implements Limiter.
func (l *Redis) Allow(ctx context.Context, key string, r Rate) (bool, time.Duration, error) {
	interval := r.interval().Microseconds()
	window := int64(max(r.Burst, 1)) * interval
	wait, err := gcraScript.Run(ctx, l.client, []string{l.prefix + "ratelimit:{" + key + "}"}, interval, window).Int64()
	if err != nil {
		return true, 0, fmt.Errorf("ratelimit: %w", err)
	}
	if wait > 0 {
		return false, time.Duration(wait) * time.Microsecond, nil
	}
	return true, 0, nil
}

var _ Limiter = (*Redis)(nil)
