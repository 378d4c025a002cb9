package redisqueue

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The scripts below are the steps that must be atomic. Each touches the keys
// of one call only (one hash tag, so one cluster slot); none touches a global
// index. A script that fails half-way would leave its writes in place, so each
// one checks everything it can before its first write.

// appendScript is append-if-pending (operations#order): it appends only when the call has
// entries waiting if ARGV[1] is "1", and assigns the next ID from the call's
// counter. An append to an empty list starts a new wait, so it resets the
// attempt count; the counter itself is kept so that IDs never repeat.
//
// KEYS: list, meta. ARGV: ifPending ("1" or "0"), the entry without its ID
// (entryTail). Returns the ID, or nil when nothing was appended.
var appendScript = redis.NewScript(`
local waiting = redis.call('LLEN', KEYS[1])
if ARGV[1] == '1' and waiting == 0 then
	return false
end
if waiting == 0 then
	redis.call('HSET', KEYS[2], 'attempt', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('PERSIST', KEYS[2])
local id = string.format('%0` + strconv.Itoa(idWidth) + `d', seq)
redis.call('RPUSH', KEYS[1], '{"id":"' .. id .. '"' .. ARGV[2])
return id
`)

// claimScript takes the lease when it is free or renews it when owner
// already holds it; the expiry runs on the Redis server's clock, the one
// clock all instances share.
//
// KEYS: lease. ARGV: owner, ttl in milliseconds. Returns 1 if owner holds
// the lease now, 0 if another owner does.
var claimScript = redis.NewScript(`
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
	return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript deletes the lease only if owner still holds it.
//
// KEYS: lease. ARGV: owner. Returns 1 if it deleted the lease.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	return redis.call('DEL', KEYS[1])
end
return 0
`)

// popHeldHead is the start shared by ack and bury: it pops the head entry if
// owner holds the lease and the head is the entry named (its stored form
// starts with ARGV[2], headPrefix(id)); otherwise the script returns -1.
const popHeldHead = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return -1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.sub(head, 1, #ARGV[2]) ~= ARGV[2] then
	return -1
end
redis.call('LPOP', KEYS[2])
local waiting = redis.call('LLEN', KEYS[2])
`

// ackScript removes the head entry once the call store accepted it. When
// the call has nothing left, waiting or dead, its counter is kept for
// ARGV[3] ms more, then expires: long after any lease that could still name
// one of its IDs.
//
// KEYS: lease, list, dead, meta. ARGV: owner, headPrefix(id), retention in
// ms. Returns how many entries still wait, or -1 (queue.ErrNotLeaseholder).
var ackScript = redis.NewScript(popHeldHead + `
if waiting == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
	redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
return waiting
`)

// buryScript moves the head entry to the tail of the dead letters, behind a
// line with the reason and time (deadInfo).
//
// KEYS: lease, list, dead. ARGV: owner, headPrefix(id), deadInfo. Returns
// how many entries still wait, or -1 (queue.ErrNotLeaseholder).
var buryScript = redis.NewScript(popHeldHead + `
redis.call('RPUSH', KEYS[3], ARGV[3] .. '\n' .. head)
return waiting
`)

// requeueScript moves the dead letters back to the head of the list, in
// their order, each without its reason line, and resets the attempt count.
//
// KEYS: list, dead, meta. Returns how many entries moved.
var requeueScript = redis.NewScript(`
local dead = redis.call('LRANGE', KEYS[2], 0, -1)
local entries = {}
for i, letter in ipairs(dead) do
	local cut = string.find(letter, '\n', 1, true)
	if not cut then
		return redis.error_reply('redisqueue: malformed dead letter ' .. i .. ' in ' .. KEYS[2])
	end
	entries[i] = string.sub(letter, cut + 1)
end
for i = #entries, 1, -1 do
	redis.call('LPUSH', KEYS[1], entries[i])
end
if #entries > 0 then
	redis.call('DEL', KEYS[2])
	redis.call('HSET', KEYS[3], 'attempt', 0)
	redis.call('PERSIST', KEYS[3])
end
return #entries
`)

// setAttemptScript sets the attempt count of a call that has entries
// waiting, for Schedule and Wake; a call with none is left alone.
//
// KEYS: list, meta. ARGV: attempt. Returns 1 if the call has entries waiting.
var setAttemptScript = redis.NewScript(`
if redis.call('LLEN', KEYS[1]) == 0 then
	return 0
end
redis.call('HSET', KEYS[2], 'attempt', ARGV[1])
return 1
`)
