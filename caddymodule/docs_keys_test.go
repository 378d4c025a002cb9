package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// docSection is the text of one "## heading" of a docs/ file, up to the
// next "## ".
func docSection(t *testing.T, file, heading string) string {
	t.Helper()
	data, err := os.ReadFile("../docs/" + file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("docs/%s has no section %q", file, heading)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

func fencedBlocks(section, lang string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(section, -1) {
		out = append(out, m[1])
	}
	return out
}

// partner-api#signed-postbacks, replayed against Caddyfile.example. A
// signed example carries a fixed timestamp, which goes stale 5 minutes
// after it was made; so each signed step is checked to be the right
// signature for its printed moment, then sent re-signed for now, and its
// answer must be the one shown. The Python and shell examples are run as
// printed.
func TestSignedPostbacksDocs(t *testing.T) {
	tester := startExample(t, func(config string) string { return config })
	section := docSection(t, "partner-api.md", "Signed postbacks")
	secret := demoKeys["ACME_SIGNING_SECRET"]
	if !strings.Contains(section, secret) {
		t.Fatal("partner-api#signed-postbacks no longer names the demo secret")
	}
	steps := stepsOf(t, "partner-api#signed-postbacks", section)
	replaySteps(t, tester, "partner-api#signed-postbacks", steps)
	n := len(steps)
	if n == 0 {
		t.Fatal("partner-api#signed-postbacks has no curl example")
	}

	run := func(t *testing.T, tools []string, name string, args ...string) string {
		for _, tool := range tools {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s is not installed here", tool)
			}
		}
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), "ACME_SIGNING_SECRET="+secret)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	t.Run("partner-api#signed-postbacks the Python example signs and is applied", func(t *testing.T) {
		py := fencedBlocks(section, "python")
		if len(py) != 1 {
			t.Fatalf("%d python blocks", len(py))
		}
		out := run(t, []string{"python3"}, "python3", "-c", examplePorts(py[0]))
		status, body, _ := strings.Cut(strings.TrimSpace(out), " ")
		if status != "200" || !jsonSame(body, `{"call_log_ids":["abc-123"],"failed_call_log_ids":[]}`) {
			t.Fatalf("printed %s", out)
		}
	})
	t.Run("partner-api#signed-postbacks the shell example signs and is applied", func(t *testing.T) {
		sh := fencedBlocks(section, "bash")
		if len(sh) != 1 {
			t.Fatalf("%d bash blocks", len(sh))
		}
		out := run(t, []string{"bash", "openssl", "od", "base64", "curl"}, "bash", "-euc", examplePorts(sh[0]))
		if !jsonSame(out, `{"call_log_ids":["abc-123"],"failed_call_log_ids":[]}`) {
			t.Fatalf("printed %s", out)
		}
	})
}

// operations#keys-rotation-and-signatures, replayed against Caddyfile.example: every admin API
// and partner command of the section, in order, succeeds; every Caddyfile
// shown adapts.
func TestKeysRotationDocs(t *testing.T) {
	tester := startExample(t, func(config string) string { return config })
	section := docSection(t, "operations.md", "Keys: rotation and signatures")
	commands := fencedBlocks(section, "shell")
	if len(commands) < 5 {
		t.Fatalf("operations#keys-rotation-and-signatures shows %d commands", len(commands))
	}
	for _, c := range commands {
		s := parseCurl(t, c)
		if rest, ok := strings.CutPrefix(s.url, "localhost:2019"); ok {
			s.url = fmt.Sprintf("http://localhost:%d%s", adminPort, rest)
		}
		status, body := doStep(t, tester.Client, s)
		if status != http.StatusOK {
			t.Fatalf("operations#keys-rotation-and-signatures %s %s: %d %s", s.method, s.url, status, body)
		}
		if strings.HasSuffix(s.url, "/webhooks/0/name") && strings.TrimSpace(body) != `"acme_fields"` {
			t.Fatalf("webhook 0 is %s, not acme_fields as the docs say", body)
		}
	}
	for i, block := range fencedBlocks(section, "caddyfile") {
		config := block
		switch {
		case strings.HasPrefix(block, "webhook "):
			config = ":8080 {\n\tpostback {\n" + block + "\t}\n}\n"
		case strings.HasPrefix(block, "route "):
			config = ":8080 {\n" + block + "}\n"
		}
		if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(config), map[string]any{"filename": "Caddyfile"}); err != nil {
			t.Errorf("operations#keys-rotation-and-signatures Caddyfile %d does not adapt: %v\n%s", i, err, block)
		}
	}
}
