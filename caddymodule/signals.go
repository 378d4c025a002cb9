package caddymodule

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// The queue's signals (docs/operations.md#the-queue-in-production): gauges read from the running
// app's queue when scraped, the count of updates sent past the ordering
// check, and warnings that would repeat per request, logged at most once
// per 10 s with how many were held back (warn.go).

// statsTimeout bounds the queue read of one scrape; statsFresh is how long
// its answer serves later scrapes.
const (
	statsTimeout = 2 * time.Second
	statsFresh   = time.Second
)

var queueSignals struct {
	once            sync.Once
	orderingSkipped prometheus.Counter
	gauges          *queueCollector
}

func registerQueueSignals(registry *prometheus.Registry) error {
	queueSignals.once.Do(func() {
		queueSignals.orderingSkipped = prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "postback", Name: "ordering_check_skipped_total",
			Help: "Updates sent to the call store without the ordering check because the queue could not answer.",
		})
		queueSignals.gauges = newQueueCollector()
	})
	return registerCollectors(registry, queueSignals.orderingSkipped, queueSignals.gauges)
}

// orderingSkipped is the edge's report of a call sent past the ordering
// check (operations#when-redis-is-down).
func (a *App) orderingSkipped(callLogID string, err error) {
	if c := queueSignals.orderingSkipped; c != nil {
		c.Inc()
	}
	a.orderingWarn.warn(a.logger, "queue unavailable: updates sent to the call store without the ordering check", zap.String("call_log_id", callLogID), zap.Error(err))
}

// queueCollector reads the running app's queue counts when scraped.
type queueCollector struct {
	pending, calls, dead, oldest *prometheus.Desc
	// app is the running config's app: the collector outlives configs,
	// since the metrics registry does.
	app atomic.Pointer[App]

	mu   sync.Mutex
	read time.Time
	last []prometheus.Metric
}

func newQueueCollector() *queueCollector {
	name := func(n string) string { return prometheus.BuildFQName("caddy", "postback", n) }
	return &queueCollector{
		pending: prometheus.NewDesc(name("queue_pending_updates"), "Updates waiting for their call to complete.", nil, nil),
		calls:   prometheus.NewDesc(name("queue_calls_waiting"), "Calls with updates waiting.", nil, nil),
		dead:    prometheus.NewDesc(name("queue_dead_letters"), "Updates in the dead letters.", nil, nil),
		oldest:  prometheus.NewDesc(name("queue_oldest_pending_age_seconds"), "Age of the oldest update waiting; 0 when none waits.", nil, nil),
	}
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.calls
	ch <- c.dead
	ch <- c.oldest
}

// Collect sends nothing when no app runs or its queue cannot answer: a
// missing series says "unknown", where a 0 would say "empty".
func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.read) >= statsFresh {
		c.last = c.collect()
		c.read = time.Now()
	}
	for _, m := range c.last {
		ch <- m
	}
}

func (c *queueCollector) collect() []prometheus.Metric {
	app := c.app.Load()
	if app == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := app.queue.Stats(ctx)
	if err != nil {
		app.statsWarn.warn(app.logger, "queue unavailable for the queue gauges", zap.Error(err))
		return nil
	}
	age := 0.0
	if !st.OldestPending.IsZero() {
		age = max(time.Since(st.OldestPending).Seconds(), 0)
	}
	return []prometheus.Metric{
		prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.PendingEntries)),
		prometheus.MustNewConstMetric(c.calls, prometheus.GaugeValue, float64(st.PendingCalls)),
		prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(st.DeadEntries)),
		prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age),
	}
}
