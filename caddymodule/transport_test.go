package caddymodule_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidwall/gjson"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// The call store through reverse_proxy's HTTP transport (operations#call-store-transport):
// private CAs, client certificates, HTTP/2, proxies and trace context, each
// against a real server.

// transportStore is a call store that records how each request reached
// it: the protocol, the client certificate, the trace context.
type transportStore struct {
	mu    sync.Mutex
	live  map[string]bool
	seen  []storeRequest
	https bool
}

type storeRequest struct {
	Method, Path, Proto     string
	ClientCert              string
	TraceParent, TraceState string
}

func newTransportStore() *transportStore { return &transportStore{live: map[string]bool{}} }

func (s *transportStore) setLive(id string, live bool) {
	s.mu.Lock()
	s.live[id] = live
	s.mu.Unlock()
}

func (s *transportStore) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	rec := storeRequest{Method: r.Method, Path: r.URL.EscapedPath(), Proto: r.Proto, TraceParent: r.Header.Get("Traceparent"), TraceState: r.Header.Get("Tracestate")}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		rec.ClientCert = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	id, _ := strings.CutPrefix(r.URL.Path, "/v1/calls/")
	s.mu.Lock()
	s.seen = append(s.seen, rec)
	live := s.live[id]
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if live {
		w.WriteHeader(http.StatusConflict)
		_, _ = io.WriteString(w, `{"state":"live"}`)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *transportStore) requests() []storeRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]storeRequest(nil), s.seen...)
}

// testPKI is a private CA with a server certificate for 127.0.0.1 and a
// client certificate for the edge, written as PEM files (.pem: caddytest
// rewrites paths ending in .crt and .key).
type testPKI struct {
	pool                *x509.CertPool
	server              tls.Certificate
	caFile              string
	clientCrt, clientKy string
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "call store test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	p := &testPKI{pool: x509.NewCertPool(), caFile: filepath.Join(dir, "ca.pem")}
	p.pool.AddCert(ca)
	writePEM(t, p.caFile, "CERTIFICATE", caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage, ip net.IP) ([]byte, *ecdsa.PrivateKey) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		}
		if ip != nil {
			tmpl.IPAddresses = []net.IP{ip}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, key
	}
	serverDER, serverKey := issue(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, net.IPv4(127, 0, 0, 1))
	p.server = tls.Certificate{Certificate: [][]byte{serverDER}, PrivateKey: serverKey}
	clientDER, clientKey := issue(3, "edge", x509.ExtKeyUsageClientAuth, nil)
	p.clientCrt, p.clientKy = filepath.Join(dir, "edge-cert.pem"), filepath.Join(dir, "edge-key.pem")
	writePEM(t, p.clientCrt, "CERTIFICATE", clientDER)
	keyDER, _ := x509.MarshalECPrivateKey(clientKey)
	writePEM(t, p.clientKy, "EC PRIVATE KEY", keyDER)
	return p
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// startTLSStore serves store over TLS with the PKI's server certificate;
// configure adjusts the TLS config (client auth, ALPN).
func startTLSStore(t *testing.T, p *testPKI, store http.Handler, configure func(*tls.Config), http2Too bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(store)
	srv.EnableHTTP2 = http2Too
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	if configure != nil {
		configure(srv.TLS)
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// transportConfig is a Caddyfile whose call_store block holds the given
// transport block; logFile, if set, receives Caddy's log.
func transportConfig(storeURL, transport, globalExtra, logFile string) string {
	logBlock := ""
	if logFile != "" {
		logBlock = "log {\n\t\toutput file " + logFile + "\n\t}"
	}
	return fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	skip_install_trust
	%s
	postback {
		call_store %s {
			timeout 1s
			deadline 2s
			%s
		}
		drain_interval 100ms
		%s
	}
}

http://127.0.0.1:%d {
	route /postback/* {
		postback {
			webhook acme {
				type update_fields
				account acct_1
				key %s
			}
			webhook platform {
				type call_completed
				key_sha256 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
			}
		}
	}
}
`, adminPort, edgePort, logBlock, storeURL, transport, globalExtra, edgePort, fieldsKey)
}

func convertCall(id string) string { return fmt.Sprintf(`{"call_log_id":%q,"converted":true}`, id) }

func TestCallStoreMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	store := newTransportStore()
	srv := startTLSStore(t, p, store, func(c *tls.Config) {
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = p.pool
	}, false)
	// The URL is https://: TLS is on without a `tls` line.
	storeURL := strings.Replace(srv.URL, "http://", "https://", 1)

	t.Run("operations#call-store-transport with the private CA and the client certificate: applied", func(t *testing.T) {
		tester := startEdge(t, transportConfig(storeURL, "transport http {\n\t\t\t\ttls_trust_pool file "+p.caFile+"\n\t\t\t\ttls_client_auth "+p.clientCrt+" "+p.clientKy+"\n\t\t\t}", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("mtls-1"))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		reqs := store.requests()
		if len(reqs) != 1 || reqs[0].ClientCert != "edge" || reqs[0].Path != "/v1/calls/mtls-1" {
			t.Fatalf("the call store saw %+v, want one PATCH presenting the edge's certificate", reqs)
		}
	})

	t.Run("operations#call-store-transport without the client certificate: upstream_error, TLS named in the log", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		tester := startEdge(t, transportConfig(storeURL, "transport http {\n\t\t\t\ttls_trust_pool file "+p.caFile+"\n\t\t\t}", "", logFile))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("mtls-2"))
		if status != 502 || gjson.Get(body, "errors.mtls-2.code").String() != "upstream_error" {
			t.Fatalf("status %d: %s; want 502 upstream_error", status, body)
		}
		// Load another config so the log is flushed and closed.
		startEdge(t, edgeConfig("http://127.0.0.1:1", "", ""))
		logged := callStoreFailures(t, logFile)
		if len(logged) == 0 || !strings.Contains(strings.ToLower(logged[0]), "tls") {
			t.Fatalf("the failure logged is %q; want it to name TLS", logged)
		}
	})

	t.Run("operations#call-store-transport a call store the CA did not sign: upstream_error", func(t *testing.T) {
		tester := startEdge(t, transportConfig(storeURL, "", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("mtls-3"))
		if status != 502 || !strings.Contains(gjson.Get(body, "errors.mtls-3.message").String(), "TLS") {
			t.Fatalf("status %d: %s; want 502 naming TLS", status, body)
		}
	})
}

// callStoreFailures are the error fields of the call-store failures in
// Caddy's log file.
func callStoreFailures(t *testing.T, logFile string) []string {
	t.Helper()
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if gjson.Get(line, "logger").String() == "postback.call_store" && gjson.Get(line, "msg").String() == "call-store request failed" {
			out = append(out, gjson.Get(line, "error").String())
		}
	}
	return out
}

func TestCallStoreHTTP2Only(t *testing.T) {
	// The store refuses anything but HTTP/2.
	only2 := func(store http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor != 2 {
				http.Error(w, "HTTP/2 only", http.StatusHTTPVersionNotSupported)
				return
			}
			store.ServeHTTP(w, r)
		})
	}

	t.Run("operations#call-store-transport versions h2c: HTTP/2 without TLS", func(t *testing.T) {
		store := newTransportStore()
		srv := httptest.NewServer(h2c.NewHandler(only2(store), &http2.Server{}))
		t.Cleanup(srv.Close)
		tester := startEdge(t, transportConfig(srv.URL, "transport http {\n\t\t\t\tversions h2c\n\t\t\t}", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("h2c-1"))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		if reqs := store.requests(); len(reqs) != 1 || reqs[0].Proto != "HTTP/2.0" {
			t.Fatalf("the call store saw %+v, want one HTTP/2 PATCH", reqs)
		}
	})

	t.Run("operations#call-store-transport versions 2: HTTP/2 over TLS", func(t *testing.T) {
		p := newTestPKI(t)
		store := newTransportStore()
		srv := startTLSStore(t, p, only2(store), func(c *tls.Config) { c.NextProtos = []string{"h2"} }, true)
		storeURL := strings.Replace(srv.URL, "http://", "https://", 1)
		tester := startEdge(t, transportConfig(storeURL, "transport http {\n\t\t\t\tversions 2\n\t\t\t\ttls_trust_pool file "+p.caFile+"\n\t\t\t}", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("h2-1"))
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		if reqs := store.requests(); len(reqs) != 1 || reqs[0].Proto != "HTTP/2.0" {
			t.Fatalf("the call store saw %+v, want one HTTP/2 PATCH", reqs)
		}
	})
}

// forwardProxy is an HTTP proxy: CONNECT tunnels, and absolute-form
// requests forwarded. It records what it was asked.
type forwardProxy struct {
	*httptest.Server
	mu   sync.Mutex
	seen []string
}

func startForwardProxy(t *testing.T) *forwardProxy {
	p := &forwardProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.Close)
	return p
}

func (p *forwardProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.RequestURI)
	p.mu.Unlock()
	if r.Method == http.MethodConnect {
		upstream, err := net.Dial("tcp", r.Host)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer upstream.Close()
		w.WriteHeader(http.StatusOK)
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		done := make(chan struct{})
		go func() { _, _ = io.Copy(upstream, buf); close(done) }()
		_, _ = io.Copy(conn, upstream)
		<-done
		return
	}
	if !r.URL.IsAbs() {
		http.Error(w, "not a proxy request", http.StatusBadRequest)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *forwardProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.seen...)
}

func TestCallStoreThroughProxy(t *testing.T) {
	t.Run("operations#call-store-transport network_proxy to an http call store: forwarded", func(t *testing.T) {
		store := newTransportStore()
		srv := httptest.NewServer(store)
		t.Cleanup(srv.Close)
		proxy := startForwardProxy(t)
		tester := startEdge(t, transportConfig(srv.URL, "transport http {\n\t\t\t\tnetwork_proxy url "+proxy.URL+"\n\t\t\t}", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("proxied-1"))
		if status != 200 || len(store.requests()) != 1 {
			t.Fatalf("status %d: %s; the store saw %d requests", status, body, len(store.requests()))
		}
		want := "PATCH " + srv.URL + "/v1/calls/proxied-1"
		if seen := proxy.requests(); len(seen) != 1 || seen[0] != want {
			t.Fatalf("the proxy saw %q, want %q", seen, want)
		}
	})

	t.Run("operations#call-store-transport network_proxy to an https call store: a CONNECT tunnel", func(t *testing.T) {
		p := newTestPKI(t)
		store := newTransportStore()
		srv := startTLSStore(t, p, store, nil, false)
		storeURL := strings.Replace(srv.URL, "http://", "https://", 1)
		proxy := startForwardProxy(t)
		tester := startEdge(t, transportConfig(storeURL, "transport http {\n\t\t\t\ttls_trust_pool file "+p.caFile+"\n\t\t\t\tnetwork_proxy url "+proxy.URL+"\n\t\t\t}", "", ""))
		status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, convertCall("proxied-2"))
		if status != 200 || len(store.requests()) != 1 {
			t.Fatalf("status %d: %s; the store saw %d requests", status, body, len(store.requests()))
		}
		want := "CONNECT " + strings.TrimPrefix(storeURL, "https://")
		if seen := proxy.requests(); len(seen) != 1 || seen[0] != want {
			t.Fatalf("the proxy saw %q, want %q", seen, want)
		}
	})
}

func TestTraceparentReachesCallStore(t *testing.T) {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	traceparent := "00-" + traceID + "-00f067aa0ba902b7-01"
	const tracestate = "vendor=opaque"
	for _, backend := range []string{"memory", "redis"} {
		t.Run("operations#call-store-transport "+backend+" queue", func(t *testing.T) {
			global := ""
			if backend == "redis" {
				global = "redis " + redistest.Start(t).URL()
			}
			store := newTransportStore()
			srv := httptest.NewServer(store)
			t.Cleanup(srv.Close)
			tester := startEdge(t, transportConfig(srv.URL, "", global, ""))
			post := func(id string) (int, string) {
				req, _ := http.NewRequest("POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), strings.NewReader(convertCall(id)))
				req.Header.Set("Content-Type", jsonType)
				req.Header.Set("Traceparent", traceparent)
				req.Header.Set("Tracestate", tracestate)
				resp, err := tester.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				return resp.StatusCode, readAll(resp)
			}

			// A direct PATCH.
			if status, body := post("traced-1"); status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			// A live call: queued now, drained once it completes.
			store.setLive("traced-2", true)
			if status, body := post("traced-2"); status != 202 {
				t.Fatalf("live call: status %d: %s", status, body)
			}
			store.setLive("traced-2", false)
			req, _ := http.NewRequest("POST", edgeURL("/postback/call-completed"), strings.NewReader(`{"call_log_id":"traced-2"}`))
			req.Header.Set("Authorization", "Bearer "+platformKey)
			req.Header.Set("Content-Type", jsonType)
			resp, err := tester.Client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			waitFor(t, "the queued update to be drained", func() bool {
				reqs := store.requests()
				return len(reqs) >= 3 && reqs[len(reqs)-1].Path == "/v1/calls/traced-2" && reqs[len(reqs)-1].Method == "PATCH"
			})
			reqs := store.requests()
			if len(reqs) != 3 {
				t.Fatalf("the store saw %d requests, want 3 (direct, live, drained): %+v", len(reqs), reqs)
			}
			for i, what := range []string{"the direct PATCH", "the PATCH answered live", "the drained PATCH"} {
				if !strings.Contains(reqs[i].TraceParent, traceID) || reqs[i].TraceState != tracestate {
					t.Errorf("%s carried traceparent %q tracestate %q; want the trace %s and %q", what, reqs[i].TraceParent, reqs[i].TraceState, traceID, tracestate)
				}
			}
		})
	}
}

// operations#call-store-transport: with Caddy's tracing directive, the call store gets the
// postback's trace, with Caddy's span as the parent.
func TestTracingDirectiveReachesCallStore(t *testing.T) {
	t.Setenv("OTEL_TRACES_EXPORTER", "none")
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	partnerSpan := "b7ad6b7169203331"
	store := newTransportStore()
	srv := httptest.NewServer(store)
	t.Cleanup(srv.Close)
	config := strings.Replace(transportConfig(srv.URL, "", "", ""), "route /postback/* {", "route /postback/* {\n\t\ttracing {\n\t\t\tspan postback\n\t\t}", 1)
	tester := startEdge(t, config)
	req, _ := http.NewRequest("POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), strings.NewReader(convertCall("traced-caddy")))
	req.Header.Set("Content-Type", jsonType)
	req.Header.Set("Traceparent", "00-"+traceID+"-"+partnerSpan+"-01")
	resp, err := tester.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	reqs := store.requests()
	if resp.StatusCode != 200 || len(reqs) != 1 {
		t.Fatalf("status %d, %d call-store requests", resp.StatusCode, len(reqs))
	}
	parts := strings.Split(reqs[0].TraceParent, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == partnerSpan {
		t.Fatalf("the call store got traceparent %q; want the trace %s with Caddy's span as the parent, not the partner's", reqs[0].TraceParent, traceID)
	}
}
