package postback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// Drainer applies queued updates once their calls complete (docs/operations.md#completion-and-dead-letters):
// when woken by call-completed, and by a periodic check with backoff.
type Drainer struct {
	Queue queue.Queue
	// Store is the drainer's own client: stopping the drainer aborts the
	// requests Store has in flight.
	Store *CallStore
	// Interval is the first backoff of a call found still live, and how
	// often the due index is polled.
	Interval time.Duration
	// MaxBackoff caps the backoff (operations#the-queue: 5 minutes).
	MaxBackoff time.Duration
	// MaxAge moves an update still waiting after it to the dead letters.
	MaxAge time.Duration
	// LeaseTTL is how long a claimed call stays ours without renewal (operations#several-instances).
	LeaseTTL time.Duration
	// Timeout bounds the call-store requests of one drained entry.
	Timeout time.Duration
	// Workers bounds the calls drained at once.
	Workers int
	Logger  *zap.Logger
	Now     func() time.Time
	// Dead bounds and reports the dead letters (drain_dead.go).
	Dead DeadLetterPolicy

	owner     string
	lastSweep time.Time
	wake      chan struct{}
	once      sync.Once
}

// Defaults of docs/operations.md#the-queue.
const (
	DefaultDrainInterval = 5 * time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultMaxAge        = 72 * time.Hour
	DefaultLeaseTTL      = 30 * time.Second
)

func (d *Drainer) init() {
	d.once.Do(func() {
		var b [8]byte
		_, _ = rand.Read(b[:])
		d.owner = hex.EncodeToString(b[:])
		d.wake = make(chan struct{}, 1)
		if d.Interval <= 0 {
			d.Interval = DefaultDrainInterval
		}
		if d.MaxBackoff <= 0 {
			d.MaxBackoff = DefaultMaxBackoff
		}
		if d.MaxAge <= 0 {
			d.MaxAge = DefaultMaxAge
		}
		if d.LeaseTTL <= 0 {
			d.LeaseTTL = DefaultLeaseTTL
		}
		if d.Timeout <= 0 {
			d.Timeout = 10 * time.Second
		}
		if d.Workers <= 0 {
			d.Workers = 8
		}
		if d.Logger == nil {
			d.Logger = zap.NewNop()
		}
		if d.Now == nil {
			d.Now = time.Now
		}
	})
}

// Wake asks for a check of the due index now, e.g. after call-completed.
func (d *Drainer) Wake() {
	d.init()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run checks the due index every poll interval, or when woken, until ctx
// is done. Leases held when it stops are released.
func (d *Drainer) Run(ctx context.Context) {
	d.init()
	// A stop must not wait on a call store that does not answer: the
	// requests in flight are cut, and their entries stay queued.
	defer context.AfterFunc(ctx, d.Store.Abort)()
	poll := min(d.Interval, time.Second)
	ticker := time.NewTicker(poll)
	defer ticker.Stop()
	for {
		d.drainDue(ctx)
		d.sweepDead(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-d.wake:
		}
	}
}

// drainDue drains every call that is due, a bounded number at a time.
func (d *Drainer) drainDue(ctx context.Context) {
	for ctx.Err() == nil {
		due, err := d.Queue.Due(ctx, d.Now(), d.Workers*4)
		if err != nil {
			d.Logger.Warn("queue unavailable for the periodic check", zap.Error(err))
			return
		}
		if len(due) == 0 {
			return
		}
		var wg sync.WaitGroup
		var claimed atomic.Int32
		sem := make(chan struct{}, d.Workers)
		for _, c := range due {
			sem <- struct{}{}
			wg.Add(1)
			go func(c queue.Due) {
				defer func() { <-sem; wg.Done() }()
				if d.DrainCall(ctx, c.CallLogID, c.Attempt) {
					claimed.Add(1)
				}
			}(c)
		}
		wg.Wait()
		// Calls that other instances hold stay due: without a claim in
		// this batch, asking again now would only spin.
		if len(due) < d.Workers*4 || claimed.Load() == 0 {
			return
		}
	}
}

// DrainCall applies a call's waiting updates in order under its lease,
// removing each only after the call store accepted it (operations#completion-and-dead-letters, operations#several-instances). It
// reports whether it held the lease: false when another instance does.
func (d *Drainer) DrainCall(ctx context.Context, callLogID string, attempt int) bool {
	d.init()
	log := d.Logger.With(zap.String("call_log_id", callLogID))
	ok, err := d.Queue.Claim(ctx, callLogID, d.owner, d.LeaseTTL)
	if err != nil || !ok {
		return false
	}
	// The lease goes back even when ctx ended: a graceful stop frees its
	// calls for other instances at once (operations#several-instances).
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = d.Queue.Release(rctx, callLogID, d.owner)
	}()
	leaseUntil := time.Now().Add(d.LeaseTTL)
	for ctx.Err() == nil {
		// Renew while a third of the lease is left, before the next send.
		if time.Until(leaseUntil) < d.LeaseTTL/3 {
			if ok, err := d.Queue.Claim(ctx, callLogID, d.owner, d.LeaseTTL); err != nil || !ok {
				return true
			}
			leaseUntil = time.Now().Add(d.LeaseTTL)
		}
		e, ok, err := d.Queue.Head(ctx, callLogID)
		if err != nil || !ok {
			return true
		}
		now := d.Now()
		if now.Sub(e.AcceptedAt) > d.MaxAge {
			if !d.bury(ctx, log, e, "max_age: still waiting after "+d.MaxAge.String(), now) {
				return true
			}
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, d.Timeout)
		out := d.Store.Patch(sctx, Target{Account: e.Account, Webhook: e.Webhook, RequestID: e.RequestID}, callLogID, e.Patch)
		cancel()
		switch out.Class {
		case Applied:
			if err := d.Queue.Ack(ctx, callLogID, d.owner, e.ID); err != nil {
				log.Warn("could not remove an applied update; it will be sent again", zap.Error(err))
				return true
			}
			log.Debug("queued update applied", zap.String("entry", e.ID), zap.String("request_id", e.RequestID))
		case NotFound, Rejected:
			if !d.bury(ctx, log, e, out.Class.Code()+": "+out.Message, now) {
				return true
			}
		default:
			// Still live, or the call store is unwell: check again later.
			next := d.Interval << min(attempt, 16)
			if next > d.MaxBackoff || next <= 0 {
				next = d.MaxBackoff
			}
			if err := d.Queue.Schedule(ctx, callLogID, now.Add(next), attempt+1); err != nil {
				log.Warn("could not reschedule a waiting call", zap.Error(err))
			}
			return true
		}
	}
	return true
}

// bury moves e to the dead letters and reports whether it did.
func (d *Drainer) bury(ctx context.Context, log *zap.Logger, e queue.Entry, reason string, now time.Time) bool {
	if err := d.Queue.Bury(ctx, e.CallLogID, d.owner, e.ID, reason, now); err != nil {
		log.Warn("could not move an update to the dead letters", zap.Error(err))
		return false
	}
	d.buried(ctx, log, e, reason, now)
	log.Warn("queued update moved to the dead letters", zap.String("entry", e.ID), zap.String("request_id", e.RequestID), zap.String("reason", reason))
	return true
}
