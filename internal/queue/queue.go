// Package queue holds the updates of calls still in progress (docs/operations.md#the-queue): an
// ordered list per call, a due index for the periodic check, a lease so one
// drainer at a time works a call, and dead letters kept for inspection.
//
// Memory is the single-instance implementation; package redisqueue is the
// durable one shared by many instances. Both pass the suite in queuetest.
package queue

import (
	"context"
	"errors"
	"time"
)

// Entry is one accepted update waiting for its call to complete.
type Entry struct {
	// ID is assigned by the queue on Append; IDs of one call increase in
	// the order the entries were accepted.
	ID string
	// UpdateID names the accepted update. The edge makes it before the
	// first append attempt, so an append that runs twice (a second attempt
	// after a timeout) stores the update once, and one without answer can
	// be settled (operations#delivery-guarantee).
	// Empty: no such guard.
	UpdateID  string
	CallLogID string
	// Account is sent upstream as X-Account-Id when the entry is applied.
	Account    string
	Webhook    string
	RequestID  string
	AcceptedAt time.Time
	// Patch is the JSON body of the PATCH of docs/operations.md#updating-a-call, ready to send.
	Patch []byte
	// TraceParent and TraceState are the W3C trace context of the postback
	// that queued the update, sent with its later PATCH (docs/operations.md#call-store-transport).
	TraceParent string
	TraceState  string
	// EditedAt and Edited record an operator's edit of a dead letter
	// before it was requeued (docs/operations.md#dead-letters): when, and
	// the fields set or deleted. Zero for an entry as the edge accepted it.
	EditedAt time.Time
	Edited   []string
}

// DeadEntry is an entry the drainer gave up on, with the reason.
type DeadEntry struct {
	Entry
	Reason string
	DeadAt time.Time
}

// Due is a call whose next check has come.
type Due struct {
	CallLogID string
	// Attempt counts the checks of this call that found it not yet
	// applicable; the drainer derives its backoff from it.
	Attempt int
}

// Stats counts what a queue holds.
type Stats struct {
	PendingCalls   int `json:"pending_calls"`
	PendingEntries int `json:"pending_entries"`
	DeadCalls      int `json:"dead_calls"`
	DeadEntries    int `json:"dead_entries"`
	// OldestPending is when the oldest update still waiting was accepted;
	// zero when none waits.
	OldestPending time.Time `json:"oldest_pending_at,omitzero"`
}

// ErrTooManyPending is returned by AppendAll for an entry whose call
// already holds the most entries allowed (operations#the-queue-in-production);
// nothing was stored.
var ErrTooManyPending = errors.New("queue: too many updates waiting for this call")

// AppendOptions are the settings of one AppendAll.
type AppendOptions struct {
	// IfPending appends only to calls that already have entries waiting,
	// atomically: the ordering rule of operations#order.
	IfPending bool
	// Due schedules a call's next check unless it is already scheduled.
	Due time.Time
	// MaxPending, when above zero, refuses an entry whose call already has
	// that many waiting, with ErrTooManyPending.
	MaxPending int
	// NotAfter, when set, is when the caller stops waiting for an answer:
	// an append that reaches the store later (a copy held up in a paused
	// server's socket) stores nothing, by the store's clock.
	NotAfter time.Time
}

// AppendResult is what became of one entry of an AppendAll.
type AppendResult struct {
	// Appended is false when IfPending found nothing waiting, or on error.
	Appended bool
	// Err is ErrTooManyPending, or a failure to reach the store: then the
	// entry may or may not be stored, which Settle decides, unless
	// Unwritten.
	Err error
	// Unwritten, beside a failure, says it came before anything that could
	// store the entry was sent (the read of an ordering check): the entry
	// is not stored, and no copy of a request can store it later.
	Unwritten bool
}

// AppendSome appends the entries whose ordering check found updates
// waiting (nothing[i] false), through appendAll, and puts each result at
// its entry's index; the others are neither appended nor in error.
func AppendSome(entries []*Entry, nothing []bool, appendAll func([]*Entry) []AppendResult) []AppendResult {
	results := make([]AppendResult, len(entries))
	var some []*Entry
	var at []int
	for i, none := range nothing {
		if !none {
			some, at = append(some, entries[i]), append(at, i)
		}
	}
	if len(some) > 0 {
		for k, r := range appendAll(some) {
			results[at[k]] = r
		}
	}
	return results
}

// ErrNotLeaseholder is returned by Ack and Bury when owner does not hold
// the call's lease (it expired and another drainer may have taken it), or
// when the head of the list is no longer the entry named.
var ErrNotLeaseholder = errors.New("queue: lease not held or entry not at head")

// NothingWaiter is a Queue that can tell, writing nothing, which calls
// have no entries waiting, so that a caller may ask beside other work
// (an idempotency key's hold) before it decides to append.
type NothingWaiter interface {
	// AskNothingWaiting sends the question and returns; answer waits for
	// it and reports, for each call, that none of its entries waited when
	// asked. False means the call has some, or may have: its update must
	// go through AppendAll with IfPending.
	AskNothingWaiting(ctx context.Context, callLogIDs []string) (answer func() ([]bool, error))
}

// Queue is the store of docs/operations.md#the-queue. Every method is safe for concurrent use,
// also across processes for implementations that say so.
type Queue interface {
	// Append adds e at the tail of its call's list, assigns e.ID, and
	// schedules the call's next check at due unless it is already
	// scheduled. With ifPending, it appends only when the call already has
	// entries waiting, atomically, and reports whether it did: this is the
	// ordering rule of operations#order.
	Append(ctx context.Context, e *Entry, ifPending bool, due time.Time) (appended bool, err error)

	// AppendAll appends each entry as Append does, bounded by
	// opts.MaxPending, in one round trip to the store where it allows.
	// results[i] is entries[i]'s. An entry whose UpdateID is stored already
	// is not stored again: its result is that of the first append.
	AppendAll(ctx context.Context, entries []*Entry, opts AppendOptions) (results []AppendResult)

	// Settle decides an append whose outcome is unknown (it failed to get
	// an answer): it reports whether the update updateID of the call is
	// stored, and when it is not, makes sure it never will be, so that a
	// late copy of the append changes nothing (operations#delivery-guarantee).
	Settle(ctx context.Context, callLogID, updateID string) (stored bool, err error)

	// Wake schedules a call with entries waiting for a check now, with its
	// attempt count reset (operations#completion-and-dead-letters). It reports whether the call has entries.
	Wake(ctx context.Context, callLogID string, now time.Time) (pending bool, err error)

	// WakeAll wakes many calls as Wake does, in one round trip to the store
	// where it allows (operations#the-queue-in-production); pending[i] is callLogIDs[i]'s.
	WakeAll(ctx context.Context, callLogIDs []string, now time.Time) (pending []bool, err error)

	// Due returns up to limit calls whose next check is at or before now.
	Due(ctx context.Context, now time.Time, limit int) ([]Due, error)

	// Schedule sets a waiting call's next check and its attempt count.
	Schedule(ctx context.Context, callLogID string, at time.Time, attempt int) error

	// Claim takes or renews the call's lease for owner until ttl from now.
	// It reports false when another owner holds an unexpired lease.
	Claim(ctx context.Context, callLogID, owner string, ttl time.Duration) (bool, error)

	// Release gives the lease up if owner holds it.
	Release(ctx context.Context, callLogID, owner string) error

	// Head returns the oldest waiting entry of the call; ok is false when
	// none waits.
	Head(ctx context.Context, callLogID string) (e Entry, ok bool, err error)

	// Ack removes entry id, which must be at the head, once the call store
	// accepted it, and returns the entry now at the head, as Head would, in
	// the same step: the drainer's next. A call whose list empties leaves
	// the due index.
	Ack(ctx context.Context, callLogID, owner, id string) (next Entry, ok bool, err error)

	// Bury moves entry id, which must be at the head, to the call's dead
	// letters with the reason.
	Bury(ctx context.Context, callLogID, owner, id, reason string, at time.Time) error

	// Pending lists the entries waiting for a call, oldest first.
	Pending(ctx context.Context, callLogID string) ([]Entry, error)

	// Dead lists a call's dead letters, oldest first.
	Dead(ctx context.Context, callLogID string) ([]DeadEntry, error)

	// Requeue moves a call's dead letters back to the head of its list, in
	// their order, and schedules the call at due. It returns how many moved.
	Requeue(ctx context.Context, callLogID string, due time.Time) (int, error)

	// Stats counts calls and entries waiting and dead.
	Stats(ctx context.Context) (Stats, error)

	DeadLetters
}
