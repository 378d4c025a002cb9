package redisqueue

import "github.com/redis/go-redis/v9"

// The scripts of the dead-letter index and of replaying dead letters
// (docs/operations.md#dead-letters). The index scripts touch only the index
// keys (one hash tag, {dead}); the others only the keys of one call: no
// script crosses the two, so all of them run on Cluster.

// deadIndexAddScript records a dead letter in the index: the call's newest
// rises to the letter's time, its oldest falls to it, and so does the
// newest of its webhook and account.
//
// KEYS: newest, oldest, then the webhook's and the account's index.
// ARGV: call ID, the letter's time in Unix µs.
var deadIndexAddScript = redis.NewScript(`
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[2], 'LT', ARGV[2], ARGV[1])
for i = 3, #KEYS do
	redis.call('ZADD', KEYS[i], 'GT', ARGV[2], ARGV[1])
end
return #KEYS
`)

// deadIndexSetScript sets a call's place in each index key given, as
// counted from its dead letters after they changed: a score, or "" to
// take the call out of that key.
//
// KEYS: index keys. ARGV: call ID, then one score (or "") per key.
var deadIndexSetScript = redis.NewScript(`
for i = 1, #KEYS do
	if ARGV[i + 1] == '' then
		redis.call('ZREM', KEYS[i], ARGV[1])
	else
		redis.call('ZADD', KEYS[i], ARGV[i + 1], ARGV[1])
	end
end
return #KEYS
`)

// reviveScript moves the dead letters named back to the head of the list,
// in the order named, each as its replacement when one is given, else as
// stored; the other dead letters stay, in their order. If a letter named is
// missing it changes nothing and returns -1 (queue.ErrDeadChanged). Like
// requeue, it forgets the last ID taken ("done"): the letters come back with
// their IDs, and the ack of one must not be taken for a second run.
//
// KEYS: list, dead, meta. ARGV: pairs of headPrefix(id) and replacement
// ("" keeps the entry as stored). Returns how many entries moved.
var reviveScript = redis.NewScript(counted(deadLetters+`
local taken = {}
local entries = {}
for j = 1, #ARGV / 2 do
	local prefix = ARGV[2 * j - 1]
	for i, body in ipairs(bodies) do
		if not taken[i] and string.sub(body, 1, #prefix) == prefix then
			taken[i] = true
			if ARGV[2 * j] == '' then
				entries[j] = body
			else
				entries[j] = ARGV[2 * j]
			end
			break
		end
	end
	if not entries[j] then
		return -1
	end
end
redis.call('DEL', KEYS[2])
for i, letter in ipairs(dead) do
	if not taken[i] then
		redis.call('RPUSH', KEYS[2], letter)
	end
end
`+backAtHead, 1, 2))

// trimDeadScript drops the first ARGV[1] dead letters of a call, if the
// last of them is still ARGV[2] (nothing was requeued meanwhile). A call
// left with nothing, waiting or dead, lets its counter expire as ack does.
//
// KEYS: dead, list, meta. ARGV: count, the last letter dropped, retention
// in ms. Returns the count, or -1 when the letters changed.
var trimDeadScript = redis.NewScript(counted(`
local n = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[2] then
	return -1
end
redis.call('LTRIM', KEYS[1], n, -1)
if redis.call('LLEN', KEYS[1]) == 0 and redis.call('LLEN', KEYS[2]) == 0 then
	redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return n
`, 2, 1))
