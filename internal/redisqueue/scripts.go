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
// It is safe to run twice (operations#delivery-guarantee): the meta hash maps each stored
// update's ID (field "u:<update id>") to its entry's sequence number
// (unpadded, to save memory; earlier versions stored the padded ID, which
// reads the same), so a second run answers the first run's entry ID and
// stores nothing; a field holding "-" is an update Settle declared not
// stored, which a late run must not store.
// A call already holding ARGV[4] entries (when above 0) takes no more. An
// append run after ARGV[5] (Unix ms by the Redis server's clock, when above
// 0) comes after its caller gave up: it marks the update not stored, as
// Settle would, and stores nothing.
//
// KEYS: list, meta. ARGV: ifPending ("1" or "0"), the entry without its ID
// (entryTail), the update ID (may be empty), the most entries waiting, the
// time after which not to append.
// Returns the ID; nil when nothing was appended; -1 when the call is full;
// -2 when Settle declared the update not stored.
var appendScript = redis.NewScript(counted(`
local seen = ARGV[3] ~= '' and redis.call('HGET', KEYS[2], 'u:' .. ARGV[3])
if seen then
	if seen == '-' then
		return -2
	end
	return string.format('%0`+strconv.Itoa(idWidth)+`d', tonumber(seen))
end
local waiting = redis.call('LLEN', KEYS[1])
if ARGV[1] == '1' and waiting == 0 then
	return false
end
local notAfter = tonumber(ARGV[5])
if notAfter > 0 then
	local now = redis.call('TIME')
	if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > notAfter then
		if ARGV[3] ~= '' then
			local fresh = redis.call('EXISTS', KEYS[2]) == 0
			redis.call('HSET', KEYS[2], 'u:' .. ARGV[3], '-')
			if fresh then
				redis.call('PEXPIRE', KEYS[2], ARGV[6])
			end
		end
		return -2
	end
end
local most = tonumber(ARGV[4])
if most > 0 and waiting >= most then
	return -1
end
if waiting == 0 then
	redis.call('HSET', KEYS[2], 'attempt', 0)
end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
redis.call('PERSIST', KEYS[2])
local id = string.format('%0`+strconv.Itoa(idWidth)+`d', seq)
if ARGV[3] ~= '' then
	redis.call('HSET', KEYS[2], 'u:' .. ARGV[3], seq)
end
redis.call('RPUSH', KEYS[1], '{"id":"' .. id .. '"' .. ARGV[2])
return id
`, 1, 0))

// settleScript decides an append whose answer was lost: if the update is
// stored it says so, else it marks the update not stored ("-"), so that a
// copy of the append still on its way to Redis stores nothing. A call with
// nothing else in Redis keeps the mark for ARGV[3] ms.
//
// KEYS: list, dead, meta. ARGV: update ID, retention in ms. Returns 1 if
// the update is stored, 0 if it is not and never will be.
var settleScript = redis.NewScript(`
local seen = redis.call('HGET', KEYS[3], 'u:' .. ARGV[1])
if seen then
	if seen == '-' then
		return 0
	end
	return 1
end
redis.call('HSET', KEYS[3], 'u:' .. ARGV[1], '-')
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('EXISTS', KEYS[2]) == 0 then
	redis.call('PEXPIRE', KEYS[3], ARGV[2])
end
return 0
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
//
// Both are safe to run twice: the meta hash keeps the last entry ID taken
// from the head ("done"), and a run naming that ID again changes nothing
// and answers how many entries wait, as the first run did.
const popHeldHead = `
if redis.call('HGET', KEYS[4], 'done') == ARGV[4] then
	return redis.call('LLEN', KEYS[2])
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
	return -1
end
local head = redis.call('LINDEX', KEYS[2], 0)
if not head or string.sub(head, 1, #ARGV[2]) ~= ARGV[2] then
	return -1
end
redis.call('LPOP', KEYS[2])
redis.call('HSET', KEYS[4], 'done', ARGV[4])
local waiting = redis.call('LLEN', KEYS[2])
`

// ackScript removes the head entry once the call store accepted it, and
// forgets its update ID. When the call has nothing left, waiting or dead,
// its counter is kept for ARGV[3] ms more, then expires: long after any
// lease that could still name one of its IDs.
//
// KEYS: lease, list, dead, meta. ARGV: owner, headPrefix(id), retention in
// ms, id. Returns {how many entries still wait, the new head or nil}; or
// -1 (queue.ErrNotLeaseholder); or, run again, only how many wait.
var ackScript = redis.NewScript(counted(popHeldHead+`
local update = string.match(head, '^{"id":"[0-9]*","update_id":"([^"\\]*)"')
if update then
	redis.call('HDEL', KEYS[4], 'u:' .. update)
end
if waiting == 0 and redis.call('EXISTS', KEYS[3]) == 0 then
	redis.call('PEXPIRE', KEYS[4], ARGV[3])
end
return {waiting, redis.call('LINDEX', KEYS[2], 0)}
`, 2, 3))

// buryScript moves the head entry to the tail of the dead letters, behind a
// line with the reason and time (deadInfo).
//
// KEYS: lease, list, dead, meta. ARGV: owner, headPrefix(id), deadInfo,
// id. Returns how many entries still wait, or -1 (queue.ErrNotLeaseholder).
var buryScript = redis.NewScript(counted(popHeldHead+`
redis.call('RPUSH', KEYS[3], ARGV[3] .. '\n' .. head)
return waiting
`, 2, 3))

// requeueScript moves the dead letters back to the head of the list, in
// their order, each without its reason line, and resets the attempt count.
// The entries come back with their IDs, so the last ID taken ("done") is
// forgotten: an ack of a requeued entry must run. A second run finds no
// dead letters and changes nothing.
//
// KEYS: list, dead, meta. Returns how many entries moved.
var requeueScript = redis.NewScript(counted(deadLetters+`
local entries = bodies
if #entries > 0 then
	redis.call('DEL', KEYS[2])
end
`+backAtHead, 1, 2))

// deadLetters, the start of requeue and revive, reads the call's dead
// letters (KEYS[2]) into dead and, each without its reason line, into
// bodies.
const deadLetters = `
local dead = redis.call('LRANGE', KEYS[2], 0, -1)
local bodies = {}
for i, letter in ipairs(dead) do
	local cut = string.find(letter, '\n', 1, true)
	if not cut then
		return redis.error_reply('redisqueue: malformed dead letter ' .. i .. ' in ' .. KEYS[2])
	end
	bodies[i] = string.sub(letter, cut + 1)
end
`

// backAtHead, the end of requeue and revive, puts entries back at the head
// of the list (KEYS[1]) in their order and answers how many. The entries
// come back with their IDs, so when any moved the last ID taken ("done",
// meta KEYS[3]) is forgotten, and the attempt count starts again.
const backAtHead = `
for j = #entries, 1, -1 do
	redis.call('LPUSH', KEYS[1], entries[j])
end
if #entries > 0 then
	redis.call('HDEL', KEYS[3], 'done')
	redis.call('HSET', KEYS[3], 'attempt', 0)
	redis.call('PERSIST', KEYS[3])
end
return #entries
`

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
