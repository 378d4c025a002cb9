package postback

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// DeadLetterPolicy bounds the dead letters and reports them
// (docs/operations.md#dead-letters).
type DeadLetterPolicy struct {
	// MaxAge drops a dead letter this long after it died.
	MaxAge time.Duration
	// MaxPerCall keeps at most this many dead letters per call, dropping
	// the oldest first.
	MaxPerCall int
	// OnBury, if set, is called for each update moved to the dead letters.
	OnBury func(queue.DeadEntry)
	// OnDrop, if set, is called with how many dead letters were dropped
	// and why: "max_age" or "max_per_call".
	OnDrop func(cause string, n int)
}

// Defaults of docs/operations.md#dead-letters.
const (
	DefaultDeadMaxAge     = 30 * 24 * time.Hour
	DefaultDeadMaxPerCall = 1000
	// deadSweepEvery is how often the drainer looks for dead letters past
	// MaxAge in calls that had no new one since.
	deadSweepEvery = time.Minute
	deadSweepBatch = 100
)

func (p *DeadLetterPolicy) maxAge() time.Duration {
	if p.MaxAge <= 0 {
		return DefaultDeadMaxAge
	}
	return p.MaxAge
}

func (p *DeadLetterPolicy) maxPerCall() int {
	if p.MaxPerCall <= 0 {
		return DefaultDeadMaxPerCall
	}
	return p.MaxPerCall
}

// buried reports a dead letter and trims its call to the bounds.
func (d *Drainer) buried(ctx context.Context, log *zap.Logger, e queue.Entry, reason string, at time.Time) {
	if d.Dead.OnBury != nil {
		d.Dead.OnBury(queue.DeadEntry{Entry: e, Reason: reason, DeadAt: at})
	}
	d.trimDead(ctx, log, e.CallLogID, at)
}

// trimDead drops a call's dead letters past the bounds, counted.
func (d *Drainer) trimDead(ctx context.Context, log *zap.Logger, callLogID string, now time.Time) {
	aged, over, err := d.Queue.TrimDead(ctx, callLogID, now.Add(-d.Dead.maxAge()), d.Dead.maxPerCall())
	if err != nil {
		log.Warn("could not trim the dead letters of a call", zap.String("call_log_id", callLogID), zap.Error(err))
		return
	}
	for cause, n := range map[string]int{"max_age": aged, "max_per_call": over} {
		if n > 0 {
			log.Info("dead letters dropped", zap.String("call_log_id", callLogID), zap.String("cause", cause), zap.Int("count", n))
			if d.Dead.OnDrop != nil {
				d.Dead.OnDrop(cause, n)
			}
		}
	}
}

// sweepDead drops the dead letters past MaxAge of calls that had no new
// one since, at most once per deadSweepEvery.
func (d *Drainer) sweepDead(ctx context.Context) {
	now := d.Now()
	if now.Sub(d.lastSweep) < deadSweepEvery {
		return
	}
	d.lastSweep = now
	cutoff := now.Add(-d.Dead.maxAge())
	// Bounded, so a call whose index entry cannot be fixed cannot hold the loop.
	for range 100 {
		ids, err := d.Queue.DeadBefore(ctx, cutoff, deadSweepBatch)
		if err != nil {
			d.Logger.Warn("queue unavailable for the sweep of old dead letters", zap.Error(err))
			return
		}
		for _, id := range ids {
			d.trimDead(ctx, d.Logger, id, now)
		}
		if len(ids) < deadSweepBatch {
			return
		}
	}
}
