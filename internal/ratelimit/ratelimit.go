// Package ratelimit bounds how often one webhook may call the edge: a
// token bucket per key. Memory (golang.org/x/time/rate) serves one
// instance; Redis (github.com/go-redis/redis_rate) shares the buckets
// among every instance that points at it.
package ratelimit

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Rate is Events per Per, with bursts of up to Burst events.
type Rate struct {
	Events int
	Per    time.Duration
	Burst  int
}

// String writes the rate as ParseRate reads it.
func (r Rate) String() string {
	return strconv.Itoa(r.Events) + "/" + r.Per.String()
}

// ParseRate reads "<events>/<period>": a period of s, m or h, or a
// duration such as 10s.
func ParseRate(s string) (Rate, error) {
	n, per, ok := strings.Cut(s, "/")
	events, err := strconv.Atoi(n)
	if !ok || err != nil || events <= 0 {
		return Rate{}, errors.New("rate " + strconv.Quote(s) + " must be <events>/<period>, such as 100/s or 600/m")
	}
	var d time.Duration
	switch per {
	case "s":
		d = time.Second
	case "m":
		d = time.Minute
	case "h":
		d = time.Hour
	default:
		if d, err = time.ParseDuration(per); err != nil || d <= 0 {
			return Rate{}, errors.New("rate " + strconv.Quote(s) + ": the period must be s, m, h or a duration such as 10s")
		}
	}
	if d/time.Duration(events) <= 0 {
		return Rate{}, errors.New("rate " + strconv.Quote(s) + " is too fast to measure")
	}
	return Rate{Events: events, Per: d}, nil
}

// Limiter decides whether one more event of key is allowed now.
type Limiter interface {
	// Allow reports whether the event is allowed, and if not, how long to
	// wait before one would be.
	Allow(ctx context.Context, key string, r Rate) (ok bool, retryAfter time.Duration, err error)
}
