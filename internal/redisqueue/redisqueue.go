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
	"sort"
	"strconv"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
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
	client redis.UniversalClient
	prefix string
	// dueKeys are the shards of the due index; legacyDueKey is the
	// unsharded index of earlier versions (keys.go).
	dueKeys      []string
	legacyDueKey string
	deadKey      string
	// batcher, when set, carries the append scripts in pipelines shared
	// with other callers (WithBatcher).
	batcher *redisbatch.Batcher
	hints   waitingHints
}

// Option configures a Queue.
type Option func(*Queue)

// WithBatcher sends the scripts of AppendAll, the postback's ordering
// check and append, through b, in pipelines shared with concurrent
// postbacks (and whatever else uses b), instead of one pipeline each.
func WithBatcher(b *redisbatch.Batcher) Option {
	return func(q *Queue) { q.batcher = b }
}

// New returns a Queue over client, whose keys all start with prefix
// (DefaultPrefix if empty). The client stays the caller's: the Queue never
// closes it.
//
// On Cluster the prefix should not contain '{' or '}': a hash tag in it would
// put every key of every call in that one slot.
func New(client redis.UniversalClient, prefix string, opts ...Option) *Queue {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	q := &Queue{
		client:       client,
		prefix:       prefix,
		legacyDueKey: prefix + "due",
		deadKey:      prefix + "dead",
	}
	for i := range dueShards {
		q.dueKeys = append(q.dueKeys, fmt.Sprintf("%s{due:%02d}", prefix, i))
	}
	for _, o := range opts {
		o(q)
	}
	return q
}

func (q *Queue) Append(ctx context.Context, e *queue.Entry, ifPending bool, due time.Time) (bool, error) {
	r := q.AppendAll(ctx, []*queue.Entry{e}, queue.AppendOptions{IfPending: ifPending, Due: due})[0]
	return r.Appended, r.Err
}

// AppendAll runs the append script of every entry in one pipeline; on
// Cluster, go-redis sends one pipeline per node.
//
// With IfPending (the ordering check of nearly every postback, whose call
// has nothing waiting) it first asks only whether each call has entries
// waiting, a read that sends no entry and writes nothing, and appends,
// if pending, only behind those that do: the append script checks again,
// atomically, so a call drained in between is answered "not appended" as
// if the check had come after the drain. Calls this instance lately found
// with entries waiting (waitingHints) skip the question.
func (q *Queue) AppendAll(ctx context.Context, entries []*queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	if !opts.IfPending || len(entries) == 0 {
		return q.appendAll(ctx, entries, opts)
	}
	if len(entries) == 1 && q.batcher != nil && !q.hints.has(entries[0].CallLogID) {
		return q.checkOne(ctx, entries[0], opts)
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.CallLogID
	}
	nothing, err := q.NothingWaiting(ctx, ids)
	if err != nil {
		results := make([]queue.AppendResult, len(entries))
		for i := range results {
			results[i] = queue.AppendResult{Err: err, Unwritten: true}
		}
		return results
	}
	return queue.AppendSome(entries, nothing, func(some []*queue.Entry) []queue.AppendResult {
		return q.appendAll(ctx, some, opts)
	})
}

// oneCheck is what the ordering check of a postback of one call needs, in
// one allocation: the most common postback, whose slices, closures and
// command were nine allocations of their own.
type oneCheck struct {
	result  [1]queue.AppendResult
	command [1]redisbatch.Command
	args    [2]any
}

// checkOne is AppendAll with IfPending for one entry of a call not hinted
// waiting, through the batcher: the same question and answers.
func (q *Queue) checkOne(ctx context.Context, e *queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	c := new(oneCheck)
	c.args = [2]any{"llen", q.listKey(e.CallLogID)}
	c.command[0].Args = c.args[:]
	q.batcher.RunAll(ctx, c.command[:])
	nothing, err := q.nothingWaits(e.CallLogID, c.command[0].Val, c.command[0].Err)
	switch {
	case err != nil:
		c.result[0] = queue.AppendResult{Err: err, Unwritten: true}
	case !nothing:
		return q.appendAll(ctx, []*queue.Entry{e}, opts)
	}
	return c.result[:]
}

// nothingWaits reads the answer to the ordering check's LLEN of a call:
// true when no entry waits. A call found waiting is hinted, so that its
// next append goes straight to the script.
func (q *Queue) nothingWaits(callLogID string, reply any, err error) (bool, error) {
	n, err := asInt(reply, err)
	if err != nil {
		return false, fmt.Errorf("redisqueue: ordering check of call %q: %w", callLogID, err)
	}
	if n > 0 {
		q.hints.add(callLogID)
	}
	return n == 0, nil
}

// NothingWaiting asks, in one round trip through the batcher when there is
// one, how many entries wait for each call; calls lately found waiting
// (waitingHints) are not asked and answered false.
func (q *Queue) NothingWaiting(ctx context.Context, callLogIDs []string) ([]bool, error) {
	return q.AskNothingWaiting(ctx, callLogIDs)()
}

// AskNothingWaiting implements queue.NothingWaiter: the question is in
// the batcher's queue when it returns.
func (q *Queue) AskNothingWaiting(ctx context.Context, callLogIDs []string) func() ([]bool, error) {
	nothing := make([]bool, len(callLogIDs))
	var asked []int
	for i, id := range callLogIDs {
		if !q.hints.has(id) {
			asked = append(asked, i)
		}
	}
	if len(asked) == 0 {
		return func() ([]bool, error) { return nothing, nil }
	}
	waiting, wait := q.startAll(ctx, len(asked), func(k int) []any {
		return []any{"llen", q.listKey(callLogIDs[asked[k]])}
	})
	return func() ([]bool, error) {
		wait()
		for k, r := range waiting {
			none, err := q.nothingWaits(callLogIDs[asked[k]], r.Val, r.Err)
			if err != nil {
				return nil, err
			}
			nothing[asked[k]] = none
		}
		return nothing, nil
	}
}

func (q *Queue) appendAll(ctx context.Context, entries []*queue.Entry, opts queue.AppendOptions) []queue.AppendResult {
	results := make([]queue.AppendResult, len(entries))
	if len(entries) == 0 {
		return results
	}
	if !opts.IfPending {
		// Rule 1 of index.go: indexed before the entry is stored.
		if err := q.indexAll(ctx, entries, opts.Due); err != nil {
			for i, e := range entries {
				results[i].Err = fmt.Errorf("redisqueue: append to call %q: %w", e.CallLogID, err)
			}
			return results
		}
	}
	onlyBehind := "0"
	if opts.IfPending {
		onlyBehind = "1"
	}
	var notAfter int64
	if !opts.NotAfter.IsZero() {
		notAfter = opts.NotAfter.UnixMilli()
	}
	replies := q.runAll(ctx, appendScript, len(entries), func(i int) ([]string, []any) {
		e := entries[i]
		keys := q.keysOf(e.CallLogID)
		return []string{keys.list, keys.meta}, []any{onlyBehind, entryTail(e), e.UpdateID, opts.MaxPending, notAfter, counterRetention.Milliseconds()}
	})
	var appended []*queue.Entry
	var deltas []countDelta
	for i, r := range replies {
		e := entries[i]
		reply, err := r.Val, r.Err
		if err == nil {
			var d countDelta
			if reply, d, err = splitCounted(e.CallLogID, reply); err == nil && d.changed() {
				deltas = append(deltas, d)
			}
		}
		switch v := reply.(type) {
		case nil:
			if err != nil && !errors.Is(err, redis.Nil) {
				results[i].Err = fmt.Errorf("redisqueue: append to call %q: %w", e.CallLogID, err)
			} else {
				q.hints.remove(e.CallLogID) // nothing waits any more
			}
		case string:
			e.ID = v
			results[i].Appended = true
			appended = append(appended, e)
			q.hints.add(e.CallLogID)
		case int64:
			if v == -1 {
				results[i].Err = queue.ErrTooManyPending
			} else {
				results[i].Err = fmt.Errorf("redisqueue: append to call %q: %w", e.CallLogID, errSettled)
			}
		default:
			results[i].Err = fmt.Errorf("redisqueue: append to call %q: unexpected reply %v", e.CallLogID, reply)
		}
	}
	// The entries are stored, so the appends succeeded even if these fail:
	// the calls are indexed already (index.go, rule 1), and a lost
	// difference is corrected as counters.go says.
	_ = q.applyCounts(ctx, deltas)
	_ = q.indexAll(ctx, appended, opts.Due)
	return results
}

// errSettled is the answer to an append that Settle already declared not
// stored: its caller has given up on it.
var errSettled = errors.New("the update was declared not stored after an append without answer")

func (q *Queue) Settle(ctx context.Context, callLogID, updateID string) (bool, error) {
	keys := q.keysOf(callLogID)
	stored, err := settleScript.Run(ctx, q.client, []string{keys.list, keys.dead, keys.meta}, updateID, counterRetention.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("redisqueue: settle an append to call %q: %w", callLogID, err)
	}
	return stored == 1, nil
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

// WakeAll resets every call's attempt count and moves those in the due
// index to now, all in one pipeline. A call with entries waiting but no
// index member (index.go, what can remain) is put back in a second round
// trip, which only such calls cost.
func (q *Queue) WakeAll(ctx context.Context, callLogIDs []string, now time.Time) ([]bool, error) {
	if len(callLogIDs) == 0 {
		return nil, nil
	}
	attempts := runPipelinedWith(ctx, q.client, setAttemptScript, len(callLogIDs), func(i int) ([]string, []any) {
		keys := q.keysOf(callLogIDs[i])
		return []string{keys.list, keys.meta}, []any{0}
	}, func(pipe redis.Pipeliner) []*redis.IntCmd {
		moved := make([]*redis.IntCmd, len(callLogIDs))
		for i, id := range callLogIDs {
			moved[i] = pipe.ZAddArgs(ctx, q.dueKeyOf(id), redis.ZAddArgs{XX: true, Ch: true, Members: []redis.Z{{Score: score(now), Member: id}}})
		}
		return moved
	})
	pending := make([]bool, len(callLogIDs))
	var lost []string
	for i, cmd := range attempts.scripts {
		n, err := cmd.Int()
		if err != nil {
			return nil, fmt.Errorf("redisqueue: wake call %q: %w", callLogIDs[i], err)
		}
		pending[i] = n == 1
		moved, err := attempts.extra[i].Result()
		if err != nil {
			return nil, fmt.Errorf("redisqueue: wake call %q: %w", callLogIDs[i], err)
		}
		if pending[i] && moved == 0 {
			lost = append(lost, callLogIDs[i])
		}
	}
	for _, id := range lost {
		if err := q.schedule(ctx, id, now); err != nil {
			return nil, fmt.Errorf("redisqueue: wake call %q: %w", id, err)
		}
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

// Due reads every shard of the due index in one pipeline and takes the
// calls due soonest. Calls found empty are skipped and leave the index
// (index.go, rule 3), so it reads again until limit or no more are due.
func (q *Queue) Due(ctx context.Context, now time.Time, limit int) ([]queue.Due, error) {
	var due []queue.Due
	seen := make(map[string]bool)
	for round := 0; len(due) < limit && round < 8; round++ {
		candidates, full, err := q.dueCandidates(ctx, now, limit+len(seen))
		if err != nil {
			return nil, fmt.Errorf("redisqueue: due calls: %w", err)
		}
		var ids []string
		for _, id := range candidates {
			if !seen[id] {
				ids = append(ids, id)
			}
		}
		if len(ids) == 0 {
			break
		}
		waiting, attempts, err := q.probe(ctx, ids)
		if err != nil {
			return nil, fmt.Errorf("redisqueue: due calls: %w", err)
		}
		dropped := 0
		for i, id := range ids {
			seen[id] = true
			switch {
			case waiting[i] == 0:
				if err := q.unindexIfEmpty(ctx, id, now); err != nil {
					return nil, fmt.Errorf("redisqueue: due calls: %w", err)
				}
				dropped++
			case len(due) < limit:
				due = append(due, queue.Due{CallLogID: id, Attempt: attempts[i]})
			}
		}
		// Another round only helps when calls were dropped from a shard
		// that had more to give.
		if dropped == 0 || !full {
			break
		}
	}
	return due, nil
}

// dueCandidates reads up to limit due calls from each shard, and from the
// index of earlier versions, whose members it moves into their shards; it
// returns them soonest first, and whether some key had more.
func (q *Queue) dueCandidates(ctx context.Context, now time.Time, limit int) ([]string, bool, error) {
	keys := append(q.dueKeys[:len(q.dueKeys):len(q.dueKeys)], q.legacyDueKey)
	pipe := q.client.Pipeline()
	cmds := make([]*redis.ZSliceCmd, len(keys))
	for i, key := range keys {
		cmds[i] = pipe.ZRangeByScoreWithScores(ctx, key, &redis.ZRangeBy{Min: "-inf", Max: maxScore(now), Count: int64(limit)})
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, false, err
	}
	var all []redis.Z
	full := false
	for i, cmd := range cmds {
		zs := cmd.Val()
		full = full || len(zs) == limit
		all = append(all, zs...)
		if keys[i] == q.legacyDueKey && len(zs) > 0 {
			if err := q.moveLegacy(ctx, zs); err != nil {
				return nil, false, err
			}
		}
	}
	full = full || len(all) > limit
	sort.SliceStable(all, func(i, j int) bool { return all[i].Score < all[j].Score })
	ids := make([]string, 0, min(len(all), limit))
	dup := make(map[string]bool, len(all))
	for _, z := range all {
		id, _ := z.Member.(string)
		if !dup[id] && len(ids) < limit {
			dup[id] = true
			ids = append(ids, id)
		}
	}
	return ids, full, nil
}

// moveLegacy moves members of the index of earlier versions into their
// shards, keeping an earlier next check already there.
func (q *Queue) moveLegacy(ctx context.Context, zs []redis.Z) error {
	pipe := q.client.Pipeline()
	for _, z := range zs {
		id, _ := z.Member.(string)
		pipe.ZAddArgs(ctx, q.dueKeyOf(id), redis.ZAddArgs{LT: true, Members: []redis.Z{z}})
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	members := make([]any, len(zs))
	for i, z := range zs {
		members[i] = z.Member
	}
	return q.client.ZRem(ctx, q.legacyDueKey, members...).Err()
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
	held, err := asInt(q.run(ctx, claimScript, []string{q.keysOf(callLogID).lease}, owner, ms))
	if err != nil {
		return false, fmt.Errorf("redisqueue: claim call %q: %w", callLogID, err)
	}
	return held == 1, nil
}

func (q *Queue) Release(ctx context.Context, callLogID, owner string) error {
	if _, err := q.run(ctx, releaseScript, []string{q.keysOf(callLogID).lease}, owner); err != nil {
		return fmt.Errorf("redisqueue: release call %q: %w", callLogID, err)
	}
	return nil
}

func (q *Queue) Head(ctx context.Context, callLogID string) (queue.Entry, bool, error) {
	reply, err := q.do(ctx, "lindex", q.keysOf(callLogID).list, 0)
	if errors.Is(err, redis.Nil) {
		return queue.Entry{}, false, nil
	}
	stored, ok := reply.(string)
	if err == nil && !ok {
		err = fmt.Errorf("unexpected reply %v", reply)
	}
	if err != nil {
		return queue.Entry{}, false, fmt.Errorf("redisqueue: head of call %q: %w", callLogID, err)
	}
	e, err := decodeEntry(callLogID, stored)
	if err != nil {
		return queue.Entry{}, false, err
	}
	return e, true, nil
}

func (q *Queue) Ack(ctx context.Context, callLogID, owner, id string) (queue.Entry, bool, error) {
	keys := q.keysOf(callLogID)
	reply, err := q.runCounted(ctx, ackScript, callLogID, []string{keys.lease, keys.list, keys.dead, keys.meta},
		owner, headPrefix(id), counterRetention.Milliseconds(), id)
	// {waiting, head}; a run that found its work done answers waiting alone.
	var next any
	if a, ok := reply.([]any); ok && len(a) == 2 {
		reply, next = a[0], a[1]
	}
	waiting, err := asInt(reply, err)
	if err != nil {
		return queue.Entry{}, false, fmt.Errorf("redisqueue: ack call %q: %w", callLogID, err)
	}
	switch {
	case waiting < 0:
		return queue.Entry{}, false, queue.ErrNotLeaseholder
	case waiting == 0:
		// The entry is gone, so the ack succeeded even if this fails: Due
		// drops a call it finds empty (index.go, rule 3).
		_ = q.unindexIfEmpty(ctx, callLogID, time.Now())
		return queue.Entry{}, false, nil
	}
	stored, ok := next.(string)
	if !ok {
		return q.Head(ctx, callLogID)
	}
	e, err := decodeEntry(callLogID, stored)
	if err != nil {
		return queue.Entry{}, false, err
	}
	return e, true, nil
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
	waiting, err := asInt(q.runCounted(ctx, buryScript, callLogID, []string{keys.lease, keys.list, keys.dead, keys.meta},
		owner, headPrefix(id), deadInfo(reason, at), id))
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
		if entries[i], err = decodeEntry(callLogID, s); err != nil {
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
		if dead[i], err = decodeDeadEntry(callLogID, s); err != nil {
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
	moved, err := asInt(q.runCounted(ctx, requeueScript, callLogID, []string{keys.list, keys.dead, keys.meta}))
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

var (
	_ queue.Queue         = (*Queue)(nil)
	_ queue.NothingWaiter = (*Queue)(nil)
)
