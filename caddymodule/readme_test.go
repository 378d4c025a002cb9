package caddymodule_test

import (
	"fmt"
	"io"
	"net"
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
	text := string(data)
	var steps []walkthroughStep
	for _, loc := range shellBlock.FindAllStringSubmatchIndex(text, -1) {
		step := parseCurl(t, text[loc[2]:loc[3]])
		m := answerBlock.FindStringSubmatch(strings.TrimSpace(text[loc[1]:]))
		if m == nil {
			t.Fatalf("%s: no `Answer (`NNN`):` block after %s %s", file, step.method, step.url)
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

// startExample runs Caddyfile.example, with the demo keys, on its own
// ports, after adjust has had its say on the config.
func startExample(t *testing.T, adjust func(string) string) *caddytest.Tester {
	t.Helper()
	for k, v := range demoKeys {
		t.Setenv(k, v)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil || !strings.Contains(string(makefile), "ACME_FIELDS_KEY  ?= demo-fields-key") {
		t.Fatal("the Makefile no longer sets the demo keys this test uses")
	}
	// Caddy binds with SO_REUSEPORT: a Caddy already on these ports (a
	// `make run` left going) would silently share the traffic.
	for _, port := range []string{"8080", "9090"} {
		l, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			t.Fatalf("127.0.0.1:%s is in use (a `make run` still going?); Caddyfile.example needs it free", port)
		}
		l.Close()
	}
	example, err := os.ReadFile("../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := filepath.Abs("../testdata/calls.json")
	config := strings.Replace(string(example), "admin localhost:2019", fmt.Sprintf("admin localhost:%d", adminPort), 1)
	config = strings.Replace(config, "seed testdata/calls.json", "seed "+seed, 1)
	tester := startEdge(t, adjust(config))
	// Free 8080 and 9090 again: the Caddy of these tests lives on.
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
	for i, s := range steps {
		name := fmt.Sprintf("%s %02d %s %s", file, i+1, s.method, s.url)
		// The drain after call-completed is asynchronous: a read of the call
		// store may be tried again for a moment.
		deadline := time.Now().Add(3 * time.Second)
		for {
			status, body := doStep(t, tester.Client, s)
			if status == s.status && jsonSame(body, s.answer) {
				break
			}
			if s.method != "GET" || !strings.Contains(s.url, ":9090/") || time.Now().After(deadline) {
				t.Fatalf("%s:\nstatus %d, the page says %d\nbody   %s\npage   %s", name, status, s.status, body, s.answer)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func doStep(t *testing.T, client *http.Client, s walkthroughStep) (int, string) {
	t.Helper()
	req, err := http.NewRequest(s.method, s.url, strings.NewReader(s.body))
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
