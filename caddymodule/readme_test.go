package caddymodule_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// walkthroughStep is one curl command of the README and the answer shown
// after it.
type walkthroughStep struct {
	method, url, body string
	header            http.Header
	status            int
	answer            string
}

var (
	shellBlock  = regexp.MustCompile("(?s)```sh\n(curl .*?)```")
	answerBlock = regexp.MustCompile("(?s)\\AAnswer \\(`(\\d{3})`\\):\\s*```json\n(.*?)```")
)

// walkthrough reads every curl command of a Markdown file of the
// repository with the answer shown after it.
func walkthrough(t *testing.T, file string) []walkthroughStep {
	t.Helper()
	data, err := os.ReadFile("../" + file)
	if err != nil {
		t.Fatal(err)
	}
	return stepsOf(t, file, string(data))
}

// stepsOf reads every curl command of text, a page or section called name,
// with the answer shown after it.
func stepsOf(t *testing.T, name, text string) []walkthroughStep {
	t.Helper()
	var steps []walkthroughStep
	for _, loc := range shellBlock.FindAllStringSubmatchIndex(text, -1) {
		step := parseCurl(t, text[loc[2]:loc[3]])
		m := answerBlock.FindStringSubmatch(strings.TrimSpace(text[loc[1]:]))
		if m == nil {
			t.Fatalf("%s: no `Answer (`NNN`):` block after %s %s", name, step.method, step.url)
		}
		step.status, _ = strconv.Atoi(m[1])
		step.answer = m[2]
		steps = append(steps, step)
	}
	return steps
}

// parseCurl reads the curl options the README uses: -s, -X, -H, -d, URL.
func parseCurl(t *testing.T, cmd string) walkthroughStep {
	t.Helper()
	cmd = strings.ReplaceAll(cmd, "\\\n", " ")
	var words []string
	for rest := strings.TrimSpace(cmd); rest != ""; rest = strings.TrimSpace(rest) {
		if rest[0] == '\'' {
			end := strings.IndexByte(rest[1:], '\'')
			if end < 0 {
				t.Fatalf("README: unbalanced quote in %s", cmd)
			}
			words = append(words, rest[1:end+1])
			rest = rest[end+2:]
			continue
		}
		word, after, _ := strings.Cut(rest, " ")
		words, rest = append(words, word), after
	}
	step := walkthroughStep{method: "GET", header: http.Header{}}
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-s":
		case "-X":
			i++
			step.method = words[i]
		case "-H":
			i++
			k, v, _ := strings.Cut(words[i], ":")
			step.header.Set(k, strings.TrimSpace(v))
		case "-d":
			i++
			step.body = words[i]
			if step.method == "GET" {
				step.method = "POST"
			}
		default:
			if strings.HasPrefix(w, "-") {
				t.Fatalf("README: curl option %s is not understood by this test", w)
			}
			step.url = w
		}
	}
	return step
}

// demoKeys are the keys Caddyfile.example takes from the environment, as
// `make run` sets them.
var demoKeys = map[string]string{
	"ACME_FIELDS_KEY": "demo-fields-key", "ACME_REVENUE_KEY": "demo-revenue-key", "ACME_TAGS_KEY": "demo-tags-key",
	"OTHER_FIELDS_KEY": "demo-other-key", "PLATFORM_KEY": "demo-platform-key",
	"ACME_SIGNING_SECRET": "whsec_Y2FkZHktcG9zdGJhY2stZGVtby1zZWNyZXQtYWNtZSE=",
}

// The ports of Caddyfile.example's Caddy in these tests: the file and the
// docs show 8080, 9090 and 2019 for people; the tests run the same config on
// free loopback ports.
var (
	exampleEdgePort  = freePort()
	exampleStorePort = freePort()
)

// examplePorts rewrites the addresses Caddyfile.example and the docs show
// to the free ports the tests run it on.
func examplePorts(s string) string {
	return strings.NewReplacer(
		"127.0.0.1:8080", fmt.Sprintf("127.0.0.1:%d", exampleEdgePort),
		"127.0.0.1:9090", fmt.Sprintf("127.0.0.1:%d", exampleStorePort),
		"localhost:2019", fmt.Sprintf("localhost:%d", adminPort),
	).Replace(s)
}

// startExample runs Caddyfile.example, with the demo keys, on free loopback
// ports (examplePorts), after adjust has had its say on the config.
func startExample(t *testing.T, adjust func(string) string) *caddytest.Tester {
	t.Helper()
	for k, v := range demoKeys {
		t.Setenv(k, v)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil || !strings.Contains(string(makefile), "ACME_FIELDS_KEY  ?= demo-fields-key") {
		t.Fatal("the Makefile no longer sets the demo keys this test uses")
	}
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := filepath.Abs("../testdata/calls.json")
	config := examplePorts(string(example))
	if strings.Contains(config, ":8080") || strings.Contains(config, ":9090") || strings.Contains(config, ":2019") {
		t.Fatal("Caddyfile.example names 8080, 9090 or 2019 in a way these tests do not move to free ports")
	}
	config = strings.Replace(config, "seed testdata/calls.json", "seed "+seed, 1)
	// A fresh start, as the docs say: a config without the plugin first
	// releases the idempotency store and memory queue that outlive reloads.
	startEdge(t, fmt.Sprintf("{\n\tadmin localhost:%d\n}\nhttp://127.0.0.1:%d {\n\trespond \"fresh\"\n}\n", adminPort, exampleEdgePort))
	tester := startEdge(t, adjust(config))
	// Stop the example's call store: the Caddy of these tests lives on.
	t.Cleanup(func() { startEdge(t, edgeConfig("http://127.0.0.1:1", "", "")) })
	return tester
}

// The README's walkthrough, run as written against Caddyfile.example
// (issue: two commands on a fresh machine).
func TestREADMEWalkthrough(t *testing.T) {
	replayWalkthrough(t, "README.md", 5)
}

// Every example of the docs, run as written against Caddyfile.example,
// each page from a fresh start, as it says.
func TestDocsWalkthrough(t *testing.T) {
	for _, page := range []struct {
		file string
		min  int
	}{{"docs/partner-api.md", 15}, {"docs/operations.md", 1}} {
		t.Run(page.file, func(t *testing.T) { replayWalkthrough(t, page.file, page.min) })
	}
}

// replayWalkthrough runs the examples of file in order and compares each
// answer with the one shown.
func replayWalkthrough(t *testing.T, file string, min int) {
	tester := startExample(t, func(config string) string { return config })

	steps := walkthrough(t, file)
	if len(steps) < min {
		t.Fatalf("found %d examples in %s, want at least %d", len(steps), file, min)
	}
	replaySteps(t, tester, file, steps)
}

// replaySteps sends steps in order and compares each answer with the one
// name shows.
func replaySteps(t *testing.T, tester *caddytest.Tester, name string, steps []walkthroughStep) {
	t.Helper()
	for i, s := range steps {
		label := fmt.Sprintf("%s %02d %s %s", name, i+1, s.method, s.url)
		s = signedNow(t, label, s)
		// A queued update reaches the call store asynchronously: a read of
		// the call store is tried again until it shows it, or for 15 s.
		deadline := time.Now().Add(15 * time.Second)
		for {
			status, body := doStep(t, tester.Client, s)
			if status == s.status && jsonSame(body, s.answer) {
				break
			}
			if s.method != "GET" || !strings.Contains(s.url, ":9090/") || time.Now().After(deadline) {
				t.Fatalf("%s:\nstatus %d, the page says %d\nbody   %s\npage   %s", label, status, s.status, body, s.answer)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// signedNow re-signs a signed example for now. Its printed timestamp goes
// stale 5 minutes after it was made (partner-api#signed-postbacks), so the
// printed signature is checked against its printed moment first.
func signedNow(t *testing.T, label string, s walkthroughStep) walkthroughStep {
	t.Helper()
	ts := s.header.Get("Webhook-Timestamp")
	if ts == "" {
		return s
	}
	secret, id := demoKeys["ACME_SIGNING_SECRET"], s.header.Get("Webhook-Id")
	if want := signature(secret, id, ts, s.body); s.header.Get("Webhook-Signature") != want {
		t.Fatalf("%s: the example's webhook-signature is not the signature of its id, timestamp and body: want %s", label, want)
	}
	s.header = s.header.Clone()
	for k, v := range signedHeaders(secret, id, time.Now(), s.body) {
		s.header[k] = v
	}
	return s
}

// doStep sends one step, to the free ports of examplePorts, and returns
// the status and body of the answer.
func doStep(t *testing.T, client *http.Client, s walkthroughStep) (int, string) {
	t.Helper()
	req, err := http.NewRequest(s.method, examplePorts(s.url), strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = s.header.Clone()
	if s.body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d does
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", s.method, s.url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
