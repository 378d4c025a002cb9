package caddymodule

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/ratelimit"
	"github.com/callpostback/caddy-postback/postback"
)

// RateLimitConfig bounds a webhook's requests (docs/operations.md#webhooks-and-keys): Events per
// Window, with bursts of up to Burst. JSON: {"events": 100, "window": "1s",
// "burst": 200}; Caddyfile: rate_limit 100/s 200.
type RateLimitConfig struct {
	// Events allowed per Window. Required.
	Events int `json:"events,omitempty"`
	// Window is the period Events are counted over, such as 1s or 1m.
	// Required.
	Window caddy.Duration `json:"window,omitempty"`
	// Burst is how many requests may come at once. Default: Events.
	Burst int `json:"burst,omitempty"`
}

// rate checks the config and turns it into the limiter's Rate.
func (c *RateLimitConfig) rate() (ratelimit.Rate, error) {
	switch {
	case c.Events <= 0:
		return ratelimit.Rate{}, fmt.Errorf("rate_limit events %d must be a positive whole number", c.Events)
	case c.Window <= 0:
		return ratelimit.Rate{}, errors.New("rate_limit window must be a positive duration such as 1s")
	case c.Burst < 0:
		return ratelimit.Rate{}, fmt.Errorf("rate_limit burst %d must not be negative", c.Burst)
	case time.Duration(c.Window)/time.Duration(c.Events) <= 0:
		return ratelimit.Rate{}, fmt.Errorf("rate_limit of %d per %s is too fast to measure", c.Events, time.Duration(c.Window))
	}
	r := ratelimit.Rate{Events: c.Events, Per: time.Duration(c.Window), Burst: c.Burst}
	if r.Burst == 0 {
		r.Burst = r.Events
	}
	return r, nil
}

// webhookLimit is a webhook's rate and the bucket it draws from.
type webhookLimit struct {
	rate   ratelimit.Rate
	bucket string
}

// bucketName names a webhook's bucket by its name and a digest of its
// keys (docs/operations.md#the-queue-in-production), so two handlers' webhooks that share only a name
// never share a bucket, while one webhook keeps its bucket across reloads
// and instances. keyDigests are the SHA-256 of each key; the name shows
// no key.
func bucketName(webhook string, keyDigests [][]byte) string {
	sorted := slices.Clone(keyDigests)
	slices.SortFunc(sorted, func(a, b []byte) int { return slices.Compare(a, b) })
	h := sha256.New()
	h.Write([]byte("caddy-postback rate-limit bucket\x00"))
	for _, d := range sorted {
		h.Write(d)
	}
	return webhook + ":" + hex.EncodeToString(h.Sum(nil)[:8])
}

// credentialDigests are the SHA-256 of each of a webhook's keys and
// signing secrets: what tells it apart from another handler's webhook of
// the same name.
func credentialDigests(wc WebhookConfig, repl *caddy.Replacer) [][]byte {
	var digests [][]byte
	if wc.Key != "" || wc.KeySHA256 != "" {
		digests = append(digests, keyDigest(repl.ReplaceAll(wc.Key, ""), wc.KeySHA256))
	}
	for _, kc := range wc.Keys {
		digests = append(digests, keyDigest(repl.ReplaceAll(kc.Key, ""), kc.KeySHA256))
	}
	for _, secret := range wc.SigningSecrets {
		d := sha256.Sum256([]byte(repl.ReplaceAll(secret, "")))
		digests = append(digests, d[:])
	}
	return digests
}

// keyDigest is the SHA-256 of a webhook's key, from the key or from its
// configured hex digest.
func keyDigest(key, keySHA256 string) []byte {
	if keySHA256 != "" {
		d, _ := hex.DecodeString(keySHA256)
		return d
	}
	d := sha256.Sum256([]byte(key))
	return d[:]
}

// limit applies the webhook's rate limit before its body is read. When
// the limiter's Redis fails, the request goes on: a rate limit is abuse
// control, and Redis being down must not stop every partner. That is
// counted, and logged at most once per 10 s (operations#the-queue-in-production).
func (h *Handler) limit(r *http.Request, w *postback.Webhook) *postback.Error {
	wl, ok := h.rates[w.Name]
	if !ok {
		return nil
	}
	allowed, wait, err := h.app.limiter.Allow(r.Context(), wl.bucket, wl.rate)
	if err != nil {
		limiterFailures.WithLabelValues(w.Name).Inc()
		h.limiterDown.warn(h.logger, "rate limiter unavailable; requests allowed", zap.String("webhook", w.Name), zap.Error(err))
		return nil
	}
	if allowed {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	e := postback.NewError(http.StatusTooManyRequests, "rate limit of "+wl.rate.String()+" exceeded for this webhook; retry after "+strconv.FormatInt(secs, 10)+"s")
	e.RetryAfter = secs
	return e
}

// limiterFailures counts the decisions the rate limiter could not make
// (its Redis down), by webhook: those requests were allowed.
var limiterFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "caddy", Subsystem: "postback", Name: "limiter_failures_total",
	Help: "Rate-limit decisions that failed (the limiter's Redis unavailable), by webhook; those requests were allowed.",
}, []string{"webhook"})

func registerLimiterMetrics(registry *prometheus.Registry) error {
	return registerCollectors(registry, limiterFailures)
}
