package caddymodule_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/callpostback/caddy-postback/caddymodule"
)

// The Caddy of these tests runs in this process (caddytest), one config at
// a time; every test loads its own.
var (
	adminPort = freePort()
	edgePort  = freePort()
)

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// patchRecord is one PATCH the call store received.
type patchRecord struct {
	ID      string
	Account string
	Webhook string
	ReqID   string
	Body    string
}

// scriptedStore is a real HTTP call store (docs/operations.md#call-store-api) whose answers each test
// sets per call: "completed" (default), "live", "live-slow" (live, after 1s), "gone" (404), "refuse"
// (422), "error" (503), "hang", "busy-once" (429 with Retry-After, then
// applied), "flaky" (three 503s, then applied), "teapot" (418),
// "garbage-409" (409 with an HTML body).
type scriptedStore struct {
	*httptest.Server
	mu       sync.Mutex
	state    map[string]string
	accounts map[string]string // call → account; other accounts get 404
	phones   map[string]string // E.164 → call
	patches  []patchRecord
	hits     map[string]int // PATCHes per call
	lookups  int            // GET /v1/calls/{id}
	inFlight atomic.Int32
	peak     atomic.Int32
	delay    time.Duration
	// hold, when set (holdAll), keeps every request waiting until it is closed.
	hold chan struct{}
}

func newScriptedStore(t *testing.T) *scriptedStore {
	s := &scriptedStore{state: map[string]string{}, accounts: map[string]string{}, phones: map[string]string{}, hits: map[string]int{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// holdAll keeps every request from now on waiting until release is called.
func (s *scriptedStore) holdAll() (release func()) {
	hold := make(chan struct{})
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
	return func() { close(hold) }
}

func (s *scriptedStore) set(id, state string) {
	s.mu.Lock()
	s.state[id] = state
	s.mu.Unlock()
}

func (s *scriptedStore) serve(w http.ResponseWriter, r *http.Request) {
	n := s.inFlight.Add(1)
	// A PATCH leaves the count before its answer is written, so that the
	// request its sender makes next, once answered, is never counted with it.
	left := false
	leave := func() {
		if !left {
			left = true
			s.inFlight.Add(-1)
		}
	}
	defer leave()
	for {
		p := s.peak.Load()
		if n <= p || s.peak.CompareAndSwap(p, n) {
			break
		}
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	hold := s.hold
	s.mu.Unlock()
	if hold != nil {
		<-hold
	}
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet && r.URL.Path == "/v1/calls" {
		s.mu.Lock()
		id, ok := s.phones[r.URL.Query().Get("phone_number")]
		s.mu.Unlock()
		if !ok {
			io.WriteString(w, `{"calls":[]}`)
			return
		}
		fmt.Fprintf(w, `{"calls":[{"call_log_id":%q,"state":"completed"}]}`, id)
		return
	}
	id, ok := strings.CutPrefix(r.URL.EscapedPath(), "/v1/calls/")
	if r.Method == http.MethodGet && ok {
		s.serveLookup(w, r, id)
		return
	}
	if r.Method != http.MethodPatch || !ok {
		http.Error(w, `{"error":"no route"}`, http.StatusNotFound)
		return
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	state := s.state[id]
	s.hits[id]++
	switch hit := s.hits[id]; {
	case state == "busy-once" && hit == 1:
		state = "busy"
	case state == "flaky" && hit <= 3:
		state = "error"
	case state == "busy-once", state == "flaky":
		state = "completed"
	}
	if acct, scoped := s.accounts[id]; scoped && acct != r.Header.Get("X-Account-Id") {
		state = "gone"
	}
	if state == "" || state == "completed" {
		s.patches = append(s.patches, patchRecord{id, r.Header.Get("X-Account-Id"), r.Header.Get("X-Postback-Webhook"), r.Header.Get("X-Request-Id"), string(body)})
	}
	s.mu.Unlock()
	if state != "live-slow" && state != "hang" {
		leave()
	}
	switch state {
	case "live-slow":
		// Answers live after a second, whether or not the edge still waits.
		time.Sleep(time.Second)
		fallthrough
	case "live":
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, `{"state":"live"}`)
	case "gone":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"call not found"}`)
	case "refuse":
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"message":"revenue is locked for billing"}`)
	case "error":
		w.WriteHeader(http.StatusServiceUnavailable)
	case "busy":
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
	case "teapot":
		w.WriteHeader(http.StatusTeapot)
	case "garbage-409":
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, "<html>conflict</html>")
	case "hang":
		<-r.Context().Done()
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// serveLookup answers GET /v1/calls/{id} (docs/operations.md#looking-up-a-call) from the
// call's scripted state: "live", "gone" (404), else completed.
func (s *scriptedStore) serveLookup(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	state := s.state[id]
	s.lookups++
	if acct, scoped := s.accounts[id]; scoped && acct != r.Header.Get("X-Account-Id") {
		state = "gone"
	}
	s.mu.Unlock()
	switch state {
	case "gone":
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"call not found"}`)
	case "live":
		fmt.Fprintf(w, `{"call_log_id":%q,"state":"live"}`, id)
	default:
		fmt.Fprintf(w, `{"call_log_id":%q,"state":"completed"}`, id)
	}
}

// patchesSent counts the PATCH requests the store received, whatever it
// answered.
func (s *scriptedStore) patchesSent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, h := range s.hits {
		n += h
	}
	return n
}

// applied lists the PATCH bodies the store applied for id, oldest first.
func (s *scriptedStore) applied(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, p := range s.patches {
		if p.ID == id {
			out = append(out, p.Body)
		}
	}
	return out
}

func (s *scriptedStore) records() []patchRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]patchRecord(nil), s.patches...)
}

// Keys of the webhooks of edgeConfig.
const (
	fieldsKey    = "fields-key-0001"
	revenueKey   = "revenue-key-0001"
	tagsKey      = "tags-key-0001"
	otherAcctKey = "other-account-key"
	platformKey  = "password" // key_sha256 below is its digest, as in docs/operations.md#configuration
)

// edgeConfig is the Caddyfile of docs/operations.md#configuration pointed at store, with a webhook
// of each type. extra goes into the postback directive.
func edgeConfig(storeURL, globalExtra, extra string) string {
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	postback {
		call_store %s {
			timeout 2s
			deadline 3s
			max_concurrency 16
			header Authorization "Bearer store-token"
		}
		drain_interval 100ms
		max_age 72h
		%s
	}
}

http://127.0.0.1:%d {
	route /postback/* {
		postback {
			max_batch 50
			%s
			webhook acme {
				type update_fields
				account acct_1
				key %s
			}
			webhook acme_revenue {
				type update_revenue
				account acct_1
				key %s
			}
			webhook acme_tags {
				type update_tags
				account acct_1
				key %s
			}
			webhook other {
				type update_fields
				account acct_2
				key %s
			}
			webhook platform {
				type call_completed
				key_sha256 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
			}
		}
	}
}
`, adminPort, edgePort, storeURL, globalExtra, edgePort, extra, fieldsKey, revenueKey, tagsKey, otherAcctKey)
}

func startEdge(t *testing.T, config string) *caddytest.Tester {
	t.Helper()
	tester := caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort, LoadRequestTimeout: 10 * time.Second, TestRequestTimeout: 15 * time.Second})
	tester.InitServer(config, "caddyfile")
	if t.Failed() || t.Skipped() {
		t.Fatal("Caddy did not take the config")
	}
	// Every exchange with a partner endpoint is checked against the
	// document partners read (docs/openapi.yaml).
	tester.Client.Transport = &checkedTransport{t: t, contract: docsContract(t), next: tester.Client.Transport}
	return tester
}

func edgeURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", edgePort, path)
}

// send makes one request and returns the status and the body.
func send(t *testing.T, tester *caddytest.Tester, method, url, contentType, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("partner-api#responses Content-Type = %q, want application/json (body %s)", ct, out)
	}
	if !gjson.ValidBytes(out) {
		t.Errorf("partner-api#responses body is not JSON: %s", out)
	}
	return resp.StatusCode, string(out)
}

// jsonEqual compares JSON texts regardless of spacing and key order.
func jsonEqual(t *testing.T, got, want string) {
	t.Helper()
	if !jsonSame(got, want) {
		t.Errorf("body = %s\nwant   %s", got, want)
	}
}

func jsonSame(a, b string) bool {
	var ca, cb bytes.Buffer
	return canonical(&ca, a) == nil && canonical(&cb, b) == nil && ca.String() == cb.String()
}

func readAll(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
