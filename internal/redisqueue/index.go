package redisqueue

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// The due index (sorted sets of call IDs scored by next check, in shards) and the dead
// index (a set of calls with dead letters) are global keys, each in a slot of
// its own, so no step can change a call's keys and an index atomically: on
// Cluster that would be a cross-slot script. They are kept consistent instead
// by three rules, under which every interleaving of steps heals itself:
//
//  1. Add before and after. Append (not ifPending) adds the call to the due
//     index with ZADD NX before its script runs, so a process that dies right
//     after appending leaves the call indexed, and again after, in case a
//     removal ran in between. Append with ifPending adds only after: it
//     appends only behind waiting entries, whose call is indexed already.
//     Bury adds the call to the dead index before its script runs; Requeue
//     adds it to the due index before its script runs and schedules it after.
//     Wake and Schedule add whenever they find entries waiting, which also
//     restores a call whose index member was lost.
//  2. Remove, then check again. A call leaves an index only after its list
//     was seen empty (Ack and Bury when they empty it, Due when it finds a
//     due call empty, Requeue and a refused Bury for the dead index); right
//     after the removal the list is read again and the call put back if an
//     append slipped in between.
//  3. Readers trust the lists, not the indexes. Due skips a call with nothing
//     waiting (and removes it by rule 2); Stats counts only calls whose lists
//     are not empty. A stale member costs one LLEN, never a wrong answer.
//
// What can remain is a call with entries waiting but no due-index member: it
// takes a process dying between the removal and the re-check of rule 2 while
// another process appends to that same call. The next Append, Wake (the
// call-completed endpoint, operations#completion-and-dead-letters), Schedule or Requeue of the call restores it.

// index adds the call to the due index unless it is already there.
func (q *Queue) index(ctx context.Context, callLogID string, at time.Time) error {
	if _, err := q.do(ctx, "zadd", q.dueKeyOf(callLogID), "nx", score(at), callLogID); err != nil {
		return fmt.Errorf("redisqueue: index call: %w", err)
	}
	return nil
}

// indexAll adds the calls of entries to the due index, each unless it is
// there already, in one command.
func (q *Queue) indexAll(ctx context.Context, entries []*queue.Entry, at time.Time) error {
	if len(entries) == 0 {
		return nil
	}
	if len(entries) == 1 {
		return q.index(ctx, entries[0].CallLogID, at)
	}
	// One ZADD per shard, all in one pipeline.
	byShard := make(map[string][]any)
	var shards []string
	for _, e := range entries {
		key := q.dueKeyOf(e.CallLogID)
		if byShard[key] == nil {
			shards = append(shards, key)
			byShard[key] = []any{"zadd", key, "nx"}
		}
		byShard[key] = append(byShard[key], score(at), e.CallLogID)
	}
	for _, c := range q.doAll(ctx, len(shards), func(i int) []any { return byShard[shards[i]] }) {
		if c.Err != nil {
			return fmt.Errorf("redisqueue: index calls: %w", c.Err)
		}
	}
	return nil
}

// schedule sets the call's next check in the due index.
func (q *Queue) schedule(ctx context.Context, callLogID string, at time.Time) error {
	if _, err := q.do(ctx, "zadd", q.dueKeyOf(callLogID), score(at), callLogID); err != nil {
		return fmt.Errorf("redisqueue: schedule call: %w", err)
	}
	return nil
}

// unindexIfEmpty takes a call whose list was seen empty out of the due
// index, and puts it back, due at at, if entries arrived meanwhile (rule 2).
func (q *Queue) unindexIfEmpty(ctx context.Context, callLogID string, at time.Time) error {
	// One after the other, not in one pipeline: on Cluster the two keys
	// live on different nodes, and the LLEN must see what was appended
	// before the ZREM took effect.
	if _, err := q.do(ctx, "zrem", q.dueKeyOf(callLogID), callLogID); err != nil {
		return fmt.Errorf("redisqueue: unindex call: %w", err)
	}
	waiting, err := asInt(q.do(ctx, "llen", q.keysOf(callLogID).list))
	if err != nil {
		return fmt.Errorf("redisqueue: unindex call: %w", err)
	}
	if waiting > 0 {
		return q.index(ctx, callLogID, at)
	}
	return nil
}

// listDead adds the call to the dead index.
func (q *Queue) listDead(ctx context.Context, callLogID string) error {
	if err := q.client.SAdd(ctx, q.deadKey, callLogID).Err(); err != nil {
		return fmt.Errorf("redisqueue: list dead call: %w", err)
	}
	return nil
}

// unlistDeadIfEmpty takes a call out of the dead index, and puts it back if
// it has dead letters after all (rule 2).
func (q *Queue) unlistDeadIfEmpty(ctx context.Context, callLogID string) error {
	if err := q.client.SRem(ctx, q.deadKey, callLogID).Err(); err != nil {
		return fmt.Errorf("redisqueue: unlist dead call: %w", err)
	}
	dead, err := q.client.LLen(ctx, q.keysOf(callLogID).dead).Result()
	if err != nil {
		return fmt.Errorf("redisqueue: unlist dead call: %w", err)
	}
	if dead > 0 {
		return q.listDead(ctx, callLogID)
	}
	return nil
}

// score is a time in the due index: Unix milliseconds.
func score(t time.Time) float64 {
	return float64(t.UnixMilli())
}

// maxScore is the upper bound of a due-index range that includes t.
func maxScore(t time.Time) string {
	return strconv.FormatInt(t.UnixMilli(), 10)
}
