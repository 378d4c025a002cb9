package refstore

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const seedPath = "../../testdata/calls.json"

// newSeeded starts a store holding testdata/calls.json behind an
// httptest server on 127.0.0.1.
func newSeeded(t *testing.T, notify *NotifyConfig) (*Store, *httptest.Server) {
	t.Helper()
	calls, err := LoadFile(seedPath)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	s := New(Options{Seed: calls, Notify: notify})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// response is an answer of the store, already read.
type response struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body, keeping numbers as their text.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// do sends a request; path is sent as written, escapes included, and
// headers come in name, value pairs.
func do(t *testing.T, srv *httptest.Server, method, path, body string, headers ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatalf("NewRequest: %v", err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantStatus fails the test when the answer has another status.
func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
}

// wantBody fails the test when the answer is not exactly the JSON want.
func wantBody(t *testing.T, r response, want string) {
	t.Helper()
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Fatalf("body %s, want %s", got, want)
	}
}

func mustCall(t *testing.T, s *Store, id string) Call {
	t.Helper()
	c, ok := s.Call(id)
	if !ok {
		t.Fatalf("call %q not in the store", id)
	}
	return c
}
