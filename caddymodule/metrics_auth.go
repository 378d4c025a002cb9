package caddymodule

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/callpostback/caddy-postback/postback"
)

// authMetrics count which key or signing secret authenticated each
// request, by index: an operator rotating a key sees when the old one is
// no longer used (docs/operations.md#keys-rotation-and-signatures). Never the key itself.
var authMetrics struct {
	once     sync.Once
	counter  *prometheus.CounterVec
	counters sync.Map // authLabels → prometheus.Counter
}

type authLabels struct {
	webhook    string
	credential string
	index      int
}

func registerAuthMetrics(registry *prometheus.Registry) error {
	authMetrics.once.Do(func() {
		authMetrics.counter = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "postback", Name: "authenticated_total",
			Help: "Postbacks authenticated, by webhook, credential (key, signing_secret) and the index of the key or secret that matched.",
		}, []string{"webhook", "credential", "index"})
	})
	return registerCollectors(registry, authMetrics.counter)
}

// countAuth records the key and the secret a request was authenticated with.
func countAuth(webhook string, a *postback.Auth) {
	if a.KeyIndex >= 0 {
		authCounter(authLabels{webhook, "key", a.KeyIndex}).Inc()
	}
	if a.SecretIndex >= 0 {
		authCounter(authLabels{webhook, "signing_secret", a.SecretIndex}).Inc()
	}
}

func authCounter(l authLabels) prometheus.Counter {
	if c, ok := authMetrics.counters.Load(l); ok {
		return c.(prometheus.Counter)
	}
	c, _ := authMetrics.counters.LoadOrStore(l, authMetrics.counter.WithLabelValues(l.webhook, l.credential, strconv.Itoa(l.index)))
	return c.(prometheus.Counter)
}
