package queue

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// DeadLetters finds, replays and bounds dead letters across calls
// (docs/operations.md#dead-letters). Both queues implement it through an
// index kept beside the dead letters, so listing never scans every call.
type DeadLetters interface {
	// ListDead lists the calls with dead letters matching f, those with
	// the newest matching dead letter first, at most limit of them. cursor
	// is "" for the first page, else the Next of the page before.
	ListDead(ctx context.Context, f DeadFilter, cursor string, limit int) (DeadPage, error)

	// Revive moves the dead letters of a call named by letters[i].ID back
	// to the head of its list, in the order given, each stored as
	// letters[i] holds it (so an edited Patch goes with it), and schedules
	// the call at due. If one of them is no longer a dead letter of the
	// call, nothing moves and the error is ErrDeadChanged.
	Revive(ctx context.Context, callLogID string, letters []Entry, due time.Time) (int, error)

	// TrimDead drops a call's dead letters that died before before, then,
	// oldest first, those beyond the newest maxPerCall (0: no bound). It
	// returns how many it dropped for each of the two causes.
	TrimDead(ctx context.Context, callLogID string, before time.Time, maxPerCall int) (aged, over int, err error)

	// DeadBefore lists up to limit calls holding a dead letter that died
	// before before, for the periodic sweep of dead_max_age.
	DeadBefore(ctx context.Context, before time.Time, limit int) ([]string, error)
}

// ErrDeadChanged is returned by Revive when a dead letter it was to move
// is gone (requeued or dropped meanwhile).
var ErrDeadChanged = errors.New("queue: the dead letters of the call changed meanwhile")

// DeadFilter picks dead letters; a zero field matches every letter.
type DeadFilter struct {
	Webhook string
	Account string
	// Reason matches a letter whose reason contains it.
	Reason string
	// Since matches a letter that died at or after it.
	Since time.Time
}

// Match reports whether d passes the filter.
func (f DeadFilter) Match(d DeadEntry) bool {
	return (f.Webhook == "" || d.Webhook == f.Webhook) &&
		(f.Account == "" || d.Account == f.Account) &&
		(f.Reason == "" || strings.Contains(d.Reason, f.Reason)) &&
		(f.Since.IsZero() || !d.DeadAt.Before(f.Since))
}

// DeadCall sums up the dead letters of one call that match a filter.
type DeadCall struct {
	CallLogID string    `json:"call_log_id"`
	Count     int       `json:"count"`
	Oldest    time.Time `json:"oldest_dead_at"`
	Newest    time.Time `json:"newest_dead_at"`
	// Reasons are the distinct reasons, in the order the letters died.
	Reasons []string `json:"reasons"`
}

// DeadPage is one page of ListDead; Next is "" on the last page.
type DeadPage struct {
	Calls []DeadCall `json:"calls"`
	Next  string     `json:"next,omitempty"`
}

// SummarizeDead sums up the letters of one call that match f; ok is false
// when none does.
func SummarizeDead(callLogID string, letters []DeadEntry, f DeadFilter) (c DeadCall, ok bool) {
	c = DeadCall{CallLogID: callLogID, Reasons: []string{}}
	for _, d := range letters {
		if !f.Match(d) {
			continue
		}
		if c.Count == 0 || d.DeadAt.Before(c.Oldest) {
			c.Oldest = d.DeadAt
		}
		if c.Count == 0 || d.DeadAt.After(c.Newest) {
			c.Newest = d.DeadAt
		}
		c.Count++
		if !containsString(c.Reasons, d.Reason) {
			c.Reasons = append(c.Reasons, d.Reason)
		}
	}
	return c, c.Count > 0
}

// DeadRank is the position of a call in a listing: the time of its newest
// dead letter (of the webhook or account filtered on), in Unix µs, then
// its ID, both descending.
type DeadRank struct {
	Score     int64
	CallLogID string
}

// Before reports whether r is listed before o.
func (r DeadRank) Before(o DeadRank) bool {
	return r.Score > o.Score || r.Score == o.Score && r.CallLogID > o.CallLogID
}

// Cursor encodes the rank of the last call of a page: the next page
// starts after it.
func (r DeadRank) Cursor() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(r.Score, 10) + "\n" + r.CallLogID))
}

// ParseDeadCursor reads a cursor made by DeadRank.Cursor.
func ParseDeadCursor(cursor string) (DeadRank, error) {
	bad := errors.New("cursor is not one this API gave out")
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return DeadRank{}, bad
	}
	score, id, ok := strings.Cut(string(raw), "\n")
	n, err := strconv.ParseInt(score, 10, 64)
	if !ok || err != nil {
		return DeadRank{}, bad
	}
	return DeadRank{Score: n, CallLogID: id}, nil
}

// DeadRankOf is the rank of a call with letters under f: the newest of its
// letters of f's webhook and account, which is what each index orders by.
// ok is false when it has none.
func DeadRankOf(callLogID string, letters []DeadEntry, f DeadFilter) (r DeadRank, ok bool) {
	indexed := DeadFilter{Webhook: f.Webhook}
	if f.Webhook == "" {
		indexed.Account = f.Account
	}
	r.CallLogID = callLogID
	for _, d := range letters {
		if indexed.Match(d) {
			if us := d.DeadAt.UnixMicro(); !ok || us > r.Score {
				r.Score = us
			}
			ok = true
		}
	}
	return r, ok
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
