package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/redis/go-redis/v9"
)

// statsBatch bounds the members read per SCAN step and the LLENs sent per
// pipeline while counting.
const statsBatch = 500

// Stats counts through the two indexes, never the keyspace, so it works the
// same on Cluster. Only calls whose lists are not empty count (index.go,
// rule 3); with writes going on meanwhile, the counts are a close estimate.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
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
	if err == nil {
		s.PendingCalls, s.PendingEntries, s.OldestPending, err = q.countLists(ctx, pending, func(k callKeys) string { return k.list })
	}
	if err != nil {
		return queue.Stats{}, fmt.Errorf("redisqueue: stats of waiting entries: %w", err)
	}
	dead, err := q.members(ctx, q.deadKey, false)
	if err == nil {
		s.DeadCalls, s.DeadEntries, _, err = q.countLists(ctx, dead, func(k callKeys) string { return k.dead })
	}
	if err != nil {
		return queue.Stats{}, fmt.Errorf("redisqueue: stats of dead letters: %w", err)
	}
	return s, nil
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
// the entries in them, and finds the oldest first entry.
func (q *Queue) countLists(ctx context.Context, callLogIDs []string, which func(callKeys) string) (calls, entries int, oldest time.Time, err error) {
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
			return 0, 0, time.Time{}, err
		}
		for i, n := range lens {
			if n.Val() == 0 {
				continue
			}
			calls++
			entries += int(n.Val())
			// A dead letter starts with its reason line; only waiting
			// entries are read for their age.
			if at, err := parseTime(gjson.Get(heads[i].Val(), "accepted_at").Str); err == nil && (oldest.IsZero() || at.Before(oldest)) {
				oldest = at
			}
		}
	}
	return calls, entries, oldest, nil
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
