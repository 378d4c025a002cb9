package redisqueue

import "strings"

// Key layout, for the default prefix "postback:" and call "c1":
//
//	postback:{call:c1}:list    LIST    the waiting entries, oldest first
//	postback:{call:c1}:dead    LIST    the dead letters, oldest first
//	postback:{call:c1}:lease   STRING  the drainer holding the lease, with its expiry
//	postback:{call:c1}:meta    HASH    seq (the last entry ID) and attempt (checks so far)
//	postback:{due:07}          ZSET    one of dueShards shards of the calls with entries
//	                                   waiting, scored by next check (Unix ms)
//	postback:dead              SET     calls with dead letters
//
// Every key of one call carries the hash tag {call:<id>}, so in Redis Cluster
// they share a slot and one script can touch them all. The indexes live in
// slots of their own and are never touched by a script or MULTI together
// with a call's keys (see index.go for how they stay consistent). The due
// index is split into shards, each its own hash tag, so that on Cluster its
// keys, and the work of the periodic check, spread over the masters
// (docs/operations.md#the-queue-in-production); a call's shard follows from its ID.
//
// postback:due, the unsharded due index of earlier versions, is still read:
// Due moves what it finds there into the shards, so an upgrade, rolling or
// not, loses no waiting call.

// callKeys are the keys of one call, all in one cluster slot.
type callKeys struct {
	list, dead, lease, meta string
}

// tagEscaper makes a call ID safe inside a hash tag: a '}' would end the tag
// early, a '{' could make another call's tag, and '%' is escaped so the
// mapping stays one-to-one.
var tagEscaper = strings.NewReplacer("%", "%25", "{", "%7B", "}", "%7D")

// hashTag is the tag every key of the call carries. The "call:" lead keeps it
// non-empty for an empty ID: Redis hashes the whole key when a tag is "{}".
func hashTag(callLogID string) string {
	return "{call:" + tagEscaper.Replace(callLogID) + "}"
}

// listKey is keysOf(callLogID).list in one allocation, for the ordering
// check of every postback.
func (q *Queue) listKey(callLogID string) string {
	return q.prefix + "{call:" + tagEscaper.Replace(callLogID) + "}:list"
}

func (q *Queue) keysOf(callLogID string) callKeys {
	base := q.prefix + hashTag(callLogID) + ":"
	return callKeys{
		list:  base + "list",
		dead:  base + "dead",
		lease: base + "lease",
		meta:  base + "meta",
	}
}

// dueShards is how many keys the due index is split into: enough for a
// Cluster of a dozen masters to each hold some.
const dueShards = 16

// dueKeyOf is the due-index shard that holds the call.
func (q *Queue) dueKeyOf(callLogID string) string {
	return q.dueKeys[shardOf(callLogID)]
}

// shardOf is FNV-1a of the ID, modulo dueShards.
func shardOf(callLogID string) int {
	h := uint32(2166136261)
	for i := 0; i < len(callLogID); i++ {
		h ^= uint32(callLogID[i])
		h *= 16777619
	}
	return int(h % dueShards)
}
