package caddymodule_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// partner-api#safe-retries: the section's curl commands, run as written against
// Caddyfile.example, answer what the page says.
func TestSafeRetriesWalkthrough(t *testing.T) {
	data, err := os.ReadFile("../docs/partner-api.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Safe retries\n")
	if !ok {
		t.Fatal("docs/partner-api.md has no Safe retries section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	tester := startExample(t, func(config string) string { return config })
	steps := 0
	for _, loc := range shellBlock.FindAllStringSubmatchIndex(section, -1) {
		step := parseCurl(t, section[loc[2]:loc[3]])
		m := answerBlock.FindStringSubmatch(strings.TrimSpace(section[loc[1]:]))
		if m == nil {
			t.Fatalf("no `Answer (`NNN`):` block after %s %s", step.method, step.url)
		}
		step.status, _ = strconv.Atoi(m[1])
		step.answer = m[2]
		steps++
		status, body := doStep(t, tester.Client, step)
		if status != step.status || !jsonSame(body, step.answer) {
			t.Fatalf("%s:\nstatus %d, the page says %d\nbody   %s\npage   %s", fmt.Sprintf("%02d %s %s", steps, step.method, step.url), status, step.status, body, step.answer)
		}
	}
	if steps < 8 {
		t.Fatalf("found %d steps", steps)
	}
}
