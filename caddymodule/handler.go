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

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/postback"
)

func init() {
	caddy.RegisterModule(new(Handler))
}

// Handler terminates partner postbacks (docs/partner-api.md, from #endpoints
// to #responses). The endpoint is the
// last segment of the request path: update-revenue, update-tags,
// update-fields, or call-completed.
type Handler struct {
	// ID names the handler in Caddy's admin API ("@id"), so that its
	// webhooks can be changed at runtime at /id/<id>/webhooks/...
	// (docs/operations.md#keys-rotation-and-signatures). Caddy strips it before
	// loading.
	ID string `json:"@id,omitempty"`

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

	// IdempotencyWindow is how long an idempotency key is remembered
	// (docs/partner-api.md#safe-retries): a retry within it is answered from what the key did.
	// Default: 24h; at most 168h.
	IdempotencyWindow caddy.Duration `json:"idempotency_window,omitempty"`

	// IdempotencyMaxKeys bounds the keys remembered in memory when the
	// postback app has no Redis; past it, the oldest key is forgotten
	// first. A key with its outcome takes some 650 bytes of resident
	// memory (about 65 MB at the default). Default: 100000.
	IdempotencyMaxKeys int `json:"idempotency_max_keys,omitempty"`

	app     *App
	edge    *postback.Edge
	parser  postback.Parser
	keyring *postback.Keyring
	rates   map[string]webhookLimit
	logger  *zap.Logger
	// limiterDown is the warning of a failing rate limiter.
	limiterDown throttledWarning

	retries      *postback.Retries
	idemPoolKey  string
	idemWarnings throttledWarning
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
	// KeyExpires is when Key or KeySHA256 stops authenticating, as an
	// RFC 3339 time; after it the key is refused with 401 "key expired".
	KeyExpires string `json:"key_expires,omitempty"`
	// Keys are further keys, each with an optional expiry: several are
	// valid at once while a partner switches keys
	// (docs/operations.md#keys-rotation-and-signatures).
	Keys []KeyConfig `json:"keys,omitempty"`
	// SigningSecrets are Standard Webhooks secrets (whsec_<base64>),
	// normally placeholders; with any, every request must be signed and
	// the key becomes optional (docs/partner-api.md#signed-postbacks).
	SigningSecrets []string `json:"signing_secrets,omitempty"`
	// Require "key_and_signature" asks a signed request for its key too.
	Require string `json:"require,omitempty"`
	// RateLimit bounds the webhook's requests; beyond it the answer is 429
	// with Retry-After. With Redis, every instance draws from one bucket.
	// Caddyfile: rate_limit <events>/<window> [<burst>], such as 100/s 200.
	RateLimit *RateLimitConfig `json:"rate_limit,omitempty"`
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
	if h.IdempotencyWindow == 0 {
		h.IdempotencyWindow = caddy.Duration(postback.DefaultIdempotencyWindow)
	}
	if h.IdempotencyMaxKeys == 0 {
		h.IdempotencyMaxKeys = idempotency.DefaultMaxKeys
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
		w, err := h.newWebhook(wc, repl)
		if err != nil {
			return fmt.Errorf("postback: %w", err)
		}
		webhooks = append(webhooks, w)
		if wc.RateLimit != nil {
			rate, err := wc.RateLimit.rate()
			if err != nil {
				return fmt.Errorf("postback: webhook %s: %w", wc.Name, err)
			}
			if h.rates == nil {
				h.rates = make(map[string]webhookLimit)
			}
			h.rates[wc.Name] = webhookLimit{rate: rate, bucket: bucketName(wc.Name, credentialDigests(wc, repl))}
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
	if err := registerAuthMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}
	if err := registerLimiterMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}
	if err := registerIdempotencyMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("postback: metrics: %w", err)
	}

	appIface, err := ctx.App("postback")
	if err != nil {
		return fmt.Errorf("postback: loading the postback app: %w", err)
	}
	h.app = appIface.(*App)
	h.edge = h.app.edge()
	return h.provisionRetries()
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
	return h.validateIdempotency()
}

// ServeHTTP answers a postback; it never calls next.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	requestID := requestID(r)
	w.Header()["X-Request-Id"] = []string{requestID}
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl != nil {
		repl.Set("http.postback.request_id", requestID)
	}
	ep := postback.EndpointFromSegment(path.Base(r.URL.Path))
	a := h.serve(r, ep, requestID)
	// For access logs and the handlers around this one.
	if repl != nil && a.webhook != "" {
		repl.Set("http.postback.webhook", a.webhook)
	}
	countRequest(a.webhook, ep, a.status)
	if a.replayed {
		w.Header()[postback.HeaderIdempotentReplayed] = idempotentReplayed
	}
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
	// replayed: answered from a stored outcome, nothing attempted again
	// (docs/partner-api.md#safe-retries).
	replayed bool
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
	adm, perr := h.admit(r, ep, requestID)
	if perr != nil {
		return errorAnswer(adm.webhookName(), perr)
	}
	webhook, body, kind := adm.auth.Webhook, adm.body, adm.kind
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
	dryRun, perr := postback.DryRunFromHeader(r.Header.Values(postback.DryRunHeader), req.DryRun)
	if perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	var res *postback.Result
	var replayed bool
	if dryRun {
		// A dry run neither reads nor writes the idempotency store, but a
		// key it carries is checked as the real request's would be.
		if _, perr := postback.IdempotencyKeyOf(r.Header.Values(postback.HeaderIdempotencyKey), req, adm.auth.MessageID); perr != nil {
			return errorAnswer(webhook.Name, perr)
		}
		// Counted as a request, not as calls: nothing was updated.
		res = h.edge.DryRun(traceContext(r), webhook, requestID, req)
	} else if res, replayed, perr = h.applyPostback(r, webhook, requestID, ep, req, adm.auth.MessageID); perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	out, status := postback.AppendResponse(make([]byte, 0, 256), res)
	if ce := h.logger.Check(zap.DebugLevel, "postback"); ce != nil {
		ce.Write(zap.String("webhook", webhook.Name), zap.String("endpoint", ep.Segment()), zap.String("request_id", requestID), zap.Int("calls", len(res.Calls)), zap.Int("status", status))
	}
	return answer{webhook: webhook.Name, status: status, body: out, replayed: replayed}
}

// serveCompleted schedules the named calls for draining (docs/operations.md#completion-and-dead-letters).
func (h *Handler) serveCompleted(r *http.Request, webhook *postback.Webhook, body []byte, kind postback.BodyKind) answer {
	ids, dryRun, perr := h.parser.ParseCompletedDryRun(r.URL.RawQuery, body, kind)
	if perr == nil {
		dryRun, perr = postback.DryRunFromHeader(r.Header.Values(postback.DryRunHeader), dryRun)
	}
	if perr != nil {
		return errorAnswer(webhook.Name, perr)
	}
	if dryRun {
		return h.previewCompleted(r, webhook, ids)
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

// previewCompleted answers a dry run of call-completed: the calls that
// would be scheduled, read from the queue without waking any
// (docs/partner-api.md#dry-run).
func (h *Handler) previewCompleted(r *http.Request, webhook *postback.Webhook, ids []string) answer {
	waiting := make([]string, 0, len(ids))
	for _, id := range ids {
		_, pending, err := h.app.queue.Head(r.Context(), id)
		if err != nil {
			return errorAnswer(webhook.Name, &postback.Error{Status: http.StatusServiceUnavailable, Code: "queue_unavailable", Message: "the queue is unavailable; send call-completed again"})
		}
		if pending {
			waiting = append(waiting, id)
		}
	}
	return answer{webhook: webhook.Name, status: http.StatusAccepted, body: postback.AppendScheduledDryRun(nil, waiting)}
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
	if r.ContentLength > h.MaxBody {
		return nil, 0, h.tooLarge()
	}
	// A declared length was checked above, and net/http never reads past
	// it: one buffer of that size. Otherwise (chunked), MaxBytesReader
	// stops the read at MaxBody.
	var body []byte
	var err error
	if r.ContentLength >= 0 {
		body = make([]byte, r.ContentLength)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(nil, r.Body, h.MaxBody))
	}
	var over *http.MaxBytesError
	switch {
	case errors.As(err, &over):
		return nil, 0, h.tooLarge()
	case err != nil:
		return nil, 0, postback.NewError(http.StatusBadRequest, "could not read the body")
	}
	return body, kind, nil
}

// tooLarge is the 413 of a body over MaxBody, built only when one is.
func (h *Handler) tooLarge() *postback.Error {
	return postback.NewError(http.StatusRequestEntityTooLarge, "body is larger than "+strconv.FormatInt(h.MaxBody, 10)+" bytes")
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
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
