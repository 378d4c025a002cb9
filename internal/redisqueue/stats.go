package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/redis/go-redis/v9"
)

// statsBatch bounds the members read per SCAN step and the LLENs sent per
// pipeline while counting.
const statsBatch = 500

// Stats reads the counters the scripts keep (counters.go): two round trips
// whatever the queue holds, and one more per stale oldest entry it corrects.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	for try := 0; try < 2; try++ {
		vals, err := q.client.HMGet(ctx, q.statsKey(), fieldPendingEntries, fieldPendingCalls, fieldDeadEntries, fieldDeadCalls, fieldCounted).Result()
		if err != nil {
			return queue.Stats{}, fmt.Errorf("redisqueue: stats: %w", err)
		}
		if vals[4] == nil {
			if err := q.Recount(ctx); err != nil {
				return queue.Stats{}, err
			}
			continue
		}
		n := make([]int, 4)
		for i := range n {
			str, _ := vals[i].(string)
			n[i], _ = strconv.Atoi(str)
			n[i] = max(n[i], 0) // a lost difference must not show as a negative count
		}
		s := queue.Stats{PendingEntries: n[0], PendingCalls: n[1], DeadEntries: n[2], DeadCalls: n[3]}
		if s.OldestPending, err = q.oldestPending(ctx); err != nil {
			return queue.Stats{}, err
		}
		return s, nil
	}
	return queue.Stats{}, fmt.Errorf("redisqueue: stats: the counters were not set by a recount")
}

// oldestPending is the accepted_at of the first entry of the call scored
// lowest in the oldest index, checked against the call's list: a score
// left stale by follow-ups that arrived out of order is corrected, and the
// next call read.
func (q *Queue) oldestPending(ctx context.Context) (time.Time, error) {
	for range 8 {
		zs, err := q.client.ZRangeWithScores(ctx, q.oldestKey(), 0, 0).Result()
		if err != nil || len(zs) == 0 {
			return time.Time{}, err
		}
		id, _ := zs[0].Member.(string)
		head, err := q.client.LIndex(ctx, q.keysOf(id).list, 0).Result()
		if errors.Is(err, redis.Nil) {
			_ = q.client.ZRem(ctx, q.oldestKey(), id).Err()
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		at, err := parseTime(gjson.Get(head, "accepted_at").Str)
		if err != nil {
			return time.Time{}, err
		}
		if float64(at.UnixMilli()) != zs[0].Score {
			_ = q.client.ZAdd(ctx, q.oldestKey(), redis.Z{Score: float64(at.UnixMilli()), Member: id}).Err()
			continue
		}
		return at, nil
	}
	return time.Time{}, nil
}

// walk counts through the two indexes, never the keyspace, so it works the
// same on Cluster, and scores each call with entries waiting by its first
// one. Only calls whose lists are not empty count (index.go, rule 3).
func (q *Queue) walk(ctx context.Context) (queue.Stats, []redis.Z, error) {
	var s queue.Stats
	var pending []string
	var err error
	for _, key := range append(q.dueKeys[:len(q.dueKeys):len(q.dueKeys)], q.legacyDueKey) {
		var some []string
		if some, err = q.members(ctx, key, true); err != nil {
			break
		}
		pending = append(pending, some...)
	}
	pending = unique(pending)
	var firsts []redis.Z
	if err == nil {
		s.PendingCalls, s.PendingEntries, firsts, err = q.countLists(ctx, pending, func(k callKeys) string { return k.list })
	}
	if err != nil {
		return queue.Stats{}, nil, fmt.Errorf("redisqueue: count waiting entries: %w", err)
	}
	dead, err := q.members(ctx, q.deadKey, false)
	if err == nil {
		s.DeadCalls, s.DeadEntries, _, err = q.countLists(ctx, dead, func(k callKeys) string { return k.dead })
	}
	if err != nil {
		return queue.Stats{}, nil, fmt.Errorf("redisqueue: count dead letters: %w", err)
	}
	return s, firsts, nil
}

// members reads every member of an index, a sorted set or a set, each once
// (SCAN may return a member twice).
func (q *Queue) members(ctx context.Context, key string, sorted bool) ([]string, error) {
	var members []string
	seen := make(map[string]bool)
	var cursor uint64
	for {
		var page []string
		var err error
		if sorted {
			page, cursor, err = q.client.ZScan(ctx, key, cursor, "", statsBatch).Result()
		} else {
			page, cursor, err = q.client.SScan(ctx, key, cursor, "", statsBatch).Result()
		}
		if err != nil {
			return nil, err
		}
		step := 1
		if sorted {
			step = 2 // ZSCAN answers member, score, member, score, ...
		}
		for i := 0; i < len(page); i += step {
			if !seen[page[i]] {
				seen[page[i]] = true
				members = append(members, page[i])
			}
		}
		if cursor == 0 {
			return members, nil
		}
	}
}

// countLists counts the calls whose list (picked by which) is not empty and
// the entries in them, and scores each call by its first entry's accepted_at.
func (q *Queue) countLists(ctx context.Context, callLogIDs []string, which func(callKeys) string) (calls, entries int, firsts []redis.Z, err error) {
	for len(callLogIDs) > 0 {
		batch := callLogIDs[:min(len(callLogIDs), statsBatch)]
		callLogIDs = callLogIDs[len(batch):]
		pipe := q.client.Pipeline()
		lens := make([]*redis.IntCmd, len(batch))
		heads := make([]*redis.StringCmd, len(batch))
		for i, id := range batch {
			lens[i] = pipe.LLen(ctx, which(q.keysOf(id)))
			heads[i] = pipe.LIndex(ctx, which(q.keysOf(id)), 0)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return 0, 0, nil, err
		}
		for i, n := range lens {
			if n.Val() == 0 {
				continue
			}
			calls++
			entries += int(n.Val())
			// A dead letter starts with its reason line; only waiting
			// entries are read for their age.
			if at, err := parseTime(gjson.Get(heads[i].Val(), "accepted_at").Str); err == nil {
				firsts = append(firsts, redis.Z{Score: float64(at.UnixMilli()), Member: batch[i]})
			}
		}
	}
	return calls, entries, firsts, nil
}

// unique drops repeated IDs, keeping the first of each: a call moving from
// the index of earlier versions into its shard may be read in both.
func unique(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
