package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// transportJSON is the call store's transport module config: the one
// given, or reverse_proxy's HTTP transport with its defaults. An https
// URL turns TLS on by itself, and the idle connections kept default to
// maxUpstream, as many as may be in flight (docs/operations.md#call-store-transport).
func transportJSON(raw json.RawMessage, base *url.URL, maxUpstream int) (json.RawMessage, error) {
	cfg := map[string]json.RawMessage{}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &cfg); err != nil {
			return nil, fmt.Errorf("call_store transport: %w", err)
		}
	}
	var protocol string
	if p, ok := cfg["protocol"]; ok {
		if err := json.Unmarshal(p, &protocol); err != nil {
			return nil, fmt.Errorf("call_store transport: protocol: %w", err)
		}
	}
	switch protocol {
	case "":
		cfg["protocol"] = json.RawMessage(`"http"`)
	case "http":
	default:
		return nil, fmt.Errorf("call_store transport %q: only the http transport can reach a call store", protocol)
	}
	_, hasTLS := cfg["tls"]
	switch {
	case base.Scheme == "https" && !hasTLS:
		cfg["tls"] = json.RawMessage(`{}`)
	case base.Scheme == "http" && hasTLS:
		return nil, errors.New("call_store: the URL is http:// but the transport has tls; use an https:// URL")
	}
	keepAlive := map[string]json.RawMessage{}
	if ka, ok := cfg["keep_alive"]; ok {
		if err := json.Unmarshal(ka, &keepAlive); err != nil {
			return nil, fmt.Errorf("call_store transport: keep_alive: %w", err)
		}
	}
	if _, ok := keepAlive["max_idle_conns_per_host"]; !ok {
		keepAlive["max_idle_conns_per_host"] = json.RawMessage(strconv.Itoa(maxUpstream))
		ka, err := json.Marshal(keepAlive)
		if err != nil {
			return nil, err
		}
		cfg["keep_alive"] = ka
	}
	return json.Marshal(cfg)
}

// loadTransport loads and provisions the call store's HTTP transport
// with the config's context, which cleans it up with the config.
func (cs *CallStoreConfig) loadTransport(ctx caddy.Context, base *url.URL, maxUpstream int) (http.RoundTripper, error) {
	raw, err := transportJSON(cs.TransportRaw, base, maxUpstream)
	if err != nil {
		return nil, err
	}
	// LoadModule reads the field it is told, then clears it: give it the
	// completed config and keep the user's for the adapted JSON.
	given := cs.TransportRaw
	cs.TransportRaw = raw
	mod, err := ctx.LoadModule(cs, "TransportRaw")
	cs.TransportRaw = given
	if err != nil {
		return nil, fmt.Errorf("call_store transport: %w", err)
	}
	t, ok := mod.(*reverseproxy.HTTPTransport)
	if !ok {
		return nil, fmt.Errorf("call_store transport: %T is not the http transport", mod)
	}
	return callStoreTransport{t}, nil
}

// callStoreTransport is reverse_proxy's transport outside reverse_proxy:
// a call-store request must not write into the postback's variables
// (the transport records a proxy there, and a fan-out sends many
// requests at once), and a request without a replacer (the drainer's)
// gets one, as placeholders in tls_server_name or network_proxy need it.
type callStoreTransport struct {
	*reverseproxy.HTTPTransport
}

// RoundTrip implements http.RoundTripper.
func (t callStoreTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	_, hasVars := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any)
	_, hasRepl := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if hasVars || !hasRepl {
		req = req.WithContext(callStoreContext(ctx))
	}
	resp, err := t.HTTPTransport.RoundTrip(req)
	var de reverseproxy.DialError
	if err != nil && errors.As(err, &de) && strings.Contains(de.Error(), syscall.ECONNREFUSED.Error()) {
		err = dialError{err, syscall.ECONNREFUSED}
	}
	return resp, err
}

// dialError restores what reverse_proxy's DialError hides (it does not
// unwrap, and its cause is unexported): a refused connection, so that
// the partner is told the call store refused it.
type dialError struct{ err, cause error }

func (e dialError) Error() string   { return e.err.Error() }
func (e dialError) Unwrap() []error { return []error{e.err, e.cause} }

// callStoreContext is ctx ready for callStoreTransport: without the
// request's variables, with a replacer. The handler and the drainer
// prepare their contexts with it once, so the transport need not per
// request.
func callStoreContext(ctx context.Context) context.Context {
	if _, ok := ctx.Value(caddyhttp.VarsCtxKey).(map[string]any); ok {
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, nil)
	}
	if _, ok := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer); !ok {
		ctx = context.WithValue(ctx, caddy.ReplacerCtxKey, caddy.NewReplacer())
	}
	return ctx
}

// Interface guards
var _ http.RoundTripper = callStoreTransport{}
