package postback

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// Drainer applies queued updates once their calls complete (docs/operations.md#completion-and-dead-letters):
// when woken by call-completed, and by a periodic check with backoff.
type Drainer struct {
	Queue queue.Queue
	// Store sends the queued updates; on a stop, the attempts it has in
	// flight finish within its per-attempt timeout.
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
// is done. Then it takes no new work, lets the call-store attempts in
// flight finish (each bounded by the call store's per-attempt timeout),
// records their outcomes and releases its leases before it returns, so
// that a reload sends nothing twice (operations#the-queue-in-production).
func (d *Drainer) Run(ctx context.Context) {
	d.init()
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
			if ctx.Err() == nil {
				d.Logger.Warn("queue unavailable for the periodic check", zap.Error(err))
			}
			return
		}
		if len(due) == 0 {
			return
		}
		var claimed atomic.Int32
		var g errgroup.Group
		g.SetLimit(d.Workers)
		for _, c := range due {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if d.DrainCall(ctx, c.CallLogID, c.Attempt) {
					claimed.Add(1)
				}
				return nil
			})
		}
		_ = g.Wait()
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
//
// When ctx ends, DrainCall sends nothing more, but the send in flight
// finishes and its outcome is recorded.
func (d *Drainer) DrainCall(ctx context.Context, callLogID string, attempt int) bool {
	d.init()
	log := d.Logger.With(zap.String("call_log_id", callLogID))
	claimedAt := time.Now()
	ok, err := d.Queue.Claim(ctx, callLogID, d.owner, d.LeaseTTL)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("could not claim a waiting call; it stays due", zap.Error(err))
		}
		return false
	}
	if !ok {
		return false
	}
	// What follows a send is recorded even when ctx ended: the update was
	// sent, and leaving it queued would send it again.
	after := context.WithoutCancel(ctx)
	// The lease goes back even when ctx ended: a graceful stop frees its
	// calls for other instances at once (operations#several-instances).
	defer func() {
		rctx, cancel := context.WithTimeout(after, time.Second)
		defer cancel()
		if err := d.Queue.Release(rctx, callLogID, d.owner); err != nil {
			log.Warn("could not release a call's lease; another instance takes the call when it expires", zap.Duration("lease_ttl", d.LeaseTTL), zap.Error(err))
		}
	}()
	leaseUntil := claimedAt.Add(d.LeaseTTL)
	// next is the head that the last Ack returned, read in the same step:
	// no Head, and no round trip, before the next update.
	var next *queue.Entry
	for ctx.Err() == nil {
		// Each send starts with at least two thirds of the lease left, and
		// a send takes at most a third (the checked lease_ttl), so it ends
		// under the lease even if every renewal in flight fails.
		if time.Until(leaseUntil) < d.LeaseTTL*2/3 {
			renewedAt := time.Now()
			if ok, err := d.Queue.Claim(ctx, callLogID, d.owner, d.LeaseTTL); err != nil || !ok {
				if ctx.Err() == nil {
					log.Warn("could not renew a call's lease; nothing further is sent for it", zap.Bool("taken_by_another", err == nil), zap.Error(err))
				}
				return true
			}
			leaseUntil = renewedAt.Add(d.LeaseTTL)
		}
		e, ok, err := d.head(ctx, callLogID, next)
		if err != nil || !ok {
			return true
		}
		next = nil
		now := d.Now()
		if now.Sub(e.AcceptedAt) > d.MaxAge {
			if !d.bury(after, log, e, "max_age: still waiting after "+d.MaxAge.String(), now) {
				return true
			}
			continue
		}
		out, until, held := d.send(ctx, log, e, leaseUntil)
		leaseUntil = until
		switch out.Class {
		case Applied:
			n, more, err := d.Queue.Ack(after, callLogID, d.owner, e.ID)
			if err != nil {
				log.Warn("could not remove an applied update; it will be sent again", zap.Error(err))
				return true
			}
			log.Debug("queued update applied", zap.String("entry", e.ID), zap.String("request_id", e.RequestID))
			if !more {
				return true
			}
			next = &n
		case NotFound, Rejected:
			if !d.bury(after, log, e, out.Class.Code()+": "+out.Message, now) {
				return true
			}
		default:
			// Still live, or the call store is unwell: check again later;
			// cut short by a stop, check again at once, elsewhere.
			next, tries := d.Interval<<min(attempt, 16), attempt+1
			if next > d.MaxBackoff || next <= 0 {
				next = d.MaxBackoff
			}
			if ctx.Err() != nil {
				next, tries = 0, attempt
			}
			if err := d.Queue.Schedule(after, callLogID, now.Add(next), tries); err != nil {
				log.Warn("could not reschedule a waiting call", zap.Error(err))
			}
			return true
		}
		if !held {
			return true
		}
	}
	return true
}

// head is the call's head entry: next when the last Ack returned it, else
// read from the queue.
func (d *Drainer) head(ctx context.Context, callLogID string, next *queue.Entry) (queue.Entry, bool, error) {
	if next != nil {
		return *next, true, nil
	}
	return d.Queue.Head(ctx, callLogID)
}

// send applies entry e while keeping the call's lease, which is ours until
// leaseUntil (measured before the claim that set it, so never later than
// Redis's own expiry). The background renewal follows the same rule as
// DrainCall between sends: renew once less than two thirds of the lease
// are left (operations#the-queue-in-production). It is timed from the
// lease, not from when the request or its goroutine started, so a send that
// starts with only two thirds left still has a third of the lease for its
// first renewal to land; a renewal without an answer is tried again until
// the lease ends, and only a lease known to be lost (another owner, or its
// end passed unrenewed) counts as lost.
//
// It returns the lease's end as now known; held is false when the lease
// was lost: then the request is cut short and nothing further may be sent
// for the call, which another instance may hold by now.
func (d *Drainer) send(ctx context.Context, log *zap.Logger, e queue.Entry, leaseUntil time.Time) (out Outcome, until time.Time, held bool) {
	// A stop lets the attempt in flight finish and starts no other: cut,
	// it may have been applied unseen and would be sent again after a
	// reload. A lost lease cuts it.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.Timeout)
	defer cancel()
	until = leaseUntil
	lost := false
	stop := make(chan struct{})
	done := make(chan struct{})
	// A renewal still waiting for Redis when the request ends is dropped:
	// the lease known so far covers what follows.
	renewals, dropRenewal := context.WithCancel(context.WithoutCancel(ctx))
	defer dropRenewal()
	go func() {
		defer close(done)
		timer := time.NewTimer(time.Until(until) - d.LeaseTTL*2/3)
		defer timer.Stop()
		for {
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			renewedAt := time.Now()
			rctx, rcancel := context.WithDeadline(renewals, until)
			ok, err := d.Queue.Claim(rctx, e.CallLogID, d.owner, d.LeaseTTL)
			rcancel()
			switch {
			case renewals.Err() != nil:
				return
			case err == nil && ok:
				until = renewedAt.Add(d.LeaseTTL)
				timer.Reset(time.Until(until) - d.LeaseTTL*2/3)
				continue
			case err != nil && time.Now().Before(until):
				// No answer yet, and the lease still runs: ask again soon.
				timer.Reset(min(d.LeaseTTL/30, 100*time.Millisecond))
				continue
			}
			lost = true
			cancel()
			log.Warn("lost a call's lease while sending; nothing further is sent for it", zap.Bool("taken_by_another", err == nil), zap.Error(err))
			return
		}
	}()
	// The trace of the postback that queued the update goes with it (operations#call-store-transport).
	out = d.Store.PatchUntil(sctx, ctx.Done(), Target{Account: e.Account, Webhook: e.Webhook, RequestID: e.RequestID, TraceParent: e.TraceParent, TraceState: e.TraceState}, e.CallLogID, e.Patch)
	close(stop)
	dropRenewal()
	<-done
	return out, until, !lost
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
