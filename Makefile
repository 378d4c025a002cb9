# The demo keys of Caddyfile.example; set them in the environment to override.
export ACME_FIELDS_KEY  ?= demo-fields-key
export ACME_REVENUE_KEY ?= demo-revenue-key
export ACME_TAGS_KEY    ?= demo-tags-key
export OTHER_FIELDS_KEY ?= demo-other-key
export PLATFORM_KEY     ?= demo-platform-key
export ACME_SIGNING_SECRET ?= whsec_Y2FkZHktcG9zdGJhY2stZGVtby1zZWNyZXQtYWNtZSE=

.PHONY: run test caddy xcaddy bench

# Build Caddy with the plugin and run Caddyfile.example.
run: caddy
	./caddy run --config Caddyfile.example --adapter caddyfile

# The test command of the README and CI.
test:
	go test -race ./...

# Caddy with the standard modules and this plugin, versions pinned by go.mod.
caddy:
	go build -o caddy ./cmd/caddy

# The same with xcaddy, as a production build would (see xcaddy.md).
xcaddy:
	command -v xcaddy >/dev/null || go install github.com/caddyserver/xcaddy/cmd/xcaddy@latest
	PATH="$$(go env GOPATH)/bin:$$PATH" xcaddy build --with github.com/callpostback/caddy-postback@v0.0.0=.
