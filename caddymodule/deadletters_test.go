package caddymodule_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/sjson"
)

func init() {
	caddy.RegisterModule(recorderModule{})
}

// recorderModule is an events handler that hands each event to recorded.
type recorderModule struct{}

func (recorderModule) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.postback_test_recorder", New: func() caddy.Module { return recorderModule{} }}
}

func (recorderModule) Handle(ctx context.Context, e caddy.Event) error {
	return recorded.Handle(ctx, e)
}

var recorded = new(eventRecorder)

// eventRecorder keeps the data of every event it is given.
type eventRecorder struct {
	mu     sync.Mutex
	events []map[string]any
}

func (r *eventRecorder) Handle(_ context.Context, e caddy.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	data := make(map[string]any, len(e.Data))
	for k, v := range e.Data {
		data[k] = v
	}
	data["name"] = e.Name()
	r.events = append(r.events, data)
	return nil
}

func (r *eventRecorder) seen() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.events...)
}

// A dead letter emits postback_dead_letter through Caddy's events app, with
// what finds it and without the PATCH (operations#dead-letters).
func TestDeadLetterEvent(t *testing.T) {
	store := newScriptedStore(t)
	store.set("ev-1", "live")
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(edgeConfig(store.URL, "", "")), nil)
	if err != nil {
		t.Fatal(err)
	}
	config, err := sjson.SetRawBytes(adapted, "apps.events", []byte(`{"subscriptions":[{"events":["postback_dead_letter"],"handlers":[{"handler":"postback_test_recorder"}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 10 * time.Second, TestRequestTimeout: 15 * time.Second})
	tester.InitServer(string(config), "json")
	rec := recorded
	queueUpdate(t, tester, fieldsKey, `{"call_log_id":"ev-1","revenue_paid_out":12.34}`)
	store.set("ev-1", "refuse")
	complete(t, tester, "ev-1")
	waitFor(t, "the event", func() bool { return len(rec.seen()) == 1 })
	e := rec.seen()[0]
	for k, want := range map[string]any{
		"name": "postback_dead_letter", "call_log_id": "ev-1", "webhook": "acme", "account": "acct_1",
		"reason": "rejected: revenue is locked for billing",
	} {
		if e[k] != want {
			t.Errorf("event %s = %v, want %v", k, e[k], want)
		}
	}
	for _, k := range []string{"entry", "request_id", "dead_at"} {
		if s, _ := e[k].(string); s == "" {
			t.Errorf("event has no %s: %v", k, e)
		}
	}
	if _, ok := e["patch"]; ok {
		t.Errorf("event carries the PATCH: %v", e)
	}
}
