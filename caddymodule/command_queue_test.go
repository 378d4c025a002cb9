package caddymodule_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/tidwall/gjson"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// caddyBinary is cmd/caddy built once per test run, to run the commands as
// an operator does.
var caddyBinary struct {
	once sync.Once
	path string
	err  error
}

func buildCaddy(t *testing.T) string {
	t.Helper()
	caddyBinary.once.Do(func() {
		dir, err := os.MkdirTemp("", "caddy-postback-cmd")
		if err != nil {
			caddyBinary.err = err
			return
		}
		caddyBinary.path = filepath.Join(dir, "caddy")
		out, err := exec.Command("go", "build", "-o", caddyBinary.path, "../cmd/caddy").CombinedOutput()
		if err != nil {
			caddyBinary.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if caddyBinary.err != nil {
		t.Fatal(caddyBinary.err)
	}
	return caddyBinary.path
}

// runCaddy runs the caddy command with args against the test's admin API
// and returns its output and exit status.
func runCaddy(t *testing.T, args ...string) (stdout, stderr string, exit int) {
	t.Helper()
	cmd := exec.Command(buildCaddy(t), append(args, "--address", fmt.Sprintf("localhost:%d", adminPort))...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		exit = exitErr.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return out.String(), errOut.String(), exit
}

// incident makes the dead letters the runbook of operations#after-an-incident
// works on: c-1001 and c-1002 refused for acme, c-1003 not found for other.
func incident(t *testing.T, global string) (*scriptedStore, *caddytest.Tester) {
	t.Helper()
	store := newScriptedStore(t)
	for _, id := range []string{"c-1001", "c-1002", "c-1003"} {
		store.set(id, "live")
	}
	tester := startEdge(t, edgeConfig(store.URL, global, ""))
	queueUpdate(t, tester, fieldsKey, `{"call_log_id":"c-1001","converted":true,"revenue_paid_out":"999999.99","reason":"sale"}`)
	queueUpdate(t, tester, fieldsKey, `{"call_log_id":"c-1002","revenue_paid_out":25.50}`)
	queueUpdate(t, tester, otherAcctKey, `{"call_log_id":"c-1003","reason":"lost"}`)
	store.set("c-1001", "refuse")
	store.set("c-1002", "refuse")
	store.set("c-1003", "gone")
	complete(t, tester, "c-1001", "c-1002", "c-1003")
	waitFor(t, "three dead letters", func() bool { return len(deadCalls(t, "")) == 3 })
	return store, tester
}

func TestQueueCommands(t *testing.T) {
	store, _ := incident(t, "")

	out, errOut, exit := runCaddy(t, "postback", "queue")
	if exit != 0 || !regexp.MustCompile(`(?m)^dead_entries\s+3$`).MatchString(out) || !regexp.MustCompile(`(?m)^backend\s+memory$`).MatchString(out) {
		t.Fatalf("operations#dead-letters caddy postback queue: exit %d\n%s%s", exit, out, errOut)
	}

	out, _, exit = runCaddy(t, "postback", "dead", "--webhook", "acme")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if exit != 0 || len(lines) != 3 || !regexp.MustCompile(`^CALL_LOG_ID\s+COUNT\s+OLDEST_DEAD_AT\s+NEWEST_DEAD_AT\s+REASONS$`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^c-100[12]\s+1\s+\S+Z\s+\S+Z\s+rejected: revenue is locked for billing$`).MatchString(lines[1]) {
		t.Fatalf("caddy postback dead --webhook acme: exit %d\n%s", exit, out)
	}
	if documented := docsDeadHeader(t); !regexp.MustCompile(`^` + strings.Join(strings.Fields(documented), `\s+`) + `$`).MatchString(lines[0]) {
		t.Fatalf("operations#dead-letters documented header %q, printed %q", documented, lines[0])
	}
	out, _, exit = runCaddy(t, "postback", "dead", "--limit", "1")
	if exit != 0 || !regexp.MustCompile(`(?m)^more: add --cursor \S+$`).MatchString(out) {
		t.Fatalf("caddy postback dead --limit 1: exit %d\n%s", exit, out)
	}

	out, _, exit = runCaddy(t, "postback", "dead", "--json", "--reason", "not_found")
	if exit != 0 || gjson.Get(out, "calls.#").Int() != 1 || gjson.Get(out, "calls.0.call_log_id").Str != "c-1003" {
		t.Fatalf("caddy postback dead --json: exit %d\n%s", exit, out)
	}

	out, _, exit = runCaddy(t, "postback", "queue", "c-1001")
	if exit != 0 || !regexp.MustCompile(`(?m)^dead\s+\d+\s+acme\s+\S+\s+\S+\s+rejected: revenue is locked for billing\s+-\s+\{"converted":true,"revenue_paid_out":999999.99,"reason":"sale"\}$`).MatchString(out) {
		t.Fatalf("caddy postback queue c-1001: exit %d\n%s", exit, out)
	}

	// Refusals: a non-zero exit with the admin API's reason.
	for _, args := range [][]string{
		{"postback", "dead", "--since", "yesterday"},
		{"postback", "requeue", "c-1001", "--set", "converted=\"maybe\""},
		{"postback", "requeue", "c-9999", "--delete", "reason"},
		{"postback", "requeue"},
		{"postback", "requeue", "c-1001", "--all"},
	} {
		out, errOut, exit := runCaddy(t, args...)
		if exit == 0 {
			t.Errorf("operations#dead-letters caddy %s: exit 0, want a refusal\n%s%s", strings.Join(args, " "), out, errOut)
		}
	}
	if _, errOut, _ := runCaddy(t, "postback", "requeue", "c-1001", "--set", "converted=\"maybe\""); !strings.Contains(errOut, "converted") {
		t.Errorf("the refusal does not name the field: %s", errOut)
	}
	if n := len(deadCalls(t, "")); n != 3 {
		t.Fatalf("a refused command moved letters: %d calls left", n)
	}

	store.set("c-1002", "completed")
	out, _, exit = runCaddy(t, "postback", "requeue", "--all", "--reason", "rejected", "--webhook", "acme", "--dry-run")
	if exit != 0 || strings.TrimSpace(out) != "would requeue 2 dead letters of 2 calls" {
		t.Fatalf("requeue --all --dry-run: exit %d\n%s", exit, out)
	}
	out, _, exit = runCaddy(t, "postback", "requeue", "c-1002", "--json")
	if exit != 0 || !jsonSame(out, `{"call_log_id":"c-1002","requeued":1}`) {
		t.Fatalf("requeue c-1002 --json: exit %d\n%s", exit, out)
	}
	waitFor(t, "c-1002 applied", func() bool { return len(store.applied("c-1002")) == 1 })
	out, _, exit = runCaddy(t, "postback", "requeue", "--all", "--account", "acct_2")
	if exit != 0 || strings.TrimSpace(out) != "requeued 1 dead letters of 1 calls" {
		t.Fatalf("requeue --all --account acct_2: exit %d\n%s", exit, out)
	}

	// No Caddy there: a non-zero exit.
	cmd := exec.Command(buildCaddy(t), "postback", "queue", "--address", fmt.Sprintf("localhost:%d", freePort()))
	if err := cmd.Run(); err == nil {
		t.Fatal("caddy postback queue without a Caddy exited 0")
	}
}

// docsDeadHeader is the table header docs/operations.md shows for
// `caddy postback dead`.
func docsDeadHeader(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)`caddy postback dead` prints:\\s*```text\n([^\n]*)\n").FindSubmatch(data)
	if m == nil {
		t.Fatal("docs/operations.md shows no output of caddy postback dead")
	}
	return string(m[1])
}

// TestAfterAnIncidentRunbook replays every command of the runbook in
// docs/operations.md#after-an-incident, in order, on Redis, against the
// incident it is written for.
func TestAfterAnIncidentRunbook(t *testing.T) {
	data, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "\n## After an incident\n")
	section, _, _ = strings.Cut(section, "\n## ")
	var commands [][]string
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(section, -1) {
		for _, line := range strings.Split(strings.TrimSpace(block[1]), "\n") {
			args := strings.Fields(line)
			if len(args) < 2 || args[0] != "caddy" {
				t.Fatalf("runbook line %q is not a caddy command", line)
			}
			commands = append(commands, args[1:])
		}
	}
	if len(commands) < 8 {
		t.Fatalf("found %d runbook commands", len(commands))
	}

	store, _ := incident(t, "redis "+redistest.Start(t).URL())
	for i, args := range commands {
		if strings.Join(args, " ") == "postback requeue c-1001 --set revenue_paid_out=20.50 --delete reason" {
			// Step 4 comes after the cause is fixed upstream.
			store.set("c-1001", "completed")
			store.set("c-1002", "completed")
		}
		out, errOut, exit := runCaddy(t, args...)
		if exit != 0 {
			t.Fatalf("operations#after-an-incident step %d, caddy %s: exit %d\n%s%s", i+1, strings.Join(args, " "), exit, out, errOut)
		}
	}
	waitFor(t, "the requeued updates applied", func() bool {
		return len(store.applied("c-1001")) == 1 && len(store.applied("c-1002")) == 1
	})
	if got := store.applied("c-1001")[0]; got != `{"converted":true,"revenue_paid_out":20.50}` {
		t.Fatalf("c-1001 applied as %s", got)
	}
	if got := sortedIDs(deadCalls(t, "")); got != "c-1003" {
		t.Fatalf("dead after the runbook: %s", got)
	}
}
