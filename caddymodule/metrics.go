package caddymodule

import (
	"errors"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpostback/caddy-postback/postback"
)

// metrics are created once per process and registered with each config's
// registry, as Caddy's reverse_proxy does. Labels hold webhook names,
// endpoints, statuses and outcome classes: never a key or a call id.
var metrics struct {
	once     sync.Once
	requests *prometheus.CounterVec
	calls    *prometheus.CounterVec
}

func registerMetrics(registry *prometheus.Registry) error {
	metrics.once.Do(func() {
		const ns, sub = "caddy", "postback"
		metrics.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Postbacks answered, by webhook, endpoint and HTTP status.",
		}, []string{"webhook", "endpoint", "status"})
		metrics.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "calls_total",
			Help: "Calls of postbacks, by webhook and outcome (applied, queued, not_found, rejected, upstream_error, upstream_timeout, queue_unavailable, too_many_pending).",
		}, []string{"webhook", "outcome"})
	})
	return registerCollectors(registry, metrics.requests, metrics.calls)
}

// registerCollectors registers collectors on the config's registry; one
// already there (from an earlier config of this process) is kept.
func registerCollectors(registry *prometheus.Registry, collectors ...prometheus.Collector) error {
	if registry == nil {
		return nil
	}
	for _, c := range collectors {
		if err := registry.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return err
			}
		}
	}
	return nil
}

// requestCounters caches the counter of each label set: a look-up in the
// vector hashes every label and formats the status, on every request.
// The keys are bounded by the webhooks, endpoints and statuses there are.
var requestCounters sync.Map // requestLabels → prometheus.Counter

type requestLabels struct {
	webhook string
	ep      postback.Endpoint
	status  int
}

// countRequest records one answered postback; webhook is "" before
// authentication succeeded.
func countRequest(webhook string, ep postback.Endpoint, status int) {
	key := requestLabels{webhook, ep, status}
	if c, ok := requestCounters.Load(key); ok {
		c.(prometheus.Counter).Inc()
		return
	}
	endpoint := ep.Segment()
	if endpoint == "" {
		endpoint = "unknown"
	}
	if webhook == "" {
		webhook = "unauthenticated"
	}
	c, _ := requestCounters.LoadOrStore(key, metrics.requests.WithLabelValues(webhook, endpoint, strconv.Itoa(status)))
	c.(prometheus.Counter).Inc()
}

// countCalls records the outcome of each call of a postback, one label
// look-up per outcome rather than per call.
func countCalls(webhook string, res *postback.Result) {
	var counts [postback.TooManyPending + 1]int
	for _, c := range res.Calls {
		counts[c.Class]++
	}
	for class, n := range counts {
		if n > 0 {
			callCounter(webhook, postback.Class(class)).Add(float64(n))
		}
	}
}

// callCounters caches the counter of each webhook and class, as
// requestCounters does.
var callCounters sync.Map // callLabels → prometheus.Counter

type callLabels struct {
	webhook string
	class   postback.Class
}

func callCounter(webhook string, class postback.Class) prometheus.Counter {
	key := callLabels{webhook, class}
	if c, ok := callCounters.Load(key); ok {
		return c.(prometheus.Counter)
	}
	c, _ := callCounters.LoadOrStore(key, metrics.calls.WithLabelValues(webhook, class.Code()))
	return c.(prometheus.Counter)
}
