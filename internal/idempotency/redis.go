package idempotency

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redisbatch"
)

// Redis keeps the keys in Redis, shared by every instance that points at
// it. Each idempotency key is one Redis string under its own hash tag,
// whose value says what the key is at:
//
//	h<token>                          held by token, nothing saved; expires with the hold
//	s<final><n>:<fingerprint><outcome> saved (final "1" or "0", n the fingerprint's length);
//	                                  expires with the window, counted from the first save
//	H<ms>:<n>:<token><saved>          saved, and held by token (n its length) until the
//	                                  Redis time ms, for a retry
//
// so that the common case, a key never seen, is held by a plain SET NX and
// saved by a script of one GET and one SET: about half the Redis CPU of a
// record and a hold kept apart. Keys an earlier version stored (a hash,
// and a hold in <key>:hold) are still read, held and saved in their own
// layout.
//
// Commands go through a redisbatch.Batcher, in the pipelines that carry
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

// keys are the key of k and the hold an earlier version kept beside it,
// which the scripts must name for Redis Cluster; one string, two views.
func (r *Redis) keys(k Key) []string {
	hold := r.prefix + "idem:{" + tagEscaper.Replace(k.Webhook) + ":" + tagEscaper.Replace(k.Key) + "}:hold"
	return []string{hold[:len(hold)-len(":hold")], hold}
}

// A script's reading of a value (see Redis): the held record's parts.
// Shared by the scripts below; Lua names, not Go's.
const parseHeld = `
local function now_ms()
	local t = redis.call('TIME')
	return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- held(v): for an H value, its holder (nil once its time has passed) and
-- its saved record; for an s value, nil and the value.
local function held(v)
	if string.sub(v, 1, 1) ~= 'H' then
		return nil, v
	end
	local p = string.find(v, ':', 2, true)
	local q = string.find(v, ':', p + 1, true)
	local n = tonumber(string.sub(v, p + 1, q - 1))
	local holder = string.sub(v, q + 1, q + n)
	if tonumber(string.sub(v, 2, p - 1)) <= now_ms() then
		holder = nil
	end
	return holder, string.sub(v, q + n + 1)
end
-- record(s): a saved record's final flag, fingerprint and outcome.
local function record(s)
	local p = string.find(s, ':', 3, true)
	local n = tonumber(string.sub(s, 3, p - 1))
	return string.sub(s, 2, 2), string.sub(s, p + 1, p + n), string.sub(s, p + n + 1)
end
local function hold(token, until_ms, saved)
	return 'H' .. until_ms .. ':' .. #token .. ':' .. token .. saved
end
`

// claimScript answers a Claim the SET NX of Claim could not: a key
// already held or saved, or stored by an earlier version.
//
// KEYS: key, earlier version's hold. ARGV: fingerprint, token, hold in
// milliseconds. Returns {state, outcome}.
var claimScript = redis.NewScript(parseHeld + `
if redis.call('TYPE', KEYS[1])['ok'] == 'hash' then
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
end
local v = redis.call('GET', KEYS[1])
if not v or v == 'h' .. ARGV[2] then
	redis.call('SET', KEYS[1], 'h' .. ARGV[2], 'PX', ARGV[3])
	return {'new', ''}
end
if string.sub(v, 1, 1) == 'h' then
	return {'in_use', ''}
end
local holder, saved = held(v)
local final, fp, out = record(saved)
if fp ~= ARGV[1] then
	return {'reused', ''}
end
if final == '1' then
	return {'done', out}
end
if holder and holder ~= ARGV[2] then
	return {'in_use', ''}
end
redis.call('SET', KEYS[1], hold(ARGV[2], now_ms() + tonumber(ARGV[3]), saved), 'KEEPTTL')
return {'retry', out}
`)

// saveScript stores a record: over the token's own first hold, with the
// window; over a record saved before, keeping its expiry; beside another
// request's hold, keeping that hold.
//
// KEYS: key, earlier version's hold. ARGV: token, the saved value, window
// in milliseconds.
var saveScript = redis.NewScript(parseHeld + `
local v = redis.pcall('GET', KEYS[1])
if v == 'h' .. ARGV[1] or not v then
	return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
if type(v) == 'table' then
	local final, fp, out = record(ARGV[2])
	redis.call('HSET', KEYS[1], 'fp', fp, 'out', out, 'final', final)
	if redis.call('GET', KEYS[2]) == ARGV[1] then
		redis.call('DEL', KEYS[2])
	end
	return 1
end
if string.sub(v, 1, 1) == 'h' then
	local ttl = redis.call('PTTL', KEYS[1])
	return redis.call('SET', KEYS[1], hold(string.sub(v, 2), now_ms() + ttl, ARGV[2]), 'PX', ARGV[3])
end
local holder = held(v)
if holder and holder ~= ARGV[1] then
	local p = string.find(v, ':', 2, true)
	return redis.call('SET', KEYS[1], hold(holder, string.sub(v, 2, p - 1), ARGV[2]), 'KEEPTTL')
end
return redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
`)

// releaseScript lets go of token's hold, keeping a saved record.
//
// KEYS: key, earlier version's hold. ARGV: token.
var releaseScript = redis.NewScript(parseHeld + `
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' or not v then
	if redis.call('GET', KEYS[2]) == ARGV[1] then
		return redis.call('DEL', KEYS[2])
	end
	return 0
end
if v == 'h' .. ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
local holder, saved = held(v)
if holder == ARGV[1] then
	redis.call('SET', KEYS[1], saved, 'KEEPTTL')
	return 1
end
return 0
`)

// Claim implements Store. A key never seen is held by one SET NX; any
// other goes to claimScript.
func (r *Redis) Claim(ctx context.Context, k Key, fingerprint, token string, hold time.Duration) (Claim, error) {
	keys := r.keys(k)
	ms := max(hold.Milliseconds(), 1)
	_, err := r.batch.Do(ctx, "set", keys[0], "h"+token, "nx", "px", ms)
	if err == nil {
		return Claim{State: New}, nil
	}
	if !errors.Is(err, redis.Nil) {
		return Claim{}, fmt.Errorf("idempotency: %w", err)
	}
	answer, err := r.batch.Run(ctx, claimScript, keys, fingerprint, token, ms)
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
	if _, err := r.batch.Run(ctx, saveScript, r.keys(k), token, savedValue(rec), max(window.Milliseconds(), 1)); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

// savedValue is rec as a saved value: s, the final flag, the
// fingerprint's length, a colon, the fingerprint, the outcome.
func savedValue(rec Record) []byte {
	n := strconv.Itoa(len(rec.Fingerprint))
	b := make([]byte, 0, 3+len(n)+len(rec.Fingerprint)+len(rec.Outcome))
	b = append(b, 's', '0')
	if rec.Final {
		b[1] = '1'
	}
	b = append(append(b, n...), ':')
	return append(append(b, rec.Fingerprint...), rec.Outcome...)
}

// Release implements Store.
func (r *Redis) Release(ctx context.Context, k Key, token string) error {
	if _, err := r.batch.Run(ctx, releaseScript, r.keys(k), token); err != nil {
		return fmt.Errorf("idempotency: %w", err)
	}
	return nil
}

var _ Store = (*Redis)(nil)
