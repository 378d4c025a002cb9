// Package refcallstore is the reference call store as a Caddy module,
// http.handlers.postback_callstore (docs/operations.md#the-reference-call-store): the call-store API held in
// memory, for development, demos and tests. It is a package of its own
// so that a production build of the plugin does not contain it; add it
// to a development build with
//
//	xcaddy build --with github.com/callpostback/caddy-postback --with github.com/callpostback/caddy-postback/refcallstore
//
// (xcaddy.md). cmd/caddy includes it.
package refcallstore

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/callpostback/caddy-postback/internal/refstore"
)

func init() {
	caddy.RegisterModule(new(CallStoreHandler))
	httpcaddyfile.RegisterHandlerDirective("postback_callstore", parseCallStoreDirective)
	httpcaddyfile.RegisterDirectiveOrder("postback_callstore", httpcaddyfile.Before, "respond")
}

// CallStoreHandler is the reference call store of docs/operations.md#the-reference-call-store: the call-store
// API of operations#call-store-api held in memory, for development, demos and tests. It is never
// a substitute for the platform's call store in production: what it holds
// is lost on every reload and restart.
type CallStoreHandler struct {
	// Seed is a JSON file of calls to start with, {"calls":[...]}, e.g.
	// testdata/calls.json.
	Seed string `json:"seed,omitempty"`

	// NotifyURL is the edge's call-completed endpoint, told of each call
	// completed with POST /v1/calls/{id}/complete.
	NotifyURL string `json:"notify_url,omitempty"`

	// NotifyKey is the key of a call_completed webhook of the edge, sent
	// as a bearer token; normally a placeholder such as {env.PLATFORM_KEY}.
	NotifyKey string `json:"notify_key,omitempty"`

	store *refstore.Store
}

// CaddyModule returns the Caddy module information.
func (*CallStoreHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.postback_callstore",
		New: func() caddy.Module { return new(CallStoreHandler) },
	}
}

// Provision loads the seed and sets up the notification.
func (h *CallStoreHandler) Provision(ctx caddy.Context) error {
	repl := caddy.NewReplacer()
	var opts refstore.Options
	if h.Seed != "" {
		calls, err := refstore.LoadFile(repl.ReplaceAll(h.Seed, ""))
		if err != nil {
			return fmt.Errorf("postback_callstore: seed: %w", err)
		}
		opts.Seed = calls
	}
	if h.NotifyURL != "" {
		opts.Notify = &refstore.NotifyConfig{URL: repl.ReplaceAll(h.NotifyURL, ""), Key: repl.ReplaceAll(h.NotifyKey, "")}
	}
	h.store = refstore.New(opts)
	ctx.Logger().Warn("the reference call store holds calls in memory, for development and tests only; never use it in production")
	return nil
}

// ServeHTTP serves the call-store API; it never calls next.
func (h *CallStoreHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	h.store.ServeHTTP(w, r)
	return nil
}

// parseCallStoreDirective reads:
//
//	postback_callstore {
//		seed   <file>
//		notify <call-completed url> <key>
//	}
func parseCallStoreDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(CallStoreHandler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile reads the postback_callstore directive.
func (h *CallStoreHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "seed":
			if !d.Args(&h.Seed) || d.NextArg() {
				return d.Err("seed needs one file name")
			}
		case "notify":
			if !d.Args(&h.NotifyURL, &h.NotifyKey) || d.NextArg() {
				return d.Err("notify needs the edge's call-completed URL and a call_completed key")
			}
		default:
			return d.Errf("unknown postback_callstore option %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*CallStoreHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*CallStoreHandler)(nil)
	_ caddyfile.Unmarshaler       = (*CallStoreHandler)(nil)
)
