package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/callpostback/caddy-postback/internal/queue"
)

func init() {
	caddy.RegisterModule(adminQueue{})
}

// adminQueue shows the queue of calls in progress on Caddy's admin API:
//
//	GET  /postback/queue                          counts of pending and dead entries
//	POST /postback/queue                          count again by walking the queue, then as GET
//	GET  /postback/queue/{call_log_id}            a call's pending entries and dead letters
//
// and the dead-letter routes of admin_dead.go.
//
// Like caddypki's admin API, it reaches the app through the context of
// the config it was loaded with: each config's admin routes serve that
// config's app.
type adminQueue struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (adminQueue) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.postback",
		New: func() caddy.Module { return new(adminQueue) },
	}
}

// Provision takes the config's postback app, if it has one.
func (a *adminQueue) Provision(ctx caddy.Context) error {
	// AppIfConfigured, not App: a config without the postback app must
	// not get one just because the admin API is there.
	app, err := ctx.AppIfConfigured("postback")
	if err == nil {
		a.app = app.(*App)
	}
	return nil
}

// Routes returns the admin routes.
func (a *adminQueue) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/postback/queue", Handler: caddy.AdminHandlerFunc(a.handleStats)},
		{Pattern: "/postback/queue/", Handler: caddy.AdminHandlerFunc(a.handleCall)},
		{Pattern: "/postback/dead", Handler: caddy.AdminHandlerFunc(a.handleDeadList)},
		{Pattern: "/postback/dead/", Handler: caddy.AdminHandlerFunc(a.handleDead)},
	}
}

// recounter is a queue whose counts are kept apart from its entries and
// can be set again from them (Redis; the memory queue counts what it holds).
type recounter interface {
	Recount(ctx context.Context) error
}

func (a *adminQueue) handleStats(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	app, err := a.currentApp()
	if err != nil {
		return err
	}
	if rc, ok := app.queue.(recounter); ok && r.Method == http.MethodPost {
		if err := rc.Recount(r.Context()); err != nil {
			return queueError(err)
		}
	}
	st, err := app.queue.Stats(r.Context())
	if err != nil {
		return queueError(err)
	}
	return writeAdminJSON(w, struct {
		queue.Stats
		Backend string `json:"backend"`
	}{st, app.queueBackend()})
}

// adminEntry is a queued update as the admin API shows it; the patch is
// the PATCH body, as JSON.
type adminEntry struct {
	ID         string          `json:"id"`
	Account    string          `json:"account,omitempty"`
	Webhook    string          `json:"webhook,omitempty"`
	RequestID  string          `json:"request_id,omitempty"`
	AcceptedAt time.Time       `json:"accepted_at"`
	Patch      json.RawMessage `json:"patch"`
	Reason     string          `json:"reason,omitempty"`
	DeadAt     *time.Time      `json:"dead_at,omitempty"`
	// EditedAt and Edited show an operator's edit before a requeue.
	EditedAt *time.Time `json:"edited_at,omitempty"`
	Edited   []string   `json:"edited,omitempty"`
}

func toAdminEntry(e queue.Entry) adminEntry {
	patch := json.RawMessage(e.Patch)
	if !json.Valid(patch) {
		patch, _ = json.Marshal(string(e.Patch))
	}
	ae := adminEntry{ID: e.ID, Account: e.Account, Webhook: e.Webhook, RequestID: e.RequestID, AcceptedAt: e.AcceptedAt, Patch: patch}
	if !e.EditedAt.IsZero() {
		ae.EditedAt, ae.Edited = &e.EditedAt, e.Edited
	}
	return ae
}

func (a *adminQueue) handleCall(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	id, err := callIDFromPath(r, "/postback/queue/", "")
	if err != nil {
		return err
	}
	app, err := a.currentApp()
	if err != nil {
		return err
	}
	pending, err := app.queue.Pending(r.Context(), id)
	if err != nil {
		return queueError(err)
	}
	dead, err := app.queue.Dead(r.Context(), id)
	if err != nil {
		return queueError(err)
	}
	out := struct {
		CallLogID string       `json:"call_log_id"`
		Pending   []adminEntry `json:"pending"`
		Dead      []adminEntry `json:"dead"`
	}{CallLogID: id, Pending: []adminEntry{}, Dead: []adminEntry{}}
	for _, e := range pending {
		out.Pending = append(out.Pending, toAdminEntry(e))
	}
	for _, d := range dead {
		ae := toAdminEntry(d.Entry)
		ae.Reason, ae.DeadAt = d.Reason, &d.DeadAt
		out.Dead = append(out.Dead, ae)
	}
	return writeAdminJSON(w, out)
}

// callIDFromPath takes the escaped id between prefix and suffix.
func callIDFromPath(r *http.Request, prefix, suffix string) (string, error) {
	p := r.URL.EscapedPath()
	rest, ok := strings.CutPrefix(p, prefix)
	if ok && suffix != "" {
		rest, ok = strings.CutSuffix(rest, suffix)
	}
	id, err := url.PathUnescape(rest)
	if !ok || err != nil || id == "" || strings.Contains(rest, "/") {
		return "", caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("use %s{call_log_id}%s, with the id path-escaped", prefix, suffix)}
	}
	return id, nil
}

func (a *adminQueue) currentApp() (*App, error) {
	app := a.app
	if app == nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("no postback app is running")}
	}
	return app, nil
}

func queueError(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusServiceUnavailable, Err: fmt.Errorf("queue unavailable: %w", err)}
}

func methodNotAllowed(r *http.Request) error {
	return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

// Interface guards
var (
	_ caddy.AdminRouter = (*adminQueue)(nil)
	_ caddy.Provisioner = (*adminQueue)(nil)
)
