package caddymodule

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/callpostback/caddy-postback/internal/idempotency"
	"github.com/callpostback/caddy-postback/postback"
)

// idempotencyPool keeps the in-memory idempotency store of a bound alive
// across config reloads, as queuePool does the memory queue: a retry that
// arrives after a reload still finds its key.
var idempotencyPool = caddy.NewUsagePool()

type pooledIdempotency struct{ *idempotency.Memory }

func (pooledIdempotency) Destruct() error { return nil }

var idempotentReplayed = []string{"true"}

// validateIdempotency checks the options of docs/partner-api.md#safe-retries.
func (h *Handler) validateIdempotency() error {
	switch {
	case h.IdempotencyWindow < 0 || time.Duration(h.IdempotencyWindow) > postback.MaxIdempotencyWindow:
		return fmt.Errorf("postback: idempotency_window %s must be from 1s to 168h", time.Duration(h.IdempotencyWindow))
	case h.IdempotencyWindow != 0 && time.Duration(h.IdempotencyWindow) < time.Second:
		return fmt.Errorf("postback: idempotency_window %s must be from 1s to 168h", time.Duration(h.IdempotencyWindow))
	case h.IdempotencyMaxKeys < 0:
		return fmt.Errorf("postback: idempotency_max_keys %d must be positive", h.IdempotencyMaxKeys)
	}
	return nil
}

// provisionRetries puts the idempotency keys in the app's Redis when it has
// one, else in this process's memory.
func (h *Handler) provisionRetries() error {
	var store idempotency.Store
	if h.app.redis != nil {
		store = idempotency.NewRedis(h.app.redisBatch, h.app.redisPrefix)
	} else {
		key := "idempotency:memory:" + strconv.Itoa(h.IdempotencyMaxKeys)
		v, _, err := idempotencyPool.LoadOrNew(key, func() (caddy.Destructor, error) {
			return pooledIdempotency{idempotency.NewMemory(h.IdempotencyMaxKeys)}, nil
		})
		if err != nil {
			return err
		}
		h.idemPoolKey = key
		store = v.(pooledIdempotency).Memory
	}
	h.retries = &postback.Retries{
		Store:  store,
		Window: time.Duration(h.IdempotencyWindow),
		Hold:   h.edge.Deadline + postback.IdempotencyHoldMargin,
	}
	return nil
}

// Cleanup lets go of the in-memory idempotency store; one in Redis goes
// with the app's client.
func (h *Handler) Cleanup() error {
	if h.idemPoolKey != "" {
		_, err := idempotencyPool.Delete(h.idemPoolKey)
		return err
	}
	return nil
}

// applyPostback applies a validated postback. With an idempotency key (the
// header, the idempotency_key parameter, or else fallback, a key the
// authentication step vouches for), it goes through the idempotency store
// (docs/partner-api.md#safe-retries); without one it touches no store at all. A dry run must not
// come here: it neither reads nor writes the store.
func (h *Handler) applyPostback(r *http.Request, webhook *postback.Webhook, requestID string, ep postback.Endpoint, req *postback.Request, fallback string) (*postback.Result, bool, *postback.Error) {
	key, perr := postback.IdempotencyKeyOf(r.Header.Values(postback.HeaderIdempotencyKey), req, fallback)
	if perr != nil {
		return nil, false, perr
	}
	ctx := traceContext(r)
	if key == "" {
		res := h.edge.Apply(ctx, webhook, requestID, req)
		countCalls(webhook.Name, res)
		return res, false, nil
	}
	out, perr, err := h.retries.Apply(ctx, h.edge, webhook, requestID, ep, key, req)
	switch {
	case err != nil:
		countIdempotencyStoreFailure(webhook.Name)
		h.idemWarnings.warn(h.logger, "idempotency store unavailable; requests with an idempotency key get 503", zap.String("webhook", webhook.Name), zap.Error(err))
	case perr != nil:
		countIdempotencyConflict(webhook.Name, perr.Code)
	}
	if perr != nil {
		return nil, false, perr
	}
	if out.StoreErr != nil {
		countIdempotencyStoreFailure(webhook.Name)
		h.idemWarnings.warn(h.logger, "idempotency store unavailable; an outcome was not stored, so a retry after the hold may apply again", zap.String("webhook", webhook.Name), zap.String("request_id", requestID), zap.Error(out.StoreErr))
	}
	if out.Seen {
		countIdempotentReplay(webhook.Name, out.Replayed)
	}
	if !out.Replayed {
		countCalls(webhook.Name, out.Result)
	}
	return out.Result, out.Replayed, nil
}

// traceContext is the context of a postback's call-store requests: it
// carries the postback's trace context (docs/operations.md#call-store-transport).
func traceContext(r *http.Request) context.Context {
	return postback.WithTrace(callStoreContext(r.Context()), r.Header.Get("Traceparent"), r.Header.Get("Tracestate"))
}
