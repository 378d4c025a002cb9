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
// saved by two plain commands (see Save): far less Redis CPU than a
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

// saveOver is what saving a record makes of a value v that is not the
// token's own first hold, ttl being v's milliseconds left: beside
// another request's first hold, that hold (with ttl) and the record
// (with the window); over a record saved before, or a retry's hold, the
// record, keeping v's expiry and another's hold. ARGV: token, the saved
// value, window in milliseconds.
const saveOver = `
local function expiry(ttl)
	if ttl > 0 then
		return 'PX', ttl
	end
	return 'KEEPTTL', nil
end
local function save_over(v, ttl)
	if string.sub(v, 1, 1) == 'h' then
		return redis.call('SET', KEYS[1], hold(string.sub(v, 2), now_ms() + math.max(ttl, 0), ARGV[2]), 'PX', ARGV[3])
	end
	local value = ARGV[2]
	local holder = held(v)
	if holder and holder ~= ARGV[1] then
		local p = string.find(v, ':', 2, true)
		value = hold(holder, string.sub(v, 2, p - 1), ARGV[2])
	end
	local option, ms = expiry(ttl)
	if ms then
		return redis.call('SET', KEYS[1], value, option, ms)
	end
	return redis.call('SET', KEYS[1], value, option)
end
`

// saveScript stores a record whatever the key holds: over the token's
// own first hold or nothing, with the window; over any other value as
// saveOver says; over an earlier version's hash, in the hash.
//
// KEYS: key, earlier version's hold. ARGV: token, the saved value, window
// in milliseconds.
var saveScript = redis.NewScript(parseHeld + saveOver + `
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
return save_over(v, redis.call('PTTL', KEYS[1]))
`)

// repairScript makes a key that Save's plain SET wrote over a value other
// than the token's own first hold what saveScript would have made of that
// value, unless the key was written again since.
//
// KEYS: key, earlier version's hold. ARGV: token, the saved value, window
// in milliseconds, the value written over, its milliseconds left then.
var repairScript = redis.NewScript(parseHeld + saveOver + `
if redis.pcall('GET', KEYS[1]) ~= ARGV[2] then
	return 0
end
return save_over(ARGV[4], tonumber(ARGV[5]))
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

// Save implements Store. The common case, a key still held by the
// request's own first hold, costs two plain commands: PTTL, then SET XX
// GET, which writes the record and answers what it wrote over (Redis 7
// has no SET that compares first; a script costs Redis three times as
// much). Over anything else the SET wrote, repairScript puts right what
// saveScript would have done; a key gone or of an earlier version's
// layout, which the SET leaves alone, goes to saveScript.
func (r *Redis) Save(ctx context.Context, k Key, token string, rec Record, window time.Duration) error {
	keys := r.keys(k)
	saved, ms := savedValue(rec), max(window.Milliseconds(), 1)
	c := []redisbatch.Command{
		{Args: []any{"pttl", keys[0]}},
		{Args: []any{"set", keys[0], saved, "xx", "get", "px", ms}},
	}
	r.batch.RunAll(ctx, c)
	old, err := c[1].Val, c[1].Err
	switch s, _ := old.(string); {
	case err == nil && len(s) == 1+len(token) && s[0] == 'h' && s[1:] == token:
		return nil
	case err == nil:
		ttl, _ := c[0].Val.(int64)
		_, err = r.batch.Run(ctx, repairScript, keys, token, saved, ms, s, ttl)
	case errors.Is(err, redis.Nil) || redis.HasErrorPrefix(err, "WRONGTYPE"):
		_, err = r.batch.Run(ctx, saveScript, keys, token, saved, ms)
	}
	if err != nil {
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
