// Package idempotency remembers, per webhook and idempotency key, what a
// postback did, so that a partner's retry is answered from it rather than
// applied again (docs/partner-api.md#safe-retries).
//
// A key is held by at most one request at a time: Claim looks the key up and
// holds it in one step, Save stores the outcome and lets it go. A hold
// expires on its own, so a crashed instance does not keep a key forever.
//
// Memory is the single-instance implementation; Redis is shared by every
// instance that points at it. Both pass the suite in idempotencytest.
package idempotency

import (
	"context"
	"time"
)

// Key names one idempotency key of one webhook: keys are scoped to their
// webhook, so two webhooks may use the same key independently.
type Key struct {
	Webhook string
	Key     string
}

// Record is what the store keeps for a key.
type Record struct {
	// Fingerprint identifies the postback the key was first used for.
	Fingerprint string
	// Outcome is the caller's encoding of what each call became; the store
	// does not read it.
	Outcome []byte
	// Final says that no call of Outcome may be attempted again: a Claim of
	// the key is then answered from the record without holding the key.
	Final bool
}

// State is what Claim found.
type State uint8

const (
	// New: the key was not seen in its window; the caller holds it now.
	New State = iota
	// Retry: a record with the same fingerprint and calls to attempt
	// again; the caller holds the key now.
	Retry
	// Done: a final record with the same fingerprint; nothing is held.
	Done
	// Reused: the key was first used for another fingerprint; nothing is
	// held.
	Reused
	// InUse: another request holds the key; nothing is held.
	InUse
)

func (s State) String() string {
	switch s {
	case New:
		return "new"
	case Retry:
		return "retry"
	case Done:
		return "done"
	case Reused:
		return "reused"
	case InUse:
		return "in_use"
	}
	return "unknown"
}

// Claim is the answer of Store.Claim.
type Claim struct {
	State State
	// Outcome is the stored record's, for Retry and Done.
	Outcome []byte
}

// Store is the idempotency store. Every method is safe for concurrent use,
// also across processes for implementations that say so.
type Store interface {
	// Claim looks k up for a request whose postback has fingerprint and, unless
	// the answer is Done, Reused or InUse, holds k for token until hold has
	// passed. A Claim by the token that already holds k holds it again, so a
	// client's retry of the command changes nothing.
	Claim(ctx context.Context, k Key, fingerprint, token string, hold time.Duration) (Claim, error)

	// Save stores rec under k and lets go of token's hold. The record
	// expires window after k was first saved; a later Save keeps that
	// expiry.
	Save(ctx context.Context, k Key, token string, rec Record, window time.Duration) error

	// Release lets go of token's hold on k without storing anything.
	Release(ctx context.Context, k Key, token string) error
}
