package caddypostback_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// operations#the-reference-call-store: a production build (xcaddy's, which imports the module's
// root beside Caddy's standard modules) has the plugin without the
// reference call store; cmd/caddy, the development build, has both.
func TestBuildsAndTheirModules(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatal("go is not on PATH: ", err)
	}
	// Inside the module, so its go.mod pins every version, and named with
	// a leading underscore so that ./... never sees it.
	dir, err := os.MkdirTemp(".", "_xcaddy-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	main := `package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/callpostback/caddy-postback"
)

func main() { caddycmd.Main() }
`
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	modules := func(name, pkg string) string {
		t.Helper()
		out := filepath.Join(bin, name)
		build := exec.Command(goBin, "build", "-o", out, pkg)
		if msg, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
		}
		list, err := exec.Command(out, "list-modules").Output()
		if err != nil {
			t.Fatalf("%s list-modules: %v", name, err)
		}
		return string(list)
	}
	lines := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[strings.TrimSpace(l)] = true
		}
		return m
	}

	production := lines(modules("xcaddy-style", "./"+filepath.ToSlash(dir)))
	for _, want := range []string{"postback", "http.handlers.postback", "admin.api.postback"} {
		if !production[want] {
			t.Errorf("the xcaddy-style build lacks %s", want)
		}
	}
	if production["http.handlers.postback_callstore"] {
		t.Error("the xcaddy-style build of the plugin contains http.handlers.postback_callstore, the reference call store")
	}
	development := lines(modules("cmd-caddy", "./cmd/caddy"))
	for _, want := range []string{"http.handlers.postback", "http.handlers.postback_callstore"} {
		if !development[want] {
			t.Errorf("cmd/caddy lacks %s", want)
		}
	}
}
