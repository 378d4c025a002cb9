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

// The dead-letter index (docs/operations.md#dead-letters), for the default
// prefix:
//
//	postback:{dead}:newest          ZSET  calls with dead letters, scored by the newest (Unix µs, exact in a float)
//	postback:{dead}:oldest          ZSET  the same calls, scored by the oldest
//	postback:{dead}:webhook:<name>  ZSET  calls with dead letters of the webhook, by its newest
//	postback:{dead}:account:<id>    ZSET  calls with dead letters of the account, by its newest
//
// All in one slot ({dead}), so one script updates them together. Like the
// due index (index.go) they cannot change atomically with a call's keys, so
// the same rules keep them right: a bury indexes its letter before and
// after its script; a requeue or trim recounts the call from its letters
// after its script; readers trust the letters, not the index, and skip a
// call without matching letters. A recount racing a bury of the same call
// can leave that call's score low until its next bury, requeue or trim.

type deadIndex struct{ prefix string }

func (d deadIndex) newest() string                { return d.prefix + "{dead}:newest" }
func (d deadIndex) oldest() string                { return d.prefix + "{dead}:oldest" }
func (d deadIndex) webhook(name string) string    { return d.prefix + "{dead}:webhook:" + name }
func (d deadIndex) account(account string) string { return d.prefix + "{dead}:account:" + account }

// keysFor are the keys a letter of webhook and account is indexed in.
func (d deadIndex) keysFor(webhook, account string) []string {
	keys := []string{d.newest(), d.oldest(), d.webhook(webhook)}
	if account != "" {
		keys = append(keys, d.account(account))
	}
	return keys
}

// indexDeadHead indexes the head entry of a call if it is entry id, about
// to be buried at at, and returns it so it can be indexed again after the
// bury (rule 1).
func (q *Queue) indexDeadHead(ctx context.Context, callLogID, id string, at time.Time) (queue.Entry, error) {
	e, ok, err := q.Head(ctx, callLogID)
	if err != nil || !ok || e.ID != id {
		return queue.Entry{}, err
	}
	return e, q.indexDead(ctx, callLogID, e, at)
}

// indexDead records a dead letter of e, dead at at.
func (q *Queue) indexDead(ctx context.Context, callLogID string, e queue.Entry, at time.Time) error {
	d := deadIndex{q.prefix}
	return deadIndexAddScript.Run(ctx, q.client, d.keysFor(e.Webhook, e.Account), callLogID, at.UnixMicro()).Err()
}

// reindexDead recounts a call's place in the dead index from its letters,
// after they changed; before are the letters it had, so the keys it leaves
// are known.
func (q *Queue) reindexDead(ctx context.Context, callLogID string, before []queue.DeadEntry) error {
	now, err := q.Dead(ctx, callLogID)
	if err != nil {
		return err
	}
	d := deadIndex{q.prefix}
	scores := map[string]int64{}
	var keys []string
	note := func(key string, ms int64, newest bool) {
		old, seen := scores[key]
		if !seen {
			keys = append(keys, key)
		}
		if !seen || (newest && ms > old) || (!newest && ms < old) {
			scores[key] = ms
		}
	}
	for _, l := range now {
		us := l.DeadAt.UnixMicro()
		note(d.newest(), us, true)
		note(d.oldest(), us, false)
		for _, k := range d.keysFor(l.Webhook, l.Account)[2:] {
			note(k, us, true)
		}
	}
	args := []any{callLogID}
	for _, k := range keys {
		args = append(args, scores[k])
	}
	gone := []string{d.newest(), d.oldest()}
	for _, l := range before {
		gone = append(gone, d.keysFor(l.Webhook, l.Account)[2:]...)
	}
	for _, k := range gone {
		if _, kept := scores[k]; !kept {
			scores[k] = -1
			keys = append(keys, k)
			args = append(args, "")
		}
	}
	return deadIndexSetScript.Run(ctx, q.client, keys, args...).Err()
}

func (q *Queue) ListDead(ctx context.Context, f queue.DeadFilter, cursor string, limit int) (queue.DeadPage, error) {
	page := queue.DeadPage{Calls: []queue.DeadCall{}}
	d := deadIndex{q.prefix}
	key := d.newest()
	switch {
	case f.Webhook != "":
		key = d.webhook(f.Webhook)
	case f.Account != "":
		key = d.account(f.Account)
	}
	lowest, highest := "-inf", "+inf"
	if !f.Since.IsZero() {
		lowest = strconv.FormatInt(f.Since.UnixMicro(), 10)
	}
	var after *queue.DeadRank
	if cursor != "" {
		r, err := queue.ParseDeadCursor(cursor)
		if err != nil {
			return page, err
		}
		after = &r
		highest = strconv.FormatInt(r.Score, 10)
	}
	// Filters no index answers may skip most calls: each chunk read is
	// twice the one before, so a sparse match costs few round trips.
	chunk := int64(max(limit, 64))
	for offset := int64(0); ; {
		ranked, err := q.client.ZRangeArgsWithScores(ctx, redis.ZRangeArgs{
			Key: key, Start: highest, Stop: lowest, ByScore: true, Rev: true, Offset: offset, Count: chunk,
		}).Result()
		if err != nil {
			return page, fmt.Errorf("redisqueue: list dead letters: %w", err)
		}
		var ranks []queue.DeadRank
		for _, z := range ranked {
			r := queue.DeadRank{Score: int64(z.Score), CallLogID: z.Member.(string)}
			if after == nil || after.Before(r) {
				ranks = append(ranks, r)
			}
		}
		// The next chunk starts after this one, less the members taken out.
		offset += int64(len(ranked))
		letters, err := q.deadOf(ctx, ranks)
		if err != nil {
			return page, fmt.Errorf("redisqueue: list dead letters: %w", err)
		}
		for i, r := range ranks {
			if len(letters[i]) == 0 {
				// A stale member (rule 3): take it out; a bury under way
				// puts it back after its script.
				if deadIndexSetScript.Run(ctx, q.client, []string{key, d.newest(), d.oldest()}, r.CallLogID, "", "", "").Err() == nil {
					offset--
				}
				continue
			}
			if c, ok := queue.SummarizeDead(r.CallLogID, letters[i], f); ok {
				page.Calls = append(page.Calls, c)
			}
			if len(page.Calls) == limit {
				page.Next = r.Cursor()
				return page, nil
			}
		}
		if int64(len(ranked)) < chunk {
			return page, nil
		}
		chunk = min(2*chunk, 4096)
	}
}

// deadOf reads the dead letters of each call, in one round trip.
func (q *Queue) deadOf(ctx context.Context, ranks []queue.DeadRank) ([][]queue.DeadEntry, error) {
	if len(ranks) == 0 {
		return nil, nil
	}
	pipe := q.client.Pipeline()
	cmds := make([]*redis.StringSliceCmd, len(ranks))
	for i, r := range ranks {
		cmds[i] = pipe.LRange(ctx, q.keysOf(r.CallLogID).dead, 0, -1)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	out := make([][]queue.DeadEntry, len(ranks))
	for i, cmd := range cmds {
		for _, s := range cmd.Val() {
			l, err := decodeDeadEntry(ranks[i].CallLogID, s)
			if err != nil {
				return nil, err
			}
			out[i] = append(out[i], l)
		}
	}
	return out, nil
}

func (q *Queue) Revive(ctx context.Context, callLogID string, letters []queue.Entry, due time.Time) (int, error) {
	if len(letters) == 0 {
		return 0, nil
	}
	before, err := q.Dead(ctx, callLogID)
	if err != nil {
		return 0, fmt.Errorf("redisqueue: requeue dead letters of call %q: %w", callLogID, err)
	}
	args := make([]any, 0, 2*len(letters))
	for i := range letters {
		l := &letters[i]
		replacement := ""
		if !l.EditedAt.IsZero() {
			replacement = headPrefix(l.ID) + string(entryTail(l))
		}
		args = append(args, headPrefix(l.ID), replacement)
	}
	if err := q.index(ctx, callLogID, due); err != nil {
		return 0, fmt.Errorf("redisqueue: requeue dead letters of call %q: %w", callLogID, err)
	}
	keys := q.keysOf(callLogID)
	moved, err := asInt(q.runCounted(ctx, reviveScript, callLogID, []string{keys.list, keys.dead, keys.meta}, args...))
	if err != nil {
		return 0, fmt.Errorf("redisqueue: requeue dead letters of call %q: %w", callLogID, err)
	}
	if moved < 0 {
		return 0, queue.ErrDeadChanged
	}
	// Best effort, as in Requeue: readers trust the letters.
	_ = q.reindexDead(ctx, callLogID, before)
	_ = q.unlistDeadIfEmpty(ctx, callLogID)
	if err := q.schedule(ctx, callLogID, due); err != nil {
		return moved, fmt.Errorf("redisqueue: requeued %d entries of call %q but could not schedule it: %w", moved, callLogID, err)
	}
	return moved, nil
}

func (q *Queue) TrimDead(ctx context.Context, callLogID string, before time.Time, maxPerCall int) (aged, over int, err error) {
	keys := q.keysOf(callLogID)
	if trim, err := q.mayTrim(ctx, callLogID, before, maxPerCall); err != nil || !trim {
		return 0, 0, err
	}
	// A requeue between the read and the script makes it refuse; read again.
	for range 3 {
		stored, err := q.client.LRange(ctx, keys.dead, 0, -1).Result()
		if err != nil {
			return 0, 0, fmt.Errorf("redisqueue: trim dead letters of call %q: %w", callLogID, err)
		}
		letters := make([]queue.DeadEntry, len(stored))
		for i, s := range stored {
			if letters[i], err = decodeDeadEntry(callLogID, s); err != nil {
				return 0, 0, err
			}
		}
		aged, over = 0, 0
		for aged < len(letters) && letters[aged].DeadAt.Before(before) {
			aged++
		}
		if maxPerCall > 0 && len(letters)-aged > maxPerCall {
			over = len(letters) - aged - maxPerCall
		}
		n := aged + over
		if n == 0 {
			// Nothing to drop: the sweep found the call by a stale score.
			_ = q.reindexDead(ctx, callLogID, letters)
			return 0, 0, nil
		}
		got, err := asInt(q.runCounted(ctx, trimDeadScript, callLogID, []string{keys.dead, keys.list, keys.meta},
			n, stored[n-1], counterRetention.Milliseconds()))
		if err != nil {
			return 0, 0, fmt.Errorf("redisqueue: trim dead letters of call %q: %w", callLogID, err)
		}
		if got < 0 {
			continue
		}
		_ = q.reindexDead(ctx, callLogID, letters)
		_ = q.unlistDeadIfEmpty(ctx, callLogID)
		return aged, over, nil
	}
	return 0, 0, fmt.Errorf("redisqueue: trim dead letters of call %q: %w", callLogID, queue.ErrDeadChanged)
}

// mayTrim tells from the length and the oldest letter alone whether a call
// has dead letters to drop, so a bury below the bounds reads no list. When
// there are none it corrects a stale oldest score, which the sweep found
// the call by.
func (q *Queue) mayTrim(ctx context.Context, callLogID string, before time.Time, maxPerCall int) (bool, error) {
	keys := q.keysOf(callLogID)
	pipe := q.client.Pipeline()
	n := pipe.LLen(ctx, keys.dead)
	head := pipe.LIndex(ctx, keys.dead, 0)
	oldest := pipe.ZScore(ctx, deadIndex{q.prefix}.oldest(), callLogID)
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return false, fmt.Errorf("redisqueue: trim dead letters of call %q: %w", callLogID, err)
	}
	if n.Val() == 0 {
		if oldest.Err() == nil {
			_ = q.reindexDead(ctx, callLogID, nil)
		}
		return false, nil
	}
	if maxPerCall > 0 && n.Val() > int64(maxPerCall) {
		return true, nil
	}
	first, err := decodeDeadEntry(callLogID, head.Val())
	if err != nil {
		return false, err
	}
	if first.DeadAt.Before(before) {
		return true, nil
	}
	if oldest.Err() != nil || int64(oldest.Val()) != first.DeadAt.UnixMicro() {
		_ = q.reindexDead(ctx, callLogID, []queue.DeadEntry{first})
	}
	return false, nil
}

func (q *Queue) DeadBefore(ctx context.Context, before time.Time, limit int) ([]string, error) {
	ids, err := q.client.ZRangeByScore(ctx, deadIndex{q.prefix}.oldest(), &redis.ZRangeBy{
		Min: "-inf", Max: "(" + strconv.FormatInt(before.UnixMicro(), 10), Count: int64(limit),
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisqueue: dead letters before %s: %w", before.Format(time.RFC3339), err)
	}
	return ids, nil
}

var _ queue.DeadLetters = (*Queue)(nil)
