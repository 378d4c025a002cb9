package redisqueue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue counts (docs/operations.md#the-queue-in-production) are kept in two
// keys of their own slot, never found by walking the calls:
//
//	postback:{stats}          HASH  pending_entries, pending_calls, dead_entries,
//	                                dead_calls, and "counted" once a full count set them
//	postback:{stats}:oldest   ZSET  each call with entries waiting, scored by the
//	                                accepted_at of its first one (Unix ms)
//
// A script can only touch the keys of one slot on Cluster, so the scripts
// that change a call's lists do not write these keys: each one measures the
// call's lists before and after its work and answers the difference, and the
// client adds it in the pipeline that follows (applyCounts). Additions
// commute, so concurrent writers need no order; a script run twice changes
// nothing the second time and answers no difference.
//
// What can drift: a difference lost between the script and its follow-up
// (the client died, the follow-up failed, or the script's answer was lost
// to a timeout), and the oldest score of a call whose two writers'
// follow-ups arrived in the other order. The follow-up is never sent twice
// (the client does not retry), so a difference is counted once or not at
// all. Stats checks the call it reports as oldest against its list and
// corrects it; Recount walks the indexes once and sets everything again
// (the admin API's POST /postback/queue). A Redis without "counted" (a
// fresh one, or one written by earlier versions) is counted when an
// instance starts (EnsureCounted), or else by the first Stats. A recount
// is exact only while nothing writes: it is never run by itself on a
// queue in use.

// Fields of the counter hash.
const (
	fieldPendingEntries = "pending_entries"
	fieldPendingCalls   = "pending_calls"
	fieldDeadEntries    = "dead_entries"
	fieldDeadCalls      = "dead_calls"
	fieldCounted        = "counted"
)

func (q *Queue) statsKey() string  { return q.prefix + "{stats}" }
func (q *Queue) oldestKey() string { return q.prefix + "{stats}:oldest" }

// counted wraps a script body that writes a call's lists: KEYS[list] is
// its waiting list and KEYS[dead] its dead letters (0: the script has none).
// The wrapped script answers {waiting entries, calls, dead entries, dead
// calls (differences), accepted_at of the first entry waiting or "", the
// body's answer}; a body answering nil makes the array one shorter, and an
// error is passed on as it is.
func counted(body string, list, dead int) string {
	deadKey := "nil"
	if dead > 0 {
		deadKey = "KEYS[" + strconv.Itoa(dead) + "]"
	}
	return `
local countList, countDead = KEYS[` + strconv.Itoa(list) + `], ` + deadKey + `
local function countLen(k)
	if k then
		return redis.call('LLEN', k)
	end
	return 0
end
local function nonEmpty(n)
	if n > 0 then
		return 1
	end
	return 0
end
local p0, d0 = countLen(countList), countLen(countDead)
local function body()
` + body + `
end
local reply = body()
if type(reply) == 'table' and reply.err then
	return reply
end
local p1, d1 = countLen(countList), countLen(countDead)
local first = ''
if p1 > 0 then
	first = string.match(redis.call('LINDEX', countList, 0), '"accepted_at":"([^"]*)"') or ''
end
return {p1 - p0, nonEmpty(p1) - nonEmpty(p0), d1 - d0, nonEmpty(d1) - nonEmpty(d0), first, reply}
`
}

// countDelta is what one counted script changed.
type countDelta struct {
	callLogID                                            string
	pendingEntries, pendingCalls, deadEntries, deadCalls int64
	// first is the accepted_at of the call's first waiting entry after the
	// script, "" when none waits.
	first string
}

// changed says whether the script changed any count of the call; an
// ordering check that found nothing waiting changes none.
func (d countDelta) changed() bool {
	return d.pendingEntries != 0 || d.pendingCalls != 0 || d.deadEntries != 0 || d.deadCalls != 0
}

// splitCounted separates a counted script's reply into the body's answer
// (nil for none) and the difference.
func splitCounted(callLogID string, reply any) (any, countDelta, error) {
	a, ok := reply.([]any)
	if !ok || len(a) < 5 {
		return nil, countDelta{}, fmt.Errorf("redisqueue: unexpected reply %v", reply)
	}
	d := countDelta{callLogID: callLogID}
	for i, p := range []*int64{&d.pendingEntries, &d.pendingCalls, &d.deadEntries, &d.deadCalls} {
		n, ok := a[i].(int64)
		if !ok {
			return nil, countDelta{}, fmt.Errorf("redisqueue: unexpected reply %v", reply)
		}
		*p = n
	}
	d.first, _ = a[4].(string)
	if len(a) == 5 {
		return nil, d, nil
	}
	return a[5], d, nil
}

// runCounted runs a counted script for one call and adds its difference.
func (q *Queue) runCounted(ctx context.Context, script *redis.Script, callLogID string, keys []string, args ...any) (any, error) {
	reply, err := q.run(ctx, script, keys, args...)
	if err != nil {
		return nil, err
	}
	r, d, err := splitCounted(callLogID, reply)
	if err != nil {
		return nil, err
	}
	// The script's work is done even if this fails (drift, corrected above).
	_ = q.applyCounts(ctx, []countDelta{d})
	return r, nil
}

// applyCounts adds differences to the counters and moves the calls in the
// oldest index, in one pipeline (the batcher's, when the Queue has one).
func (q *Queue) applyCounts(ctx context.Context, deltas []countDelta) error {
	var commands [][]any
	for _, d := range deltas {
		for _, f := range []struct {
			name string
			n    int64
		}{{fieldPendingEntries, d.pendingEntries}, {fieldPendingCalls, d.pendingCalls}, {fieldDeadEntries, d.deadEntries}, {fieldDeadCalls, d.deadCalls}} {
			if f.n != 0 {
				commands = append(commands, []any{"hincrby", q.statsKey(), f.name, f.n})
			}
		}
		if d.pendingEntries == 0 && d.pendingCalls == 0 && d.deadEntries == 0 {
			continue // the first waiting entry did not change
		}
		if d.first == "" {
			commands = append(commands, []any{"zrem", q.oldestKey(), d.callLogID})
		} else if at, err := parseTime(d.first); err == nil {
			commands = append(commands, []any{"zadd", q.oldestKey(), at.UnixMilli(), d.callLogID})
		}
	}
	if len(commands) == 0 {
		return nil
	}
	for _, c := range q.doAll(ctx, len(commands), func(i int) []any { return commands[i] }) {
		if c.Err != nil {
			return c.Err
		}
	}
	return nil
}

// Recount walks the indexes once, as Stats did before the counters, and
// sets the counters and the oldest index from what it found. Writes going
// on meanwhile may be counted twice or not at all; a later Recount, with
// the queue quiet, is exact.
func (q *Queue) Recount(ctx context.Context) error {
	s, oldest, err := q.walk(ctx)
	if err != nil {
		return err
	}
	pipe := q.client.TxPipeline()
	pipe.HSet(ctx, q.statsKey(), fieldPendingEntries, s.PendingEntries, fieldPendingCalls, s.PendingCalls,
		fieldDeadEntries, s.DeadEntries, fieldDeadCalls, s.DeadCalls, fieldCounted, time.Now().UnixMilli())
	pipe.Del(ctx, q.oldestKey())
	for i := 0; i < len(oldest); i += statsBatch {
		pipe.ZAdd(ctx, q.oldestKey(), oldest[i:min(len(oldest), i+statsBatch)]...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisqueue: recount: %w", err)
	}
	return nil
}

// EnsureCounted counts the queue by walking it if no count was ever set: a
// fresh Redis, or one written by a version without counters. Run when an
// instance starts, before it serves, it is exact unless other instances
// write meanwhile.
func (q *Queue) EnsureCounted(ctx context.Context) error {
	counted, err := q.client.HExists(ctx, q.statsKey(), fieldCounted).Result()
	if err != nil || counted {
		return err
	}
	return q.Recount(ctx)
}

// asInt is the integer answer of a counted script.
func asInt(reply any, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	n, ok := reply.(int64)
	if !ok {
		return 0, fmt.Errorf("unexpected reply %v", reply)
	}
	return int(n), nil
}
