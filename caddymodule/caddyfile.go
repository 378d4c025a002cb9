package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/callpostback/caddy-postback/internal/ratelimit"
	"github.com/callpostback/caddy-postback/postback"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("postback", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("postback", parseHandlerDirective)
	httpcaddyfile.RegisterDirectiveOrder("postback", httpcaddyfile.Before, "respond")
}

// parseGlobalOption sets up the postback app from the global option:
//
//	postback {
//		call_store <url> {
//			timeout         <duration>
//			deadline        <duration>
//			max_concurrency <n>
//			max_upstream    <n>
//			header          <name> <value>
//			transport http {
//				<reverse_proxy's transport http options>
//			}
//		}
//		redis <url> { ... }
//		drain_interval <duration>
//		max_age        <duration>
//		lease_ttl      <duration>
//		max_pending_per_call <n>
//		dead_max_age      <duration>
//		dead_max_per_call <n>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	// A second block would silently replace the first.
	if existing != nil {
		d.Next() // the option name, for the line of the error
		return nil, d.Err("the global postback option is given twice; merge the two blocks into one")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "postback", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the global postback option.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the option name
	if d.NextArg() {
		return d.ArgErr()
	}
	var leaseAt string
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "call_store":
			if a.CallStore != nil {
				return d.Err("call_store is given twice")
			}
			cs := new(CallStoreConfig)
			if !d.NextArg() {
				return d.Err("call_store needs the call store's URL")
			}
			cs.URL = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				var err error
				switch d.Val() {
				case "timeout":
					err = parseDuration(d, &cs.Timeout)
				case "deadline":
					err = parseDuration(d, &cs.Deadline)
				case "max_concurrency":
					err = parsePositiveInt(d, &cs.MaxConcurrency)
				case "max_upstream":
					err = parsePositiveInt(d, &cs.MaxUpstream)
				case "header":
					var name, value string
					if !d.Args(&name, &value) || d.NextArg() {
						return d.Err("header needs a name and a value")
					}
					if cs.Headers == nil {
						cs.Headers = make(http.Header)
					}
					cs.Headers.Add(name, value)
				case "transport":
					err = cs.unmarshalTransport(d)
				default:
					return d.Errf("unknown call_store option %q", d.Val())
				}
				if err != nil {
					return err
				}
			}
			a.CallStore = cs
		case "redis":
			if err := a.unmarshalRedis(d); err != nil {
				return err
			}
		case "drain_interval":
			if err := parseDuration(d, &a.DrainInterval); err != nil {
				return err
			}
		case "max_age":
			if err := parseDuration(d, &a.MaxAge); err != nil {
				return err
			}
		case "lease_ttl":
			leaseAt = fmt.Sprintf("%s:%d", d.File(), d.Line())
			if err := parseDuration(d, &a.LeaseTTL); err != nil {
				return err
			}
		case "max_pending_per_call":
			if err := parsePositiveInt(d, &a.MaxPendingPerCall); err != nil {
				return err
			}
		case "dead_max_age":
			if err := parseDuration(d, &a.DeadMaxAge); err != nil {
				return err
			}
		case "dead_max_per_call":
			if err := parsePositiveInt(d, &a.DeadMaxPerCall); err != nil {
				return err
			}
		default:
			return d.Errf("unknown postback option %q", d.Val())
		}
	}
	if a.CallStore == nil {
		return d.Err("postback needs call_store <url>")
	}
	// Checked here too, so that `caddy adapt` fails on it, not only a load.
	deadline := time.Duration(a.CallStore.Deadline)
	if deadline <= 0 {
		deadline = DefaultDeadline
	}
	if a.LeaseTTL > 0 && time.Duration(a.LeaseTTL) < leaseFactor*deadline {
		return fmt.Errorf("%w, at %s", leaseTooShort(time.Duration(a.LeaseTTL), deadline), leaseAt)
	}
	return nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	err := handler.UnmarshalCaddyfile(h.Dispenser)
	return handler, err
}

// UnmarshalCaddyfile reads the postback directive:
//
//	postback {
//		id                   <admin API id>
//		auth_param           <name>
//		max_batch            <n>
//		max_body             <size>
//		max_amount           <decimal>
//		strict
//		default_country_code <digits>|none
//		idempotency_window   <duration>
//		idempotency_max_keys <n>
//		webhook <name> {
//			type           update_revenue|update_tags|update_fields|call_completed
//			account        <account id>
//			key            <key> [expires <RFC 3339 time>]
//			key_sha256     <hex> [expires <RFC 3339 time>]
//			signing_secret <whsec_...>
//			require        key_and_signature
//			rate_limit     <events>/<period> [<burst>]
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "auth_param":
			err = parseString(d, &h.AuthParam)
		case "max_batch":
			err = parsePositiveInt(d, &h.MaxBatch)
		case "max_body":
			var s string
			if err = parseString(d, &s); err == nil {
				size, perr := humanize.ParseBytes(s)
				if perr != nil || size == 0 || size > 16<<20 {
					return d.Errf("max_body %q must be a size from 1 byte to 16MiB, such as 64KiB", s)
				}
				h.MaxBody = int64(size)
			}
		case "max_amount":
			if err = parseString(d, &h.MaxAmount); err == nil {
				if _, msg := postback.ParseAmount(h.MaxAmount); msg != "" {
					return d.Errf("max_amount %q %s", h.MaxAmount, msg)
				}
			}
		case "strict":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Strict = true
		case "default_country_code":
			err = parseString(d, &h.DefaultCountryCode)
		case "idempotency_window":
			if err = parseDuration(d, &h.IdempotencyWindow); err == nil {
				if w := time.Duration(h.IdempotencyWindow); w < time.Second || w > postback.MaxIdempotencyWindow {
					return d.Errf("idempotency_window %s must be from 1s to 168h", w)
				}
			}
		case "idempotency_max_keys":
			err = parsePositiveInt(d, &h.IdempotencyMaxKeys)
		case "webhook":
			err = h.unmarshalWebhook(d)
		case "id":
			err = parseString(d, &h.ID)
		default:
			return d.Errf("unknown postback option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if len(h.Webhooks) == 0 {
		return d.Err("postback needs at least one webhook")
	}
	return nil
}

func (h *Handler) unmarshalWebhook(d *caddyfile.Dispenser) error {
	var wc WebhookConfig
	if !d.Args(&wc.Name) {
		return d.Err("webhook needs a name")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for _, other := range h.Webhooks {
		if other.Name == wc.Name {
			return d.Errf("webhook %q is defined twice", wc.Name)
		}
	}
	var keys []KeyConfig
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "type":
			if err = parseString(d, &wc.Type); err == nil && postback.EndpointOfType(wc.Type) == postback.EndpointUnknown {
				return d.Errf("webhook %s: type %q must be one of update_revenue, update_tags, update_fields, call_completed", wc.Name, wc.Type)
			}
		case "account":
			err = parseString(d, &wc.Account)
		case "key", "key_sha256":
			var kc KeyConfig
			if kc, err = parseKey(d, wc.Name); err == nil {
				keys = append(keys, kc)
			}
		case "signing_secret":
			var secret string
			if err = parseString(d, &secret); err == nil {
				// A placeholder is checked when it is replaced, at load.
				if !strings.Contains(secret, "{") {
					if _, serr := postback.ParseSigningSecret(secret); serr != nil {
						return d.Errf("webhook %s: %v", wc.Name, serr)
					}
				}
				wc.SigningSecrets = append(wc.SigningSecrets, secret)
			}
		case "require":
			if err = parseString(d, &wc.Require); err == nil && wc.Require != RequireKeyAndSignature {
				return d.Errf("webhook %s: require %q must be key_and_signature", wc.Name, wc.Require)
			}
		case "rate_limit":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("webhook %s: rate_limit needs a rate such as 100/s and an optional burst", wc.Name)
			}
			rate, rerr := ratelimit.ParseRate(args[0])
			if rerr != nil {
				return d.Errf("webhook %s: %v", wc.Name, rerr)
			}
			wc.RateLimit = &RateLimitConfig{Events: rate.Events, Window: caddy.Duration(rate.Per)}
			if len(args) == 2 {
				if wc.RateLimit.Burst, err = strconv.Atoi(args[1]); err != nil || wc.RateLimit.Burst <= 0 {
					return d.Errf("webhook %s: burst %q must be a positive whole number", wc.Name, args[1])
				}
			}
		default:
			return d.Errf("webhook %s: unknown option %q", wc.Name, d.Val())
		}
		if err != nil {
			return err
		}
	}
	switch {
	case wc.Type == "":
		return d.Errf("webhook %s needs a type", wc.Name)
	case len(keys) == 0 && len(wc.SigningSecrets) == 0:
		return d.Errf("webhook %s needs key, key_sha256 or signing_secret", wc.Name)
	case wc.Require != "" && (len(keys) == 0 || len(wc.SigningSecrets) == 0):
		return d.Errf("webhook %s: require key_and_signature needs a key (or key_sha256) and a signing_secret", wc.Name)
	case len(keys) == 1:
		// One key keeps the single form: {"key": ...} or {"key_sha256": ...}.
		wc.Key, wc.KeySHA256, wc.KeyExpires = keys[0].Key, keys[0].KeySHA256, keys[0].Expires
	default:
		wc.Keys = keys
	}
	h.Webhooks = append(h.Webhooks, wc)
	return nil
}

// parseKey reads `key <key> [expires <time>]` or `key_sha256 <hex>
// [expires <time>]`.
func parseKey(d *caddyfile.Dispenser, webhook string) (KeyConfig, error) {
	var kc KeyConfig
	option := d.Val()
	args := d.RemainingArgs()
	if len(args) != 1 && (len(args) != 3 || args[1] != "expires") {
		return kc, d.Errf("webhook %s: %s needs a value and, optionally, expires <RFC 3339 time>", webhook, option)
	}
	if option == "key" {
		kc.Key = args[0]
	} else {
		kc.KeySHA256 = args[0]
		if _, err := postback.NewWebhook(webhook, postback.TypeUpdateFields, "", "", kc.KeySHA256); err != nil {
			return kc, d.Errf("webhook %s: key_sha256 must be 64 hex digits", webhook)
		}
	}
	if len(args) == 3 {
		if _, err := time.Parse(time.RFC3339, args[2]); err != nil {
			return kc, d.Errf("webhook %s: expires %q must be an RFC 3339 time such as 2026-12-31T00:00:00Z", webhook, args[2])
		}
		kc.Expires = args[2]
	}
	return kc, nil
}

// unmarshalTransport reads `transport http { ... }` with the transport's
// own Caddyfile reader, as reverse_proxy does, so every option it
// documents works here (docs/operations.md#call-store-transport).
func (cs *CallStoreConfig) unmarshalTransport(d *caddyfile.Dispenser) error {
	if cs.TransportRaw != nil {
		return d.Err("transport is given twice")
	}
	if !d.NextArg() {
		return d.Err("transport needs its protocol: transport http { ... }")
	}
	if d.Val() != "http" {
		return d.Errf("transport %q: only the http transport can reach a call store", d.Val())
	}
	unm, err := caddyfile.UnmarshalModule(d, "http.reverse_proxy.transport.http")
	if err != nil {
		return err
	}
	cs.TransportRaw = caddyconfig.JSONModuleObject(unm, "protocol", "http", nil)
	return nil
}

func parseString(d *caddyfile.Dispenser, dst *string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.Errf("%s needs a value", name)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	var s string
	name := d.Val()
	if err := parseString(d, &s); err != nil {
		return err
	}
	dur, err := caddy.ParseDuration(s)
	if err != nil || dur <= 0 {
		return d.Errf("%s %q must be a positive duration such as 5s", name, s)
	}
	*dst = caddy.Duration(dur)
	return nil
}

func parsePositiveInt(d *caddyfile.Dispenser, dst *int) error {
	var s string
	name := d.Val()
	if err := parseString(d, &s); err != nil {
		return err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return d.Errf("%s %q must be a positive whole number", name, s)
	}
	*dst = n
	return nil
}

var (
	_ caddyfile.Unmarshaler = (*App)(nil)
	_ caddyfile.Unmarshaler = (*Handler)(nil)
)
