package caddymodule

import (
	"errors"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// RedisConfig configures the Redis queue shared by many instances.
type RedisConfig struct {
	// URL is a redis:// or rediss:// URL of a single node.
	URL string `json:"url,omitempty"`
}

func (a *App) unmarshalRedis(d *caddyfile.Dispenser) error {
	return d.Err("redis is not available in this build yet")
}

func (a *App) provisionRedis(*caddy.Replacer) error {
	return errors.New("postback: redis is not available in this build yet")
}
