package caddymodule

import (
	"net/url"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// operations#call-store-transport: what the call store's transport is given beyond the
// operator's config: TLS for an https URL, max_upstream idle connections
// unless set; and what is refused.
func TestTransportJSON(t *testing.T) {
	https, _ := url.Parse("https://calls.internal:9443")
	plain, _ := url.Parse("http://127.0.0.1:9090")
	for _, tt := range []struct {
		name, raw string
		base      *url.URL
		want      map[string]string // gjson path → JSON
		err       string
	}{
		{name: "nothing given, http", base: plain, want: map[string]string{"protocol": `"http"`, "tls": ``, "keep_alive.max_idle_conns_per_host": `256`}},
		{name: "nothing given, https: TLS on", base: https, want: map[string]string{"tls": `{}`}},
		{name: "https with a CA pool: kept", base: https, raw: `{"protocol":"http","tls":{"ca":{"provider":"file","pem_files":["ca.pem"]}}}`,
			want: map[string]string{"tls.ca.pem_files.0": `"ca.pem"`}},
		{name: "keepalive given without the per-host bound", base: plain, raw: `{"protocol":"http","keep_alive":{"idle_timeout":90000000000}}`,
			want: map[string]string{"keep_alive.idle_timeout": `90000000000`, "keep_alive.max_idle_conns_per_host": `256`}},
		{name: "the per-host bound given: kept", base: plain, raw: `{"protocol":"http","keep_alive":{"max_idle_conns_per_host":8}}`,
			want: map[string]string{"keep_alive.max_idle_conns_per_host": `8`}},
		{name: "tls with an http URL", base: plain, raw: `{"protocol":"http","tls":{}}`, err: "use an https:// URL"},
		{name: "another transport", base: plain, raw: `{"protocol":"fastcgi"}`, err: `transport "fastcgi"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transportJSON([]byte(tt.raw), tt.base, 256)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.want {
				if r := gjson.GetBytes(got, path); r.Raw != want {
					t.Errorf("%s = %s, want %s (in %s)", path, r.Raw, want, got)
				}
			}
		})
	}
}
