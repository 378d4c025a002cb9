package caddymodule_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// Each file of testdata/caddyfile_adapt holds a Caddyfile, a line of ten
// dashes, and the JSON it adapts to; in *.error.caddyfiletest files, the
// error it fails with instead, naming the line (docs/operations.md#configuration).
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("../testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no adapt tests found: %v", err)
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, want, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if !strings.HasSuffix(name, ".error.caddyfiletest") {
				caddytest.AssertAdapt(t, input, "caddyfile", strings.TrimRight(want, "\n"))
				return
			}
			_, _, err = caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatal("adapted; want an error")
			}
			if want = strings.TrimSpace(want); !strings.HasSuffix(err.Error(), want) {
				t.Fatalf("error:\n  %s\nwant it to end with:\n  %s", err, want)
			}
		})
	}
}
