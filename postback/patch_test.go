package postback

import (
	"encoding/json"
	"testing"
	"time"
)

func fields(fs ...field) fieldSet {
	var s fieldSet
	for _, f := range fs {
		s |= fieldSet(1) << f
	}
	return s
}

func TestAppendPatch(t *testing.T) {
	t.Parallel()
	plus2 := time.FixedZone("+02:00", 2*3600)
	tests := []struct {
		name string
		u    Update
		want string
	}{
		{"operations#updating-a-call the example of the contract, in its field order",
			Update{
				Set:       fields(fieldConverted, fieldConvertedAt, fieldRevenue, fieldPublisher, fieldReason, fieldNoPayoutReason, fieldAdd, fieldRemove),
				Cleared:   fields(fieldNoPayoutReason),
				Converted: true, ConvertedAt: time.Date(2026, 3, 27, 12, 0, 0, 0, plus2),
				Revenue: "25.50", Publisher: "10", Reason: "sale",
				TagsAdd: []Tag{{"customer_type", "premium"}}, TagsRemove: []string{"old_tag"},
			},
			`{"converted":true,"call_converted_at":"2026-03-27T10:00:00Z","revenue_paid_out":25.50,"publisher_paid_out":10,"reason":"sale","no_payout_reason":null,"tags":{"add":{"customer_type":"premium"},"remove":["old_tag"]}}`},
		{"operations#updating-a-call only the fields the postback carried", Update{Set: fields(fieldRevenue), Revenue: "25.50"}, `{"revenue_paid_out":25.50}`},
		{"operations#updating-a-call nothing carried", Update{}, `{}`},
		{"partner-api#fields converted false", Update{Set: fields(fieldConverted)}, `{"converted":false}`},
		{"partner-api#fields null clears call_converted_at, reason and no_payout_reason",
			Update{Set: fields(fieldConvertedAt, fieldReason, fieldNoPayoutReason), Cleared: fields(fieldConvertedAt, fieldReason, fieldNoPayoutReason), Reason: "ignored"},
			`{"call_converted_at":null,"reason":null,"no_payout_reason":null}`},
		{"partner-api#fields call_converted_at in UTC with Z, fractions kept",
			Update{Set: fields(fieldConvertedAt), ConvertedAt: time.Date(2026, 3, 27, 1, 30, 0, 123000000, time.FixedZone("-05:00", -5*3600))},
			`{"call_converted_at":"2026-03-27T06:30:00.123Z"}`},
		{"partner-api#fields amounts go upstream with the digits as received",
			Update{Set: fields(fieldRevenue, fieldPublisher), Revenue: "0.0001", Publisher: "1000000"},
			`{"revenue_paid_out":0.0001,"publisher_paid_out":1000000}`},
		{"partner-api#fields no_payout_reason as normalized",
			Update{Set: fields(fieldNoPayoutReason), NoPayoutReason: "Campaign preconversion"},
			`{"no_payout_reason":"Campaign preconversion"}`},
		{"partner-api#fields tags added only, in order",
			Update{Set: fields(fieldAdd), TagsAdd: []Tag{{"b", "2"}, {"a", "1"}, {"k:x.y-z_", ""}}},
			`{"tags":{"add":{"b":"2","a":"1","k:x.y-z_":""}}}`},
		{"partner-api#fields tags removed only",
			Update{Set: fields(fieldRemove), TagsRemove: []string{"old_tag", "older"}},
			`{"tags":{"remove":["old_tag","older"]}}`},
		{"partner-api#fields escaping in reason and tag values",
			Update{Set: fields(fieldReason, fieldAdd), Reason: `said "yes" <b>&</b> \o/ ünï`, TagsAdd: []Tag{{"note", "a\u2028b\"c"}}},
			`{"reason":"said \"yes\" \u003cb\u003e\u0026\u003c/b\u003e \\o/ ünï","tags":{"add":{"note":"a\u2028b\"c"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := tt.u.AppendPatch(nil)
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
}

func TestAppendPatchDecodesToTheUpdate(t *testing.T) {
	t.Parallel()
	t.Run("operations#updating-a-call the PATCH body decodes to the update", func(t *testing.T) {
		u := Update{
			Set:       fields(fieldConverted, fieldRevenue, fieldReason, fieldAdd, fieldRemove),
			Converted: true, Revenue: "25.50", Reason: "tab\there \"q\" \x01",
			TagsAdd: []Tag{{"customer_type", "pre<mium>"}}, TagsRemove: []string{"old_tag"},
		}
		got := u.AppendPatch([]byte("xx"))
		if string(got[:2]) != "xx" {
			t.Fatalf("dst not kept: %s", got)
		}
		var m struct {
			Converted bool        `json:"converted"`
			Revenue   json.Number `json:"revenue_paid_out"`
			Reason    string      `json:"reason"`
			Tags      struct {
				Add    map[string]string `json:"add"`
				Remove []string          `json:"remove"`
			} `json:"tags"`
		}
		if err := json.Unmarshal(got[2:], &m); err != nil {
			t.Fatalf("%v: %s", err, got)
		}
		if !m.Converted || m.Revenue != "25.50" || m.Reason != u.Reason || m.Tags.Add["customer_type"] != "pre<mium>" || len(m.Tags.Remove) != 1 || m.Tags.Remove[0] != "old_tag" {
			t.Errorf("decoded %+v from %s", m, got)
		}
		if !u.Has("converted") || !u.Has("disposition") || u.Has("publisher_paid_out") || u.Has("sub1") {
			t.Error("Update.Has does not match the fields carried")
		}
	})
}
