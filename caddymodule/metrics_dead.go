package caddymodule

import (
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpostback/caddy-postback/postback"
)

// deadMetrics are the dead-letter counters and the call-store latency
// histogram (docs/operations.md#metrics), created once per process like
// metrics.
var deadMetrics struct {
	once     sync.Once
	dead     *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	callTime *prometheus.HistogramVec
	classes  [postback.QueueUnavailable + 1]prometheus.Observer
}

func registerDeadMetrics(registry *prometheus.Registry) error {
	deadMetrics.once.Do(func() {
		const ns, sub = "caddy", "postback"
		deadMetrics.dead = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_letters_total",
			Help: "Queued updates moved to the dead letters, by webhook and reason (not_found, rejected, max_age).",
		}, []string{"webhook", "reason"})
		deadMetrics.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "dead_letters_dropped_total",
			Help: "Dead letters dropped, by cause: max_age (older than dead_max_age) or max_per_call (beyond dead_max_per_call).",
		}, []string{"cause"})
		deadMetrics.callTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "call_store_request_duration_seconds",
			Help:    "Duration of each call-store request attempt, by outcome (applied, live, not_found, rejected, upstream_error, upstream_timeout).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"outcome"})
		for class := range deadMetrics.classes {
			outcome := postback.Class(class).Code()
			if postback.Class(class) == postback.Live {
				outcome = "live" // Code folds it into queued, which the edge makes of it
			}
			deadMetrics.classes[class] = deadMetrics.callTime.WithLabelValues(outcome)
		}
	})
	return registerCollectors(registry, deadMetrics.dead, deadMetrics.dropped, deadMetrics.callTime)
}

// observeCallStore records one call-store attempt; the observers are made
// up front, so this is an index, not a label look-up.
func observeCallStore(class postback.Class, took time.Duration) {
	if int(class) < len(deadMetrics.classes) && deadMetrics.classes[class] != nil {
		deadMetrics.classes[class].Observe(took.Seconds())
	}
}

// deadReason is the reason label of a dead letter: its class, the part of
// the reason before the colon, so the label set stays small.
func deadReason(reason string) string {
	class, _, _ := strings.Cut(reason, ":")
	return class
}
