package refstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFile(t *testing.T) {
	t.Run("operations#the-reference-call-store testdata/calls.json loads the documented calls", func(t *testing.T) {
		calls, err := LoadFile(seedPath)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]Call{}
		for _, c := range calls {
			byID[c.CallLogID] = c
		}
		for id, want := range map[string]struct{ account, state string }{
			"abc-123":   {"acct_1", StateCompleted},
			"def-456":   {"acct_1", StateCompleted},
			"live-001":  {"acct_1", StateLive},
			"jkl-001":   {"acct_1", StateCompleted},
			"jkl-002":   {"acct_1", StateCompleted},
			"other-001": {"acct_2", StateCompleted},
		} {
			c, ok := byID[id]
			if !ok || c.Account != want.account || c.State != want.state {
				t.Errorf("%s: %+v, want %+v", id, c, want)
			}
		}
		if _, ok := byID["ghi-789"]; ok {
			t.Error("ghi-789 is the not-found call of the partner-api#responses example and must stay unseeded")
		}
		older, newer := byID["jkl-001"], byID["jkl-002"]
		if older.PhoneNumber != "+15551234567" || newer.PhoneNumber != older.PhoneNumber || !newer.StartedAt.After(older.StartedAt) {
			t.Errorf("phone pair: %+v %+v", older, newer)
		}
		if got := byID["def-456"].RevenuePaidOut; got != "12.00" {
			t.Errorf("def-456 revenue %q, want the text 12.00", got)
		}
		if got := byID["abc-123"].StartedAt; !got.Equal(time.Date(2026, 3, 27, 9, 0, 0, 0, time.UTC)) {
			t.Errorf("abc-123 started_at %v", got)
		}
	})

	t.Run("operations#the-reference-call-store a bad seed file is an error naming the call", func(t *testing.T) {
		for _, tc := range []struct{ name, content, mention string }{
			{"not JSON", `{`, "unexpected EOF"},
			{"misspelt top key", `{"call": []}`, "unknown field"},
			{"missing id", `{"calls": [{"state": "live"}]}`, "calls[0]: call_log_id"},
			{"duplicate id", `{"calls": [{"call_log_id": "a"}, {"call_log_id": "a"}]}`, "calls[1]: call_log_id"},
			{"bad state", `{"calls": [{"call_log_id": "a", "state": "done"}]}`, "calls[0]: state"},
			{"bad revenue", `{"calls": [{"call_log_id": "a", "revenue_paid_out": "1"}]}`, "revenue_paid_out"},
			{"unknown key", `{"calls": [{"call_log_id": "a", "sub1": "x"}]}`, "sub1: unknown field"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				path := filepath.Join(t.TempDir(), "calls.json")
				if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
					t.Fatal(err)
				}
				_, err := LoadFile(path)
				if err == nil || !strings.Contains(err.Error(), tc.mention) {
					t.Fatalf("err %v, want one mentioning %q", err, tc.mention)
				}
			})
		}
	})

	t.Run("operations#the-reference-call-store a missing file is an error", func(t *testing.T) {
		if _, err := LoadFile(filepath.Join(t.TempDir(), "nope.json")); err == nil {
			t.Fatal("no error")
		}
	})

	t.Run("operations#the-reference-call-store New defaults the state to live and copies the seed", func(t *testing.T) {
		seed := []Call{{CallLogID: "s-1", Tags: map[string]string{"a": "b"}}}
		s := New(Options{Seed: seed})
		seed[0].Tags["a"] = "changed"
		c := mustCall(t, s, "s-1")
		if c.State != StateLive || c.Tags["a"] != "b" {
			t.Fatalf("stored %+v", c)
		}
	})
}
