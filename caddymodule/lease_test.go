package caddymodule_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// operations#the-queue-in-production: a JSON config (and so `caddy validate`, `caddy adapt
// --validate` and every load) whose lease_ttl is below 3 × deadline fails,
// naming both values; without lease_ttl the default follows the deadline.
func TestLeaseTTLCheckedOnJSONLoad(t *testing.T) {
	load := func(postback string) error {
		var cfg caddy.Config
		raw := `{"admin":{"disabled":true},"apps":{"postback":` + postback + `}}`
		if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
			t.Fatal(err)
		}
		return caddy.Validate(&cfg)
	}
	err := load(`{"call_store":{"url":"http://127.0.0.1:9","deadline":"20s"},"lease_ttl":"45s"}`)
	if err == nil || !strings.Contains(err.Error(), "lease_ttl 45s is below 3 × call_store deadline 20s (1m0s)") {
		t.Fatalf("load error %v, want one naming lease_ttl 45s and deadline 20s", err)
	}
	if err := load(`{"call_store":{"url":"http://127.0.0.1:9","deadline":"20s"}}`); err != nil {
		t.Fatalf("without lease_ttl, a 20s deadline must load (default lease 60s): %v", err)
	}
	if err := load(`{"call_store":{"url":"http://127.0.0.1:9","deadline":"20s"},"lease_ttl":"60s"}`); err != nil {
		t.Fatalf("lease_ttl of exactly 3 × deadline must load: %v", err)
	}
}
