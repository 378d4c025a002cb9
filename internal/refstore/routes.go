package refstore

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// The routes of the store, all under /v1/calls.
const (
	collectionPath = "/v1/calls"
	completeSuffix = "complete"
)

// maxBody bounds a request body; a call-store body is a few hundred bytes.
const maxBody = 1 << 20

// routeKind is what a request path addresses.
type routeKind int

const (
	routeNone       routeKind = iota
	routeCollection           // /v1/calls
	routeCall                 // /v1/calls/{id}
	routeComplete             // /v1/calls/{id}/complete
	routeDotSegment           // /v1/calls/.. or /v1/calls/. sent unescaped
)

// allowedMethods are the methods of each route, as listed in Allow.
var allowedMethods = map[routeKind][]string{
	routeCollection: {http.MethodGet, http.MethodPost},
	routeCall:       {http.MethodGet, http.MethodPatch},
	routeComplete:   {http.MethodPost},
}

// parseRoute splits an escaped path into a route and the unescaped id.
// Only a literal "/" separates segments, so an id sent as a%2Fb is the one
// id "a/b" and never reaches another route.
func parseRoute(escaped string) (routeKind, string) {
	if escaped == collectionPath {
		return routeCollection, ""
	}
	rest, ok := strings.CutPrefix(escaped, collectionPath+"/")
	if !ok {
		return routeNone, ""
	}
	segs := strings.Split(rest, "/")
	if segs[0] == "." || segs[0] == ".." {
		// Any proxy on the way may resolve a literal dot segment; the id
		// ".." must come as %2E%2E to be taken as an id.
		return routeDotSegment, ""
	}
	id, err := url.PathUnescape(segs[0])
	if err != nil || id == "" {
		return routeNone, ""
	}
	switch {
	case len(segs) == 1:
		return routeCall, id
	case len(segs) == 2 && segs[1] == completeSuffix:
		return routeComplete, id
	}
	return routeNone, ""
}

// ServeHTTP serves the call-store API of docs/operations.md#call-store-api and the development
// routes of docs/operations.md#the-reference-call-store:
//
//	GET   /v1/calls?phone_number=<E.164>&limit=<n>  calls, newest first (operations#finding-a-call-by-phone-number)
//	POST  /v1/calls                                 create a call
//	GET   /v1/calls/{id}                            read a call
//	PATCH /v1/calls/{id}                            update a completed call (operations#updating-a-call)
//	POST  /v1/calls/{id}/complete                   end a call, notify the edge
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	kind, id := parseRoute(r.URL.EscapedPath())
	if kind == routeNone {
		writeError(w, http.StatusNotFound, "not found")
		return
	}
	if kind == routeDotSegment {
		writeError(w, http.StatusBadRequest, "a call id of . or .. must be path-escaped as %2E")
		return
	}
	if allowed := allowedMethods[kind]; !slices.Contains(allowed, r.Method) {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	if kind == routeCall && r.Method == http.MethodPatch {
		// Every PATCH is recorded, so scope errors are handled inside.
		s.servePatch(w, r, id)
		return
	}
	sc, ok := scopeOf(r)
	if !ok {
		writeError(w, http.StatusBadRequest, "X-Account-Id given more than once")
		return
	}
	switch {
	case kind == routeCollection && r.Method == http.MethodGet:
		s.serveFind(w, r, sc)
	case kind == routeCollection:
		s.serveCreate(w, r, sc)
	case kind == routeCall:
		s.serveGet(w, id, sc)
	default:
		s.serveComplete(w, r, id, sc)
	}
}

// scopeOf reads X-Account-Id: present (even empty) means scoped.
func scopeOf(r *http.Request) (scope, bool) {
	switch v := r.Header.Values("X-Account-Id"); len(v) {
	case 0:
		return scope{}, true
	case 1:
		return scope{account: v[0], set: true}, true
	}
	return scope{}, false
}

// servePatch is PATCH /v1/calls/{id} (docs/operations.md#updating-a-call). The body is validated
// before the call is looked up, so a bad body is a 422 whatever the call
// (and the answer says nothing about another account's calls), and a live
// call answers 409 only to an update that would apply once it completes.
func (s *Store) servePatch(w http.ResponseWriter, r *http.Request, id string) {
	rec := PatchRecord{
		CallLogID: id,
		AccountID: r.Header.Get("X-Account-Id"),
		RequestID: r.Header.Get("X-Request-Id"),
		Webhook:   r.Header.Get("X-Postback-Webhook"),
	}
	status, answer := s.patchAnswer(w, r, id, &rec)
	rec.Status = status
	s.record(rec)
	writeJSON(w, status, answer)
}

func (s *Store) patchAnswer(w http.ResponseWriter, r *http.Request, id string, rec *PatchRecord) (int, any) {
	body, status, msg := readBody(w, r)
	rec.Body = body
	if status != 0 {
		return status, errorBody(msg)
	}
	sc, ok := scopeOf(r)
	if !ok {
		return http.StatusBadRequest, errorBody("X-Account-Id given more than once")
	}
	u, err := parseUpdate(body)
	if err != nil {
		return http.StatusUnprocessableEntity, messageBody(err.Error())
	}
	c, err := s.patch(id, sc, u)
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, errorBody(err.Error())
	case errors.Is(err, errLive):
		return http.StatusConflict, map[string]string{"state": StateLive}
	}
	return http.StatusOK, c
}

// callSummary is one call in the answer of docs/operations.md#finding-a-call-by-phone-number.
type callSummary struct {
	CallLogID string `json:"call_log_id"`
	State     string `json:"state"`
}

// serveFind is GET /v1/calls (docs/operations.md#finding-a-call-by-phone-number). Without phone_number it lists
// every call in scope, which helps a demo.
func (s *Store) serveFind(w http.ResponseWriter, r *http.Request, sc scope) {
	q := r.URL.Query()
	phone := q.Get("phone_number")
	if _, given := q["phone_number"]; given {
		var ok bool
		// An unescaped "+" arrives as a space and fails here, which is the
		// point: the edge must send %2B.
		if phone, ok = normalizePhone(phone); !ok {
			writeError(w, http.StatusBadRequest, "phone_number must be an E.164 number such as +15551234567 (escape + as %2B)")
			return
		}
	}
	limit := 0
	if v, given := q["limit"]; given {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 {
			writeError(w, http.StatusBadRequest, "limit must be a positive integer")
			return
		}
		limit = n
	}
	calls := s.find(sc, phone, limit)
	out := make([]callSummary, len(calls))
	for i, c := range calls {
		out[i] = callSummary{CallLogID: c.CallLogID, State: c.State}
	}
	writeJSON(w, http.StatusOK, map[string][]callSummary{"calls": out})
}

// serveCreate is POST /v1/calls (docs/operations.md#the-reference-call-store).
func (s *Store) serveCreate(w http.ResponseWriter, r *http.Request, sc scope) {
	body, status, msg := readBody(w, r)
	if status != 0 {
		writeError(w, status, msg)
		return
	}
	c, err := decodeCall(body)
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, messageBody(err.Error()))
		return
	}
	switch {
	case sc.set && c.Account == "":
		c.Account = sc.account
	case sc.set && c.Account != sc.account:
		writeJSON(w, http.StatusUnprocessableEntity, messageBody("account: differs from X-Account-Id"))
		return
	}
	if c.StartedAt.IsZero() {
		c.StartedAt = now()
	}
	c, err = s.create(c)
	if err != nil {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, c)
}

// serveGet is GET /v1/calls/{id} (docs/operations.md#the-reference-call-store).
func (s *Store) serveGet(w http.ResponseWriter, id string, sc scope) {
	c, err := s.get(id, sc)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// completed is the answer to POST /v1/calls/{id}/complete.
type completed struct {
	Call
	Notified *NotifyResult `json:"notified,omitempty"`
}

// serveComplete is POST /v1/calls/{id}/complete (docs/operations.md#the-reference-call-store, operations#completion-and-dead-letters a). The
// call is completed first and stays so whatever the notification does.
// Completing a completed call answers 200 and notifies again, so a demo
// can re-trigger a drain.
func (s *Store) serveComplete(w http.ResponseWriter, r *http.Request, id string, sc scope) {
	c, err := s.complete(id, sc)
	if err != nil {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	answer := completed{Call: c}
	if s.notify != nil && s.notify.URL != "" {
		res := s.notify.notify(r.Context(), id)
		answer.Notified = &res
	}
	writeJSON(w, http.StatusOK, answer)
}

// readBody reads at most maxBody bytes; on failure it returns the status
// and message to answer.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, http.StatusRequestEntityTooLarge, "body too large"
	case err != nil:
		return nil, http.StatusBadRequest, "cannot read body"
	}
	return body, 0, ""
}

// errorBody is the {"error": "..."} of 4xx answers other than 409 and 422.
func errorBody(msg string) map[string]string { return map[string]string{"error": msg} }

// messageBody is the {"message": "..."} of a 422, which the edge passes on
// to the partner (docs/operations.md#updating-a-call).
func messageBody(msg string) map[string]string { return map[string]string{"message": msg} }

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody(msg))
}

// writeJSON answers v as JSON; every answer of the store is JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	// Ids and reasons are shown as sent, not as \u003c escapes.
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
