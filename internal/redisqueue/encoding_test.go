package redisqueue

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redistest"
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
		got, err := decodeEntry(want.CallLogID, s)
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

// Entries stored by earlier versions name their call in a "call" member;
// the entries written now leave it out, as the list is the call's own.
func TestEntryOfAnEarlierVersion(t *testing.T) {
	old := `{"id":"00000000000000000003","update_id":"9f86d081884c7d65b2e1a0c4","call":"c1","account":"acct_1","webhook":"acme","request_id":"r1","accepted_at":"2026-03-27T10:00:00Z","patch":"{\"converted\":true}"}`
	got, err := decodeEntry("c1", old)
	if err != nil || got.ID != "00000000000000000003" || got.CallLogID != "c1" || got.UpdateID != "9f86d081884c7d65b2e1a0c4" || string(got.Patch) != `{"converted":true}` {
		t.Fatalf("decodeEntry = %+v, %v", got, err)
	}
	if s := stored("00000000000000000004", &queue.Entry{CallLogID: "c1"}); strings.Contains(s, `"call"`) {
		t.Fatalf("a new entry stores its call again: %s", s)
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
	d, err := decodeDeadEntry(e.CallLogID, letter)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != reason || !d.DeadAt.Equal(at) || d.ID != e.ID || d.CallLogID != "c1" || string(d.Patch) != "p\nq" {
		t.Fatalf("dead letter = %+v", d)
	}
	if !gjson.Valid(string(deadInfo(reason, at))) {
		t.Fatal("dead info is not valid JSON")
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "{", `{"id":"1","accepted_at":"yesterday"}`, "not json"} {
		if _, err := decodeEntry("c1", s); err == nil {
			t.Errorf("decodeEntry(%q) succeeded", s)
		}
	}
	for _, s := range []string{"", "no newline", "{}\n{", "x\n{}"} {
		if _, err := decodeDeadEntry("c1", s); err == nil {
			t.Errorf("decodeDeadEntry(%q) succeeded", s)
		}
	}
}

func FuzzEntryRoundTrip(f *testing.F) {
	f.Add("c1", "acct", `{"a":1}`)
	f.Add("{x}", "\x00\n", "\xff\xfe")
	f.Fuzz(func(t *testing.T, call, account, patch string) {
		e := queue.Entry{ID: "00000000000000000001", CallLogID: call, Account: account, Patch: []byte(patch)}
		got, err := decodeEntry(call, stored(e.ID, &e))
		if err != nil {
			t.Fatal(err)
		}
		if got.CallLogID != call || got.Account != account || string(got.Patch) != patch {
			t.Fatalf("round trip: got %+v", got)
		}
	})
}

// An update stored by an earlier version, whose meta field holds the
// padded entry ID rather than the sequence number, is still recognised: a
// second append of it answers that ID and stores nothing.
func TestUpdateStoredByAnEarlierVersion(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	first := entry("c1", `{"a":1}`)
	first.UpdateID = "u-1"
	mustAppend(t, q, first)
	if first.ID != "00000000000000000001" {
		t.Fatalf("first ID = %q", first.ID)
	}
	if err := c.HSet(ctx, q.keysOf("c1").meta, "u:u-1", "00000000000000000001").Err(); err != nil {
		t.Fatal(err)
	}
	again := entry("c1", `{"a":1}`)
	again.UpdateID = "u-1"
	mustAppend(t, q, again)
	if again.ID != first.ID || patchesOf(t, q, "c1") != `{"a":1}` {
		t.Fatalf("second append: ID %q, pending %s; want %q and the update once", again.ID, patchesOf(t, q, "c1"), first.ID)
	}
}

func TestListKeyIsTheCallsList(t *testing.T) {
	q := New(nil, "p:")
	for _, id := range []string{"c1", "", "we{ird}%", "☎"} {
		if q.listKey(id) != q.keysOf(id).list {
			t.Errorf("listKey(%q) = %q, keysOf says %q", id, q.listKey(id), q.keysOf(id).list)
		}
	}
}
