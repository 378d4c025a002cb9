package idempotency

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redisbatch"
)

// Redis keeps the keys in Redis, shared by every instance that points at
// it. Each idempotency key has two Redis keys under one hash tag, so Redis
// Cluster keeps them on one node: the record, a hash expiring with the
// window, and the hold, a string expiring on its own.
//
// Its scripts go through a redisbatch.Batcher, in the pipelines that carry
// the ordering checks and keys of concurrent postbacks.
type Redis struct {
	prefix string
	batch  *redisbatch.Batcher
}

// NewRedis returns a store whose keys start with prefix, run through b,
// which stays the caller's to close.
func NewRedis(b *redisbatch.Batcher, prefix string) *Redis {
	return &Redis{prefix: prefix, batch: b}
}

// tagEscaper keeps braces out of a hash tag, and the escape character
// unambiguous, so that the tag is the whole of webhook and key.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

func (r *Redis) keys(k Key) []string {
	base := r.prefix + "idem:{" + tagEscaper.Replace(k.Webhook) + ":" + tagEscaper.Replace(k.Key) + "}"
	return []string{base, base + ":hold"}
}

// claimScript answers from a final record, refuses another fingerprint or
// another holder, and otherwise holds the key, in one round trip.
//
// KEYS: record, hold. ARGV: fingerprint, token, hold in milliseconds.
// Returns {state, outcome}.
var claimScript = redis.NewScript(`
local fp = redis.call('HGET', KEYS[1], 'fp')
if fp and fp ~= ARGV[1] then
	return {'reused', ''}
end
if fp and redis.call('HGET', KEYS[1], 'final') == '1' then
	return {'done', redis.call('HGET', KEYS[1], 'out')}
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[2] then
	return {'in_use', ''}
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
if fp then
	return {'retry', redis.call('HGET', KEYS[1], 'out')}
end
return {'new', ''}
`)

// saveScript stores the record, keeping the expiry of one saved before,
// and deletes the hold if token still has it.
//
// KEYS: record, hold. ARGV: fingerprint, outcome, final ("1" or "0"),
// window in milliseconds, token.
var saveScript = redis.NewScript(`
local fresh = redis.call('EXISTS', KEYS[1]) == 0
redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'out', ARGV[2], 'final', ARGV[3])
if fresh then
	redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[5] then
	redis.call('DEL', KEYS[2])
end
return 1
`)

// releaseScript deletes the hold only if token has it.
//
// KEYS: hold. ARGV: token.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// Claim implements Store.
func (r *Redis) Claim(ctx context.Context, k Key, fingerprint, token string, hold time.Duration) (Claim, error) {
	answer, err := r.batch.Run(ctx, claimScript, r.keys(k), fingerprint, token, max(hold.Milliseconds(), 1))
	v, ok := answer.([]any)
	if err == nil && !ok {
		err = fmt.Errorf("claim answered %T", answer)
	}
	if err != nil {
		return Claim{}, fmt.Errorf("idempotency: %w", err)
	}
	if len(v) != 2 {
		return Claim{}, fmt.Errorf("idempotency: claim answered %v", v)
	}
	state, _ := v[0].(string)
	out, _ := v[1].(string)
	switch state {
	case "new":
		return Claim{State: New}, nil
	case "retry":
		return Claim{State: Retry, Outcome: []byte(out)}, nil
	case "done":
		return Claim{State: Done, Outcome: []byte(out)}, nil
	case "reused":
		return Claim{State: Reused}, nil
	case "in_use":
		return Claim{State: InUse}, nil
	}
	return Claim{}, fmt.Errorf("idempotency: claim answered %q", state)
}

// Save implements Store.
func (r *Redis) Save(ctx context.Context, k Key, token string, rec Record, window time.Duration) error {
	final := "0"
	if rec.Final {
		final = "1"
	}
	if _, err := r.batch.Run(ctx, saveScript, r.keys(k), rec.Fingerprint, rec.Outcome, final, max(window.Milliseconds(), 1), token); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, k Key, token string) error {
	if _, err := r.batch.Run(ctx, releaseScript, r.keys(k)[1:], token); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

var _ Store = (*Redis)(nil)
