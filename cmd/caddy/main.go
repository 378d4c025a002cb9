// Command caddy is Caddy with the standard modules and caddy-postback, for
// `go run ./cmd/caddy run --config Caddyfile.example`. Production builds
// use xcaddy (xcaddy.md).
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/callpostback/caddy-postback/caddymodule"
)

func main() {
	caddycmd.Main()
}
