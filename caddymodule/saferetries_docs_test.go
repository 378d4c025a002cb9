package caddymodule_test

import (
	"os"
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
	steps := stepsOf(t, "partner-api#safe-retries", section)
	replaySteps(t, tester, "partner-api#safe-retries", steps)
	if len(steps) < 8 {
		t.Fatalf("found %d steps", len(steps))
	}
}
