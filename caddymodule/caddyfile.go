package caddymodule

import (
	"net/http"
	"strconv"

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
//		}
//		redis <url> { ... }
//		drain_interval <duration>
//		max_age        <duration>
//		lease_ttl      <duration>
//		dead_max_age      <duration>
//		dead_max_per_call <n>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
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
	for d.NextBlock(0) {
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
			for d.NextBlock(1) {
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
			if err := parseDuration(d, &a.LeaseTTL); err != nil {
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
//		auth_param           <name>
//		max_batch            <n>
//		max_body             <size>
//		max_amount           <decimal>
//		strict
//		default_country_code <digits>|none
//		webhook <name> {
//			type       update_revenue|update_tags|update_fields|call_completed
//			account    <account id>
//			key        <key>
//			key_sha256 <hex>
//			rate_limit <events>/<period> [<burst>]
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
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
		case "webhook":
			err = h.unmarshalWebhook(d)
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
	for d.NextBlock(1) {
		var err error
		switch d.Val() {
		case "type":
			if err = parseString(d, &wc.Type); err == nil && postback.EndpointOfType(wc.Type) == postback.EndpointUnknown {
				return d.Errf("webhook %s: type %q must be one of update_revenue, update_tags, update_fields, call_completed", wc.Name, wc.Type)
			}
		case "account":
			err = parseString(d, &wc.Account)
		case "key":
			err = parseString(d, &wc.Key)
		case "key_sha256":
			if err = parseString(d, &wc.KeySHA256); err == nil {
				if _, kerr := postback.NewWebhook(wc.Name, postback.TypeUpdateFields, "", "", wc.KeySHA256); kerr != nil {
					return d.Errf("webhook %s: key_sha256 must be 64 hex digits", wc.Name)
				}
			}
		case "rate_limit":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Errf("webhook %s: rate_limit needs a rate such as 100/s and an optional burst", wc.Name)
			}
			if _, rerr := ratelimit.ParseRate(args[0]); rerr != nil {
				return d.Errf("webhook %s: %v", wc.Name, rerr)
			}
			wc.RateLimit = args[0]
			if len(args) == 2 {
				if wc.Burst, err = strconv.Atoi(args[1]); err != nil || wc.Burst <= 0 {
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
	case wc.Key == "" && wc.KeySHA256 == "":
		return d.Errf("webhook %s needs key or key_sha256", wc.Name)
	case wc.Key != "" && wc.KeySHA256 != "":
		return d.Errf("webhook %s: give key or key_sha256, not both", wc.Name)
	}
	h.Webhooks = append(h.Webhooks, wc)
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
