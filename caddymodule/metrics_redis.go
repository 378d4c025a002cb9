package caddymodule

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// redisMetrics are the histograms of the pipelines the shared Redis client
// sends (docs/operations.md#metrics): how long Redis takes to answer, as
// the edge sees it, and how many commands each pipeline carries. Created
// once per process like metrics, and before the first client, whose
// sending goroutine reads them.
var redisMetrics struct {
	once     sync.Once
	duration prometheus.Histogram
	commands prometheus.Histogram
}

func registerRedisMetrics(registry *prometheus.Registry) error {
	redisMetrics.once.Do(func() {
		const ns, sub = "caddy", "postback"
		redisMetrics.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_pipeline_duration_seconds",
			Help:    "Time from sending a pipeline of ordering checks, appends and idempotency keys to Redis until its last answer.",
			Buckets: []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		})
		redisMetrics.commands = prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "redis_pipeline_commands",
			Help:    "Commands and scripts carried by each pipeline sent to Redis: the postbacks that shared one round trip.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		})
	})
	return registerCollectors(registry, redisMetrics.duration, redisMetrics.commands)
}

// observePipeline records one pipeline of the shared client's batcher.
func observePipeline(commands int, took time.Duration) {
	if redisMetrics.duration != nil {
		redisMetrics.duration.Observe(took.Seconds())
		redisMetrics.commands.Observe(float64(commands))
	}
}
