// Package caddypostback registers the caddy-postback modules with Caddy, so
// that `xcaddy build --with github.com/callpostback/caddy-postback` (which
// imports the module's root) builds Caddy with the plugin. The code lives in
// caddymodule (Caddy glue) and postback (the domain).
package caddypostback

import (
	_ "github.com/callpostback/caddy-postback/caddymodule"
)
