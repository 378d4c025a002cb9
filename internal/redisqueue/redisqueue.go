// Package redisqueue is the durable queue.Queue of docs/operations.md#the-queue on Redis, shared
// by every Caddy instance that points at the same Redis, be it a single node,
// Sentinel or Cluster (through go-redis's UniversalClient).
//
// keys.go lays out the keys, scripts.go holds the steps that must be atomic,
// encoding.go the stored form of an entry, index.go how the global indexes
// stay consistent with the calls, and stats.go the counting.
package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/redis/go-redis/v9"
)

// DefaultPrefix starts every key when New is given no prefix.
const DefaultPrefix = "postback:"

// counterRetention is how long a call's ID counter outlives the call's last
// entry, waiting or dead. IDs then start over, which is safe: no lease, and
// so no Ack or Bury naming an old ID, lasts that long.
const counterRetention = 7 * 24 * time.Hour

// Queue is a queue.Queue in Redis, safe for concurrent use by many
// goroutines and many processes.
type Queue struct {
	client  redis.UniversalClient
	prefix  string
	dueKey  string
	deadKey string
}

// New returns a Queue over client, whose keys all start with prefix
// (DefaultPrefix if empty). The client stays the caller's: the Queue never
// closes it.
//
// On Cluster the prefix should not contain '{' or '}': a hash tag in it would
// put every key of every call in that one slot.
func New(client redis.UniversalClient, prefix string) *Queue {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Queue{
		client:  client,
		prefix:  prefix,
		dueKey:  prefix + "due",
		deadKey: prefix + "dead",
	}
}

func (q *Queue) Append(ctx context.Context, e *queue.Entry, ifPending bool, due time.Time) (bool, error) {
	if !ifPending {
		if err := q.index(ctx, e.CallLogID, due); err != nil {
			return false, fmt.Errorf("redisqueue: append to call %q: %w", e.CallLogID, err)
		}
	}
	keys := q.keysOf(e.CallLogID)
	onlyBehind := "0"
	if ifPending {
		onlyBehind = "1"
	}
	id, err := appendScript.Run(ctx, q.client, []string{keys.list, keys.meta}, onlyBehind, entryTail(e)).Text()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redisqueue: append to call %q: %w", e.CallLogID, err)
	}
	e.ID = id
	// The entry is stored, so the append succeeded even if this fails: the
	// call is indexed already (index.go, rule 1).
	_ = q.index(ctx, e.CallLogID, due)
	return true, nil
}

func (q *Queue) Wake(ctx context.Context, callLogID string, now time.Time) (bool, error) {
	pending, err := q.setAttempt(ctx, callLogID, 0)
	if err == nil && pending {
		err = q.schedule(ctx, callLogID, now)
	}
	if err != nil {
		return false, fmt.Errorf("redisqueue: wake call %q: %w", callLogID, err)
	}
	return pending, nil
}

func (q *Queue) Schedule(ctx context.Context, callLogID string, at time.Time, attempt int) error {
	pending, err := q.setAttempt(ctx, callLogID, attempt)
	if err == nil && pending {
		err = q.schedule(ctx, callLogID, at)
	}
	if err != nil {
		return fmt.Errorf("redisqueue: schedule call %q: %w", callLogID, err)
	}
	return nil
}

// setAttempt sets the attempt count of a call with entries waiting and
// reports whether it has any.
func (q *Queue) setAttempt(ctx context.Context, callLogID string, attempt int) (bool, error) {
	keys := q.keysOf(callLogID)
	pending, err := setAttemptScript.Run(ctx, q.client, []string{keys.list, keys.meta}, attempt).Int()
	return pending == 1, err
}

func (q *Queue) Due(ctx context.Context, now time.Time, limit int) ([]queue.Due, error) {
	var due []queue.Due
	seen := make(map[string]bool)
	// Calls found empty are skipped and leave the index (index.go, rule 3),
	// so a page may yield fewer calls than it held: read on until limit.
	for offset := int64(0); len(due) < limit; {
		want := limit - len(due)
		ids, err := q.client.ZRangeByScore(ctx, q.dueKey, &redis.ZRangeBy{
			Min: "-inf", Max: maxScore(now), Offset: offset, Count: int64(want),
		}).Result()
		if err != nil {
			return nil, fmt.Errorf("redisqueue: due calls: %w", err)
		}
		waiting, attempts, err := q.probe(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("redisqueue: due calls: %w", err)
		}
		// The next page starts after this one, less the calls taken out.
		offset += int64(len(ids))
		for i, id := range ids {
			switch {
			case seen[id]:
			case waiting[i] == 0:
				if err := q.unindexIfEmpty(ctx, id, now); err != nil {
					return nil, fmt.Errorf("redisqueue: due calls: %w", err)
				}
				offset--
			default:
				due = append(due, queue.Due{CallLogID: id, Attempt: attempts[i]})
			}
			seen[id] = true
		}
		if len(ids) < want {
			break
		}
	}
	return due, nil
}

// probe reads how many entries wait for each call and its attempt count.
func (q *Queue) probe(ctx context.Context, callLogIDs []string) (waiting []int64, attempts []int, err error) {
	if len(callLogIDs) == 0 {
		return nil, nil, nil
	}
	pipe := q.client.Pipeline()
	lens := make([]*redis.IntCmd, len(callLogIDs))
	metas := make([]*redis.StringCmd, len(callLogIDs))
	for i, id := range callLogIDs {
		keys := q.keysOf(id)
		lens[i] = pipe.LLen(ctx, keys.list)
		metas[i] = pipe.HGet(ctx, keys.meta, "attempt")
	}
	// A missing attempt (redis.Nil) is not an error; each reply is checked below.
	_, _ = pipe.Exec(ctx)
	waiting = make([]int64, len(callLogIDs))
	attempts = make([]int, len(callLogIDs))
	for i := range callLogIDs {
		if waiting[i], err = lens[i].Result(); err != nil {
			return nil, nil, err
		}
		attempt, metaErr := metas[i].Result()
		if errors.Is(metaErr, redis.Nil) {
			continue
		}
		if metaErr != nil {
			return nil, nil, metaErr
		}
		if attempts[i], err = strconv.Atoi(attempt); err != nil {
			return nil, nil, fmt.Errorf("attempt of call %q: %w", callLogIDs[i], err)
		}
	}
	return waiting, attempts, nil
}

func (q *Queue) Claim(ctx context.Context, callLogID, owner string, ttl time.Duration) (bool, error) {
	// PX takes whole milliseconds, at least one.
	ms := max(ttl.Milliseconds(), 1)
	held, err := claimScript.Run(ctx, q.client, []string{q.keysOf(callLogID).lease}, owner, ms).Int()
	if err != nil {
		return false, fmt.Errorf("redisqueue: claim call %q: %w", callLogID, err)
	}
	return held == 1, nil
}

func (q *Queue) Release(ctx context.Context, callLogID, owner string) error {
	if err := releaseScript.Run(ctx, q.client, []string{q.keysOf(callLogID).lease}, owner).Err(); err != nil {
		return fmt.Errorf("redisqueue: release call %q: %w", callLogID, err)
	}
	return nil
}

func (q *Queue) Head(ctx context.Context, callLogID string) (queue.Entry, bool, error) {
	stored, err := q.client.LIndex(ctx, q.keysOf(callLogID).list, 0).Result()
	if errors.Is(err, redis.Nil) {
		return queue.Entry{}, false, nil
	}
	if err != nil {
		return queue.Entry{}, false, fmt.Errorf("redisqueue: head of call %q: %w", callLogID, err)
	}
	e, err := decodeEntry(stored)
	if err != nil {
		return queue.Entry{}, false, err
	}
	return e, true, nil
}

func (q *Queue) Ack(ctx context.Context, callLogID, owner, id string) error {
	keys := q.keysOf(callLogID)
	waiting, err := ackScript.Run(ctx, q.client, []string{keys.lease, keys.list, keys.dead, keys.meta},
		owner, headPrefix(id), counterRetention.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("redisqueue: ack call %q: %w", callLogID, err)
	}
	if waiting < 0 {
		return queue.ErrNotLeaseholder
	}
	if waiting == 0 {
		// The entry is gone, so the ack succeeded even if this fails: Due
		// drops a call it finds empty (index.go, rule 3).
		_ = q.unindexIfEmpty(ctx, callLogID, time.Now())
	}
	return nil
}

func (q *Queue) Bury(ctx context.Context, callLogID, owner, id, reason string, at time.Time) error {
	if err := q.listDead(ctx, callLogID); err != nil {
		return fmt.Errorf("redisqueue: bury in call %q: %w", callLogID, err)
	}
	// Dead-letter index (dead.go): indexed before the script and after it.
	buried, err := q.indexDeadHead(ctx, callLogID, id, at)
	if err != nil {
		return fmt.Errorf("redisqueue: bury in call %q: %w", callLogID, err)
	}
	keys := q.keysOf(callLogID)
	waiting, err := buryScript.Run(ctx, q.client, []string{keys.lease, keys.list, keys.dead},
		owner, headPrefix(id), deadInfo(reason, at)).Int()
	if err != nil {
		return fmt.Errorf("redisqueue: bury in call %q: %w", callLogID, err)
	}
	if waiting >= 0 && buried.ID == id {
		_ = q.indexDead(ctx, callLogID, buried, at)
	}
	// Both index steps below are best effort: the entry has moved, or
	// nothing has, and a stale index member is harmless (index.go, rule 3).
	if waiting < 0 {
		_ = q.unlistDeadIfEmpty(ctx, callLogID)
		return queue.ErrNotLeaseholder
	}
	if waiting == 0 {
		_ = q.unindexIfEmpty(ctx, callLogID, at)
	}
	return nil
}

func (q *Queue) Pending(ctx context.Context, callLogID string) ([]queue.Entry, error) {
	stored, err := q.client.LRange(ctx, q.keysOf(callLogID).list, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisqueue: pending of call %q: %w", callLogID, err)
	}
	entries := make([]queue.Entry, len(stored))
	for i, s := range stored {
		if entries[i], err = decodeEntry(s); err != nil {
			return nil, err
		}
	}
	return entries, nil
}

func (q *Queue) Dead(ctx context.Context, callLogID string) ([]queue.DeadEntry, error) {
	stored, err := q.client.LRange(ctx, q.keysOf(callLogID).dead, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("redisqueue: dead letters of call %q: %w", callLogID, err)
	}
	dead := make([]queue.DeadEntry, len(stored))
	for i, s := range stored {
		if dead[i], err = decodeDeadEntry(s); err != nil {
			return nil, err
		}
	}
	return dead, nil
}

func (q *Queue) Requeue(ctx context.Context, callLogID string, due time.Time) (int, error) {
	if err := q.index(ctx, callLogID, due); err != nil {
		return 0, fmt.Errorf("redisqueue: requeue call %q: %w", callLogID, err)
	}
	before, err := q.Dead(ctx, callLogID)
	if err != nil {
		return 0, fmt.Errorf("redisqueue: requeue call %q: %w", callLogID, err)
	}
	keys := q.keysOf(callLogID)
	moved, err := requeueScript.Run(ctx, q.client, []string{keys.list, keys.dead, keys.meta}).Int()
	if err != nil {
		return 0, fmt.Errorf("redisqueue: requeue call %q: %w", callLogID, err)
	}
	// Best effort (dead.go): readers trust the letters.
	_ = q.reindexDead(ctx, callLogID, before)
	// Best effort: a call left in the dead index with no dead letters is
	// not counted (index.go, rule 3).
	_ = q.unlistDeadIfEmpty(ctx, callLogID)
	if moved == 0 {
		return 0, nil
	}
	if err := q.schedule(ctx, callLogID, due); err != nil {
		return moved, fmt.Errorf("redisqueue: requeued %d entries of call %q but could not schedule it: %w", moved, callLogID, err)
	}
	return moved, nil
}

var _ queue.Queue = (*Queue)(nil)
