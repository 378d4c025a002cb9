package redisqueue

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/tidwall/gjson"
)

// stored is an entry as the append script writes it.
func stored(id string, e *queue.Entry) string {
	return `{"id":"` + id + `"` + string(entryTail(e))
}

func TestEntryRoundTrip(t *testing.T) {
	accepted := time.Date(2026, 3, 27, 10, 0, 0, 123456789, time.FixedZone("X", 3600))
	cases := []queue.Entry{
		{CallLogID: "c1", Account: "acct_1", Webhook: "acme", RequestID: "r1", AcceptedAt: accepted, Patch: []byte(`{"converted":true,"reason":"sale"}`)},
		{CallLogID: `we{ird} "id"` + "\n\t\x00\x1f\x7f ünï ☎", Account: `a\b`, Webhook: "", RequestID: "\u2028", Patch: []byte("not json\n\"at all\"\\")},
		{CallLogID: "bytes", Patch: []byte{0xff, 0xfe, '"', 0x00, 0xc3, '\n', 0x80}},
		{CallLogID: "traced", Patch: []byte(`{}`), TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", TraceState: `vendor=a"b,other=c`},
		{},
	}
	for _, want := range cases {
		want.ID = "00000000000000000042"
		s := stored(want.ID, &want)
		if strings.ContainsRune(s, '\n') {
			t.Errorf("stored entry holds a raw newline: %q", s)
		}
		if !strings.HasPrefix(s, headPrefix(want.ID)) {
			t.Errorf("stored entry %q does not start with headPrefix %q", s, headPrefix(want.ID))
		}
		got, err := decodeEntry(s)
		if err != nil {
			t.Fatalf("decode %q: %v", s, err)
		}
		if got.ID != want.ID || got.CallLogID != want.CallLogID || got.Account != want.Account || got.Webhook != want.Webhook ||
			got.RequestID != want.RequestID || !got.AcceptedAt.Equal(want.AcceptedAt) || !bytes.Equal(got.Patch, want.Patch) ||
			got.TraceParent != want.TraceParent || got.TraceState != want.TraceState {
			t.Errorf("round trip of %q:\n got  %+v\n want %+v", s, got, want)
		}
	}
}

func TestHeadPrefixNamesOneID(t *testing.T) {
	e := &queue.Entry{CallLogID: "c1"}
	s := stored("00000000000000000012", e)
	for _, other := range []string{"0000000000000000001", "000000000000000000123", "", `00000000000000000012","x`} {
		if strings.HasPrefix(s, headPrefix(other)) {
			t.Errorf("headPrefix(%q) matches the entry with ID 00000000000000000012", other)
		}
	}
}

func TestDeadLetterRoundTrip(t *testing.T) {
	e := queue.Entry{ID: "00000000000000000007", CallLogID: "c1", Patch: []byte("p\nq")}
	at := time.Date(2026, 3, 27, 10, 5, 0, 1, time.UTC)
	reason := "not_found: call not found\nsecond line \"quoted\""
	letter := string(deadInfo(reason, at)) + "\n" + stored(e.ID, &e)
	d, err := decodeDeadEntry(letter)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != reason || !d.DeadAt.Equal(at) || d.ID != e.ID || string(d.Patch) != "p\nq" {
		t.Fatalf("dead letter = %+v", d)
	}
	if !gjson.Valid(string(deadInfo(reason, at))) {
		t.Fatal("dead info is not valid JSON")
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "{", `{"id":"1","accepted_at":"yesterday"}`, "not json"} {
		if _, err := decodeEntry(s); err == nil {
			t.Errorf("decodeEntry(%q) succeeded", s)
		}
	}
	for _, s := range []string{"", "no newline", "{}\n{", "x\n{}"} {
		if _, err := decodeDeadEntry(s); err == nil {
			t.Errorf("decodeDeadEntry(%q) succeeded", s)
		}
	}
}

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add("c1", "acct", `{"a":1}`)
	f.Add("{x}", "\x00\n", "\xff\xfe")
	f.Fuzz(func(t *testing.T, call, account, patch string) {
		e := queue.Entry{ID: "00000000000000000001", CallLogID: call, Account: account, Patch: []byte(patch)}
		got, err := decodeEntry(stored(e.ID, &e))
		if err != nil {
			t.Fatal(err)
		}
		if got.CallLogID != call || got.Account != account || string(got.Patch) != patch {
			t.Fatalf("round trip: got %+v", got)
		}
	})
}
