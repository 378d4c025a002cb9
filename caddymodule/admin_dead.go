package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/postback"
)

// The dead letters on Caddy's admin API (docs/operations.md#dead-letters):
//
//	GET  /postback/dead                          calls with dead letters, filtered, newest first, by pages
//	POST /postback/dead/requeue                  requeue the dead letters matching filters (or count them: dry_run)
//	POST /postback/dead/{call_log_id}/requeue    requeue a call's dead letters, optionally edited first

// Listing bounds.
const (
	defaultDeadLimit = 100
	maxDeadLimit     = 1000
	// maxAdminBody bounds a request body of the admin routes above.
	maxAdminBody = 64 << 10
)

// deadQuery is a filter with its page, from a query string or a JSON body.
type deadQuery struct {
	filter queue.DeadFilter
	cursor string
	limit  int
	dryRun bool
}

// set reads one filter or paging parameter into q.
func (q *deadQuery) set(name, value string) error {
	switch name {
	case "webhook":
		q.filter.Webhook = value
	case "account":
		q.filter.Account = value
	case "reason":
		q.filter.Reason = value
	case "since":
		t, err := time.Parse(time.RFC3339Nano, value)
		if err != nil {
			return fmt.Errorf("since %q is not an RFC 3339 time such as 2026-03-27T10:00:00Z", value)
		}
		q.filter.Since = t
	case "cursor":
		if _, err := queue.ParseDeadCursor(value); err != nil {
			return fmt.Errorf("cursor: %v", err)
		}
		q.cursor = value
	case "limit":
		n, err := strconv.Atoi(value)
		if err != nil || n < 1 || n > maxDeadLimit {
			return fmt.Errorf("limit %q must be a whole number from 1 to %d", value, maxDeadLimit)
		}
		q.limit = n
	default:
		return fmt.Errorf("unknown parameter %q; filters are webhook, account, reason, since, with limit and cursor", name)
	}
	return nil
}

func badRequest(err error) error {
	return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: err}
}

func (a *adminQueue) handleDeadList(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return methodNotAllowed(r)
	}
	q := deadQuery{limit: defaultDeadLimit}
	for name, values := range r.URL.Query() {
		if len(values) != 1 {
			return badRequest(fmt.Errorf("parameter %q given %d times", name, len(values)))
		}
		if err := q.set(name, values[0]); err != nil {
			return badRequest(err)
		}
	}
	app, err := a.currentApp()
	if err != nil {
		return err
	}
	page, err := app.queue.ListDead(r.Context(), q.filter, q.cursor, q.limit)
	if err != nil {
		return queueError(err)
	}
	return writeAdminJSON(w, page)
}

// handleDead serves the POST routes under /postback/dead/.
func (a *adminQueue) handleDead(w http.ResponseWriter, r *http.Request) error {
	if r.URL.EscapedPath() == "/postback/dead/requeue" {
		return a.handleBulkRequeue(w, r)
	}
	return a.handleCallRequeue(w, r)
}

// readAdminBody reads a JSON object body, at most maxAdminBody; empty is
// allowed and returned as nil.
func readAdminBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxAdminBody+1))
	if err != nil {
		return nil, badRequest(fmt.Errorf("reading the body: %w", err))
	}
	if len(body) > maxAdminBody {
		return nil, caddy.APIError{HTTPStatus: http.StatusRequestEntityTooLarge, Err: fmt.Errorf("body larger than %d bytes", maxAdminBody)}
	}
	if len(gjson.ParseBytes(body).Raw) == 0 {
		return nil, nil
	}
	if !gjson.ValidBytes(body) || !gjson.ParseBytes(body).IsObject() {
		return nil, badRequest(errors.New("the body must be a JSON object"))
	}
	return body, nil
}

func (a *adminQueue) handleBulkRequeue(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	body, err := readAdminBody(r)
	if err != nil {
		return err
	}
	q := deadQuery{limit: maxDeadLimit}
	var bad error
	seen := map[string]bool{}
	gjson.ParseBytes(body).ForEach(func(key, value gjson.Result) bool {
		switch {
		case seen[key.Str]:
			bad = fmt.Errorf("%q given twice", key.Str)
		case key.Str == "dry_run":
			if value.Type != gjson.True && value.Type != gjson.False {
				bad = errors.New("dry_run must be true or false")
			}
			q.dryRun = value.Type == gjson.True
		case key.Str == "limit":
			if value.Type != gjson.Number {
				bad = fmt.Errorf("limit must be a whole number from 1 to %d", maxDeadLimit)
			} else {
				bad = q.set("limit", value.Raw)
			}
		case value.Type != gjson.String:
			bad = fmt.Errorf("%s must be a string", key.Str)
		default:
			bad = q.set(key.Str, value.Str)
		}
		seen[key.Str] = true
		return bad == nil
	})
	if bad != nil {
		return badRequest(bad)
	}
	app, err := a.currentApp()
	if err != nil {
		return err
	}
	page, err := app.queue.ListDead(r.Context(), q.filter, q.cursor, q.limit)
	if err != nil {
		return queueError(err)
	}
	out := struct {
		Calls   int    `json:"calls"`
		Entries int    `json:"entries"`
		DryRun  bool   `json:"dry_run,omitempty"`
		Next    string `json:"next,omitempty"`
	}{DryRun: q.dryRun, Next: page.Next}
	now := time.Now()
	for _, c := range page.Calls {
		if q.dryRun {
			out.Calls++
			out.Entries += c.Count
			continue
		}
		n, err := requeueMatching(r, app.queue, c.CallLogID, q.filter, now)
		if err != nil {
			return err
		}
		if n > 0 {
			out.Calls++
			out.Entries += n
		}
	}
	if out.Entries > 0 {
		app.drainer.Wake()
	}
	return writeAdminJSON(w, out)
}

// requeueMatching moves a call's dead letters that match f back to the
// head of its list, in their order. A bury or requeue of the same call in
// between makes the queue refuse; the letters are read again.
func requeueMatching(r *http.Request, q queue.Queue, callLogID string, f queue.DeadFilter, now time.Time) (int, error) {
	for range 3 {
		dead, err := q.Dead(r.Context(), callLogID)
		if err != nil {
			return 0, queueError(err)
		}
		var letters []queue.Entry
		for _, d := range dead {
			if f.Match(d) {
				letters = append(letters, d.Entry)
			}
		}
		n, err := q.Revive(r.Context(), callLogID, letters, now)
		if errors.Is(err, queue.ErrDeadChanged) {
			continue
		}
		if err != nil {
			return 0, queueError(err)
		}
		return n, nil
	}
	return 0, caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("the dead letters of call %q kept changing; try again", callLogID)}
}

// editParser checks an edited PATCH by a partner's rules, with the default
// limits (docs/operations.md#dead-letters).
var editParser = postback.Parser{
	MaxBatch:  postback.DefaultMaxBatch,
	MaxAmount: postback.DefaultMaxAmount,
	MaxTags:   postback.DefaultMaxTags,
	Now:       time.Now,
}

func (a *adminQueue) handleCallRequeue(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r)
	}
	id, err := callIDFromPath(r, "/postback/dead/", "/requeue")
	if err != nil {
		return err
	}
	body, err := readAdminBody(r)
	if err != nil {
		return err
	}
	edit, perr := postback.ParsePatchEdit(body)
	if perr != nil {
		return badRequest(fmt.Errorf("invalid edit: %s", fieldProblems(perr)))
	}
	app, err := a.currentApp()
	if err != nil {
		return err
	}
	out := struct {
		CallLogID string   `json:"call_log_id"`
		Requeued  int      `json:"requeued"`
		Edited    []string `json:"edited,omitempty"`
	}{CallLogID: id}
	if edit.Empty() {
		if out.Requeued, err = app.queue.Requeue(r.Context(), id, time.Now()); err != nil {
			return queueError(err)
		}
	} else {
		if out.Requeued, err = requeueEdited(r, app.queue, id, edit); err != nil {
			return err
		}
		out.Edited = edit.Fields()
	}
	if out.Requeued > 0 {
		app.drainer.Wake()
	}
	return writeAdminJSON(w, out)
}

// requeueEdited edits every dead letter of a call and requeues them all,
// or, if one edit is invalid, none.
func requeueEdited(r *http.Request, q queue.Queue, callLogID string, edit postback.PatchEdit) (int, error) {
	dead, err := q.Dead(r.Context(), callLogID)
	if err != nil {
		return 0, queueError(err)
	}
	if len(dead) == 0 {
		return 0, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("call %q has no dead letters", callLogID)}
	}
	now := time.Now().UTC()
	letters := make([]queue.Entry, len(dead))
	for i, d := range dead {
		patch, err := edit.Apply(d.Patch)
		if err != nil {
			return 0, badRequest(fmt.Errorf("dead letter %s: the stored PATCH cannot be edited: %v", d.ID, err))
		}
		if perr := editParser.CheckPatch(patch); perr != nil {
			return 0, badRequest(fmt.Errorf("invalid edit of dead letter %s: %s", d.ID, fieldProblems(perr)))
		}
		letters[i] = d.Entry
		letters[i].Patch, letters[i].EditedAt, letters[i].Edited = patch, now, edit.Fields()
	}
	n, err := q.Revive(r.Context(), callLogID, letters, now)
	if errors.Is(err, queue.ErrDeadChanged) {
		return 0, caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("the dead letters of call %q changed meanwhile; look again and retry", callLogID)}
	}
	if err != nil {
		return 0, queueError(err)
	}
	return n, nil
}

// fieldProblems says what is wrong with each field, or the message when
// the problem is not one field's.
func fieldProblems(e *postback.Error) string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Field + ": " + f.Message
	}
	return strings.Join(parts, "; ")
}
