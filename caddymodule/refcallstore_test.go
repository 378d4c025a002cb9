package caddymodule_test

// The tests run the reference call store in the same Caddy as the edge
// (Caddyfile.example, the tenancy tests): it is registered here, never
// by the plugin itself.
import _ "github.com/callpostback/caddy-postback/refcallstore"
