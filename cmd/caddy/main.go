// Command caddy is Caddy with the standard modules, caddy-postback and
// its reference call store, for `go run ./cmd/caddy run --config
// Caddyfile.example`. Production builds use xcaddy (xcaddy.md), without
// the reference call store.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/callpostback/caddy-postback"
	_ "github.com/callpostback/caddy-postback/refcallstore"
)

func main() {
	caddycmd.Main()
}
