package caddymodule

import (
	"errors"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/postback"
)

// DeadLetterEvent is the name of the Caddy event emitted for each update
// moved to the dead letters (docs/operations.md#dead-letters).
const DeadLetterEvent = "postback_dead_letter"

// provisionDeadLetters sets the drainer's bounds and reports of dead
// letters: the counters, and the event through Caddy's events app, as
// caddy-ratelimit emits its own, when the config has an events app.
func (a *App) provisionDeadLetters(ctx caddy.Context) error {
	if err := registerDeadMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}
	// Without an events app in the config nothing can subscribe: no event.
	events, err := ctx.AppIfConfigured("events")
	switch {
	case errors.Is(err, caddy.ErrNotConfigured):
	case err != nil:
		return fmt.Errorf("postback: loading the events app: %w", err)
	default:
		a.ctx, a.events = ctx, events.(*caddyevents.App)
	}
	a.drainer.Dead = postback.DeadLetterPolicy{
		MaxAge:     time.Duration(a.DeadMaxAge),
		MaxPerCall: a.DeadMaxPerCall,
		OnBury:     a.deadLetter,
		OnDrop: func(cause string, n int) {
			deadMetrics.dropped.WithLabelValues(cause).Add(float64(n))
		},
	}
	return nil
}

// deadLetter counts a dead letter and emits its event. The event carries
// what an operator needs to find it, never the PATCH.
func (a *App) deadLetter(d queue.DeadEntry) {
	deadMetrics.dead.WithLabelValues(d.Webhook, deadReason(d.Reason)).Inc()
	if a.events == nil || !a.events.ShouldEmit(DeadLetterEvent) {
		return
	}
	a.events.Emit(a.ctx, DeadLetterEvent, map[string]any{
		"call_log_id": d.CallLogID,
		"entry":       d.ID,
		"webhook":     d.Webhook,
		"account":     d.Account,
		"request_id":  d.RequestID,
		"reason":      d.Reason,
		"dead_at":     d.DeadAt.UTC().Format(time.RFC3339Nano),
	})
}
