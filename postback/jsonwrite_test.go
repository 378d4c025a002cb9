package postback

import (
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

var trickyStrings = []string{
	"", "plain", `quo"te`, `back\slash`, "/slash", "<script>alert(1)</script>", "a&b", "\n\r\t",
	"\x00\x01\x1f\x7f", "\b\f", "line\u2028sep\u2029para", "ünïcødé 日本 😀", "\xff", "a\xc3", "\xed\xa0\x80",
	"\xf4\x90\x80\x80", "\ufffd", "end\\", `"`, "\u00a0\u0085\u200b",
}

func TestAppendStringDecodesLikeEncodingJSON(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#responses any string decodes as encoding/json's would, invalid UTF-8 as U+FFFD", func(t *testing.T) {
		// Whatever the partner sent, the edge's JSON decodes to what
		// encoding/json would have written: invalid UTF-8 as U+FFFD.
		rng := rand.New(rand.NewPCG(3, 4))
		inputs := append([]string(nil), trickyStrings...)
		for range 3000 {
			b := make([]byte, rng.IntN(16))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			inputs = append(inputs, string(b))
		}
		for _, s := range inputs {
			got := appendString(nil, s)
			want, _ := json.Marshal(s)
			var a, b string
			if err := json.Unmarshal(got, &a); err != nil {
				t.Fatalf("appendString(%q) = %s, not JSON: %v", s, got, err)
			}
			_ = json.Unmarshal(want, &b)
			if a != b {
				t.Fatalf("appendString(%q) = %s decodes to %q; encoding/json's %s to %q", s, got, a, want, b)
			}
		}
	})
}

func TestAppendStringBytesLikeEncodingJSON(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#responses strings are escaped byte for byte as encoding/json does, HTML included", func(t *testing.T) {
		// Byte for byte as encoding/json, HTML escaping included, except the
		// short escapes \b and \f that encoding/json uses since Go 1.22 (the
		// edge writes \u0008 and \u000c: the same JSON string).
		for _, s := range trickyStrings {
			if strings.ContainsAny(s, "\b\f") {
				continue
			}
			got := appendString(nil, s)
			want, _ := json.Marshal(s)
			if string(got) != string(want) {
				t.Errorf("appendString(%q) = %s, encoding/json %s", s, got, want)
			}
		}
		if got := string(appendString([]byte("k:"), "\b\f")); got != `k:"\u0008\u000c"` {
			t.Errorf(`appendString("\b\f") = %s`, got)
		}
	})
}

func TestAppendStrings(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#responses string lists", func(t *testing.T) {
		for _, tt := range []struct {
			in   []string
			want string
		}{
			{nil, `[]`}, {[]string{}, `[]`}, {[]string{"a"}, `["a"]`}, {[]string{"a", `"`, "<"}, `["a","\"","\u003c"]`},
		} {
			if got := appendStrings(nil, tt.in); string(got) != tt.want {
				t.Errorf("appendStrings(%q) = %s, want %s", tt.in, got, tt.want)
			}
		}
	})
}
