package postback

import (
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"
)

func editParser() *Parser {
	return &Parser{MaxBatch: DefaultMaxBatch, MaxAmount: DefaultMaxAmount, MaxTags: DefaultMaxTags, Now: time.Now}
}

// stored is a PATCH as the edge queued it, with amounts in the digits the
// partner sent.
const stored = `{"converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":999999.9900,"publisher_paid_out":10.00,"reason":"sale","tags":{"add":{"customer_type":"premium"}}}`

func TestPatchEditKeepsEveryOtherByte(t *testing.T) {
	edit, perr := ParsePatchEdit([]byte(`{"set": {"revenue_paid_out": 20.50}, "delete": ["reason"]}`))
	if perr != nil {
		t.Fatal(perr)
	}
	got, err := edit.Apply([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":20.50,"publisher_paid_out":10.00,"tags":{"add":{"customer_type":"premium"}}}`
	if string(got) != want {
		t.Fatalf("operations#dead-letters edited PATCH\n got %s\nwant %s", got, want)
	}
	if perr := editParser().CheckPatch(got); perr != nil {
		t.Fatalf("valid edit refused: %v", perr)
	}
	if f := strings.Join(edit.Fields(), ","); f != "revenue_paid_out,reason" {
		t.Fatalf("fields = %s", f)
	}
}

func TestPatchEditRefusals(t *testing.T) {
	for _, tc := range []struct {
		edit, field string
	}{
		{`{"set": {"converted": "maybe"}}`, "converted"},
		{`{"set": {"revenue_paid_out": "20.50"}}`, "revenue_paid_out"}, // valid from a partner, not as the call store takes it
		{`{"set": {"revenue_paid_out": 1e3}}`, "revenue_paid_out"},
		{`{"set": {"revenue_paid_out": -1}}`, "revenue_paid_out"},
		{`{"set": {"converted": "yes"}}`, "converted"},
		{`{"set": {"no_payout_reason": "nope"}}`, "no_payout_reason"},
		{`{"set": {"call_converted_at": "2026-03-27T10:00:00"}}`, "call_converted_at"},
		{`{"set": {"tags": {"add": {"bad key!": "v"}}}}`, "add"},
	} {
		edit, perr := ParsePatchEdit([]byte(tc.edit))
		if perr != nil {
			t.Fatalf("%s: %v", tc.edit, perr)
		}
		patch, err := edit.Apply([]byte(stored))
		if err != nil {
			t.Fatal(err)
		}
		perr = editParser().CheckPatch(patch)
		if perr == nil || perr.Status != 400 || !strings.Contains(perr.Error(), tc.field) {
			t.Errorf("operations#dead-letters %s: %v, want a 400 naming %s", tc.edit, perr, tc.field)
		}
	}
	for _, tc := range []struct{ body, field string }{
		{`{"set": {"amount": 1}}`, "set.amount"},
		{`{"delete": ["tags.add"]}`, "delete.tags.add"},
		{`{"set": {"reason": "x"}, "delete": ["reason"]}`, "reason"},
		{`{"sett": {}}`, "sett"},
		{`{"set": [1]}`, "set"},
		{`[1]`, ""},
		{`{"set": {"reason": "x"}, "set": {}}`, "set"},
	} {
		if _, perr := ParsePatchEdit([]byte(tc.body)); perr == nil || !strings.Contains(perr.Error(), tc.field) {
			t.Errorf("%s: %v, want a 400 naming %q", tc.body, perr, tc.field)
		}
	}
	// Deleting every field leaves nothing to update.
	edit, _ := ParsePatchEdit([]byte(`{"delete": ["converted"]}`))
	patch, _ := edit.Apply([]byte(`{"converted":true}`))
	if perr := editParser().CheckPatch(patch); perr == nil {
		t.Fatalf("empty PATCH %s accepted", patch)
	}
}

func FuzzPatchEdit(f *testing.F) {
	f.Add([]byte(`{"set": {"revenue_paid_out": 20.50}, "delete": ["reason"]}`), []byte(stored))
	f.Add([]byte(`{"set": {"tags": {"remove": ["a"]}}}`), []byte(`{"converted":false}`))
	f.Add([]byte(`{"set": {"reason": "a\"b"}}`), []byte(`{"reason":null}`))
	f.Add([]byte(``), []byte(`{}`))
	f.Fuzz(func(t *testing.T, body, patch []byte) {
		edit, perr := ParsePatchEdit(body)
		if perr != nil {
			if perr.Status != 400 {
				t.Fatalf("status %d", perr.Status)
			}
			return
		}
		if !gjson.ValidBytes(patch) {
			return
		}
		out, err := edit.Apply(patch)
		if err != nil {
			return
		}
		// A PATCH that passes the check is one the edge itself would send.
		if editParser().CheckPatch(out) == nil {
			for _, s := range edit.Set {
				if got := gjson.GetBytes(out, gjson.Escape(s.Field)).Raw; got != s.Raw {
					t.Fatalf("set %s = %s, stored %s", s.Field, s.Raw, got)
				}
			}
			for _, d := range edit.Delete {
				if gjson.GetBytes(out, gjson.Escape(d)).Exists() {
					t.Fatalf("deleted %s still there: %s", d, out)
				}
			}
		}
	})
}
