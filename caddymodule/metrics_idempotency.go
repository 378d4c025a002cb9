package caddymodule

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// idempotencyMetrics count the retries of docs/partner-api.md#safe-retries per webhook.
var idempotencyMetrics struct {
	once      sync.Once
	replays   *prometheus.CounterVec
	conflicts *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

func registerIdempotencyMetrics(registry *prometheus.Registry) error {
	m := &idempotencyMetrics
	m.once.Do(func() {
		const ns, sub = "caddy", "postback"
		m.replays = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "idempotent_replays_total",
			Help: "Retries with a known idempotency key, by webhook; replayed is true when no call was attempted again.",
		}, []string{"webhook", "replayed"})
		m.conflicts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "idempotency_conflicts_total",
			Help: "Requests refused for their idempotency key, by webhook and code (idempotency_key_in_use, idempotency_key_reused).",
		}, []string{"webhook", "code"})
		m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "idempotency_store_failures_total",
			Help: "Idempotency store commands that failed, by webhook.",
		}, []string{"webhook"})
	})
	return registerCollectors(registry, m.replays, m.conflicts, m.failures)
}

func countIdempotentReplay(webhook string, replayed bool) {
	idempotencyMetrics.replays.WithLabelValues(webhook, strconv.FormatBool(replayed)).Inc()
}

func countIdempotencyConflict(webhook, code string) {
	idempotencyMetrics.conflicts.WithLabelValues(webhook, code).Inc()
}

func countIdempotencyStoreFailure(webhook string) {
	idempotencyMetrics.failures.WithLabelValues(webhook).Inc()
}
