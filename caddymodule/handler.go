package caddymodule

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/ratelimit"
	"github.com/callpostback/caddy-postback/postback"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Handler terminates partner postbacks (docs/partner-api.md#endpoints–partner-api#responses). The endpoint is the
// last segment of the request path: update-revenue, update-tags,
// update-fields, or call-completed.
type Handler struct {
	// Webhooks are the partners allowed in, each with its key. Required.
	Webhooks []WebhookConfig `json:"webhooks,omitempty"`

	// AuthParam is the query parameter that carries the auth key.
	// Default: moja_auth_key. `Authorization: Bearer <key>` works too.
	AuthParam string `json:"auth_param,omitempty"`

	// MaxBatch is the most ids one call_log_id array may hold. Default: 50.
	MaxBatch int `json:"max_batch,omitempty"`

	// MaxBody is the largest body accepted, in bytes. Default: 65536.
	MaxBody int64 `json:"max_body,omitempty"`

	// MaxAmount bounds revenue_paid_out and publisher_paid_out, as a
	// decimal. Default: 1000000.
	MaxAmount string `json:"max_amount,omitempty"`

	// Strict refuses unknown parameters with a 400 instead of listing them
	// under "ignored".
	Strict bool `json:"strict,omitempty"`

	// DefaultCountryCode is prefixed to national phone numbers, digits
	// only. Default: 1. Set "none" to accept only +international numbers.
	DefaultCountryCode string `json:"default_country_code,omitempty"`

	app     *App
	edge    *postback.Edge
	parser  postback.Parser
	keyring *postback.Keyring
	rates   map[string]ratelimit.Rate
	logger  *zap.Logger
}

// WebhookConfig is one partner integration (docs/operations.md#webhooks-and-keys).
type WebhookConfig struct {
	// Name identifies the webhook in logs and upstream as
	// X-Postback-Webhook.
	Name string `json:"name,omitempty"`
	// Type is update_revenue, update_tags, update_fields or call_completed.
	Type string `json:"type,omitempty"`
	// Account scopes the webhook: its requests carry X-Account-Id.
	Account string `json:"account,omitempty"`
	// Key is the auth key, normally a placeholder such as {env.ACME_KEY}.
	Key string `json:"key,omitempty"`
	// KeySHA256 is the hex SHA-256 of the key, for configs that must not
	// hold the key itself.
	KeySHA256 string `json:"key_sha256,omitempty"`
	// RateLimit bounds the webhook's requests, as <events>/<period> such as
	// 100/s; beyond it the answer is 429 with Retry-After. With Redis, every
	// instance draws from one bucket.
	RateLimit string `json:"rate_limit,omitempty"`
	// Burst is how many requests may come at once. Default: the events of
	// one period.
	Burst int `json:"burst,omitempty"`
}

// Default of the handler.
const DefaultMaxBody = 64 << 10

// CaddyModule returns the Caddy module information.
func (*Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.postback",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision fills defaults, resolves key placeholders and takes the app.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.AuthParam == "" {
		h.AuthParam = postback.DefaultAuthParam
	}
	if h.MaxBatch <= 0 {
		h.MaxBatch = postback.DefaultMaxBatch
	}
	if h.MaxBody <= 0 {
		h.MaxBody = DefaultMaxBody
	}
	if h.MaxAmount == "" {
		h.MaxAmount = postback.DefaultMaxAmount.String()
	}
	if h.DefaultCountryCode == "" {
		h.DefaultCountryCode = "1"
	}
	if err := h.Validate(); err != nil {
		return err
	}
	maxAmount, _ := postback.ParseAmount(h.MaxAmount)
	countryCode := h.DefaultCountryCode
	if countryCode == "none" {
		countryCode = ""
	}
	h.parser = postback.Parser{
		AuthParam:          h.AuthParam,
		MaxBatch:           h.MaxBatch,
		MaxAmount:          maxAmount,
		MaxTags:            postback.DefaultMaxTags,
		Strict:             h.Strict,
		DefaultCountryCode: countryCode,
	}

	repl := caddy.NewReplacer()
	webhooks := make([]*postback.Webhook, 0, len(h.Webhooks))
	for _, wc := range h.Webhooks {
		w, err := postback.NewWebhook(wc.Name, wc.Type, repl.ReplaceAll(wc.Account, ""), repl.ReplaceAll(wc.Key, ""), wc.KeySHA256)
		if err != nil {
			return fmt.Errorf("postback: %w", err)
		}
		webhooks = append(webhooks, w)
		if wc.RateLimit != "" {
			rate, err := ratelimit.ParseRate(wc.RateLimit)
			if err != nil {
				return fmt.Errorf("postback: webhook %s: %w", wc.Name, err)
			}
			rate.Burst = wc.Burst
			if rate.Burst <= 0 {
				rate.Burst = rate.Events
			}
			if h.rates == nil {
				h.rates = make(map[string]ratelimit.Rate)
			}
			h.rates[wc.Name] = rate
		}
	}
	keyring, err := postback.NewKeyring(webhooks)
	if err != nil {
		return fmt.Errorf("postback: %w", err)
	}
	h.keyring = keyring

	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}

	appIface, err := ctx.App("postback")
	if err != nil {
		return fmt.Errorf("postback: loading the postback app: %w", err)
	}
	h.app = appIface.(*App)
	h.edge = h.app.edge()
	return nil
}

// Validate rejects settings that cannot work.
func (h *Handler) Validate() error {
	if len(h.Webhooks) == 0 {
		return errors.New("postback: at least one webhook is required")
	}
	if h.MaxBatch > 1000 {
		return fmt.Errorf("postback: max_batch %d is above 1000", h.MaxBatch)
	}
	if _, msg := postback.ParseAmount(h.MaxAmount); msg != "" {
		return fmt.Errorf("postback: max_amount %q %s", h.MaxAmount, msg)
	}
	if c := h.DefaultCountryCode; c != "none" && (len(c) > 3 || strings.Trim(c, "0123456789") != "" || c[0] == '0') {
		return fmt.Errorf("postback: default_country_code %q must be 1 to 3 digits, or none", c)
	}
	return nil
}

// ServeHTTP answers a postback; it never calls next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	requestID := requestID(r)
	w.Header()["X-Request-Id"] = []string{requestID}
	ep := postback.EndpointFromSegment(path.Base(r.URL.Path))
	a := h.serve(r, ep, requestID)
	countRequest(a.webhook, ep, a.status)
	if a.retryAfter > 0 {
		w.Header()["Retry-After"] = []string{strconv.FormatInt(a.retryAfter, 10)}
	}
	return writeJSON(w, a.status, a.body)
}

// answer is what serve decided: the webhook once known, the status and
// body, and for a 429 the seconds to wait.
type answer struct {
	webhook    string
	status     int
	body       []byte
	retryAfter int64
}

// serve answers one postback with its status and body, and names the
// webhook once it is known.
func (h *Handler) serve(r *http.Request, ep postback.Endpoint, requestID string) answer {
	if ep == postback.EndpointUnknown {
		return errorAnswer("", postback.NewError(http.StatusNotFound, "no postback endpoint here; use update-revenue, update-tags, update-fields or call-completed"))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return errorAnswer("", postback.NewError(http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed; use GET or POST"))
	}
	webhook, perr := h.keyring.Authenticate(ep, h.authKey(r))
	if perr != nil {
		if perr.Status == http.StatusUnauthorized && perr.Message == postback.MessageMissingKey {
			perr.Message += ": send it as the " + h.AuthParam + " query parameter or as Authorization: Bearer <key>"
		}
		return errorAnswer("", perr)
	}
	if perr := h.limit(r, webhook); perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	body, kind, perr := h.readBody(r)
	if perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	if ep == postback.EndpointCallCompleted {
		return h.serveCompleted(r, webhook, body, kind)
	}
	req, perr := h.parser.Parse(ep, r.URL.RawQuery, body, kind)
	if perr != nil {
		// Check first: the fields cost allocations even when debug is off.
		if ce := h.logger.Check(zap.DebugLevel, "postback refused"); ce != nil {
			ce.Write(zap.String("webhook", webhook.Name), zap.String("endpoint", ep.Segment()), zap.String("request_id", requestID), zap.Error(perr))
		}
		return errorAnswer(webhook.Name, perr)
	}
	res := h.edge.Apply(r.Context(), webhook, requestID, req)
	countCalls(webhook.Name, res)
	out, status := postback.AppendResponse(make([]byte, 0, 256), res)
	if ce := h.logger.Check(zap.DebugLevel, "postback"); ce != nil {
		ce.Write(zap.String("webhook", webhook.Name), zap.String("endpoint", ep.Segment()), zap.String("request_id", requestID), zap.Int("calls", len(res.Calls)), zap.Int("status", status))
	}
	return answer{webhook: webhook.Name, status: status, body: out}
}

// serveCompleted schedules the named calls for draining (docs/operations.md#completion-and-dead-letters).
func (h *Handler) serveCompleted(r *http.Request, webhook *postback.Webhook, body []byte, kind postback.BodyKind) answer {
	ids, perr := h.parser.ParseCompleted(r.URL.RawQuery, body, kind)
	if perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	scheduled := make([]string, 0, len(ids))
	// One round trip for every id (operations#the-queue-in-production).
	pending, err := h.app.queue.WakeAll(r.Context(), ids, time.Now())
	if err != nil {
		return errorAnswer(webhook.Name, &postback.Error{Status: http.StatusServiceUnavailable, Code: "queue_unavailable", Message: "the queue is unavailable; send call-completed again"})
	}
	for i, id := range ids {
		if pending[i] {
			scheduled = append(scheduled, id)
		}
	}
	if len(scheduled) > 0 {
		h.app.drainer.Wake()
	}
	return answer{webhook: webhook.Name, status: http.StatusAccepted, body: postback.AppendScheduled(nil, scheduled)}
}

// limit applies the webhook's rate limit before its body is read. When
// the limiter's Redis fails, the request goes on: a rate limit is abuse
// control, and Redis being down must not stop every partner.
func (h *Handler) limit(r *http.Request, w *postback.Webhook) *postback.Error {
	rate, ok := h.rates[w.Name]
	if !ok {
		return nil
	}
	allowed, wait, err := h.app.limiter.Allow(r.Context(), w.Name, rate)
	if err != nil {
		h.logger.Warn("rate limiter unavailable; request allowed", zap.String("webhook", w.Name), zap.Error(err))
		return nil
	}
	if allowed {
		return nil
	}
	secs := int64((wait + time.Second - 1) / time.Second)
	e := postback.NewError(http.StatusTooManyRequests, "rate limit of "+rate.String()+" exceeded for this webhook; retry after "+strconv.FormatInt(secs, 10)+"s")
	e.RetryAfter = secs
	return e
}

// authKey reads the key from the auth parameter or a bearer token.
func (h *Handler) authKey(r *http.Request) string {
	if k := postback.QueryParam(r.URL.RawQuery, h.AuthParam); k != "" {
		return k
	}
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// readBody reads a POST body within MaxBody and says how to parse it
// (docs/partner-api.md#request-format, partner-api#limits).
func (h *Handler) readBody(r *http.Request) ([]byte, postback.BodyKind, *postback.Error) {
	if r.Method != http.MethodPost {
		return nil, postback.BodyNone, nil
	}
	kind := postback.BodyJSON
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ := strings.Cut(ct, ";")
		mt = strings.TrimSpace(mt)
		switch {
		case strings.EqualFold(mt, "application/json"):
		case strings.EqualFold(mt, "application/x-www-form-urlencoded"):
			kind = postback.BodyForm
		default:
			return nil, 0, postback.NewError(http.StatusUnsupportedMediaType, "content type "+strconv.Quote(mt)+" is not supported; send application/json or application/x-www-form-urlencoded")
		}
	}
	tooLarge := postback.NewError(http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(h.MaxBody, 10)+" bytes")
	if r.ContentLength > h.MaxBody {
		return nil, 0, tooLarge
	}
	size := h.MaxBody + 1
	if r.ContentLength >= 0 {
		size = r.ContentLength + 1
	}
	buf := make([]byte, 0, size)
	for {
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > h.MaxBody {
			return nil, 0, tooLarge
		}
		if err == io.EOF {
			return buf, kind, nil
		}
		if err != nil {
			return nil, 0, postback.NewError(http.StatusBadRequest, "could not read the body")
		}
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
}

var allowed = []string{"GET, POST"}

var requestSeq atomic.Uint64

// processTag starts every generated request id, so ids from different
// instances and restarts do not collide.
var processTag = func() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// requestID keeps a sane X-Request-Id from the partner, else makes one.
func requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && strings.Trim(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:") == "" {
		return id
	}
	return processTag + "-" + strconv.FormatUint(requestSeq.Add(1), 36)
}

var jsonContentType = []string{"application/json"}

func writeJSON(w http.ResponseWriter, status int, body []byte) error {
	if status == http.StatusMethodNotAllowed {
		w.Header()["Allow"] = allowed
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// errorAnswer is a request-level error as the body of partner-api#errors: the handler
// writes it itself rather than leaving Caddy's error routes to write an
// empty one.
func errorAnswer(webhook string, e *postback.Error) answer {
	return answer{webhook: webhook, status: e.Status, body: postback.AppendError(make([]byte, 0, 128), e), retryAfter: e.RetryAfter}
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
