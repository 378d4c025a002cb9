package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// Hostile requests, as an edge meets them every day: each gets the 4xx it
// must, with a JSON error naming the problem, and the call store never
// hears of it.
func TestHostileRequests(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	deep := `{"call_log_id":"a","x":` + strings.Repeat("[", 9) + strings.Repeat("]", 9) + `}`
	veryDeep := `{"call_log_id":"a","x":` + strings.Repeat("[", 50000) + strings.Repeat("]", 50000) + `}`
	var manyParams strings.Builder
	manyParams.WriteString("call_log_id=a&converted=1")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&manyParams, "&%x", i) // short, so 10 000 fit in max_body
	}
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("%q", fmt.Sprintf("ok-%d", i))
	}
	ids[25] = `"bad id"`

	tests := []struct {
		name, query, ctype, body string
		status                   int
		contains                 string
	}{
		{"invalid UTF-8 in the body", "", jsonType, "{\"call_log_id\":\"a\",\"reason\":\"\xff\xfe\"}", 400, "UTF-8"},
		{"invalid UTF-8 in the query string", "&call_log_id=a&reason=%FF", "", "", 400, "UTF-8"},
		{"NUL byte in a JSON string", "", jsonType, `{"call_log_id":"a","reason":"x\u0000y"}`, 400, "control characters"},
		{"raw NUL byte in the body", "", jsonType, "{\"call_log_id\":\"a\",\x00\"converted\":true}", 400, "not valid JSON"},
		{"NUL byte in an id", "&call_log_id=a%00b&converted=1", "", "", 400, "printable"},
		{"duplicate key at the top", "", jsonType, `{"call_log_id":"a","converted":true,"converted":true}`, 400, "given twice"},
		{"duplicate key inside fields", "", jsonType, `{"call_log_id":"a","fields":{"reason":"x","reason":"y"}}`, 400, "given twice"},
		{"duplicate key inside add", "", jsonType, `{"call_log_id":"a","add":{"k":"1","k":"2"}}`, 400, "given twice"},
		{"nesting one level too deep (partner-api#limits)", "", jsonType, deep, 400, "deeper than 8"},
		{"nesting 50 000 levels deep", "", jsonType, veryDeep, 413, "larger than"},
		{"huge number", "", jsonType, `{"call_log_id":"a","revenue_paid_out":` + strings.Repeat("9", 400) + `}`, 400, "too large"},
		{"exponent number", "", jsonType, `{"call_log_id":"a","revenue_paid_out":2.5e1}`, 400, "exponent"},
		{"Unicode digits", "", jsonType, `{"call_log_id":"a","revenue_paid_out":"२५"}`, 400, "decimal number"},
		{"Unicode digits in a phone number", "&phone_number=%EF%BC%95%EF%BC%95%EF%BC%95%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94&converted=1", "", "", 400, "ASCII digits"},
		{"1 MiB body", "", jsonType, `{"call_log_id":"a","reason":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "larger than"},
		// In a URL they pass Caddy's header limit and get its 431 first.
		{"10 000 form parameters", "", "application/x-www-form-urlencoded", manyParams.String(), 400, "more than 256 parameters"},
		{"id with a space", "", jsonType, `{"call_log_id":"a b","converted":true}`, 400, "whitespace"},
		{"mixed valid and invalid ids in a batch", "", jsonType, `{"call_log_id":[` + strings.Join(ids, ",") + `],"converted":true}`, 400, "element 25"},
		{"a batch of 51", "", jsonType, `{"call_log_id":[` + strings.Repeat(`"x",`, 50) + `"y"],"converted":true}`, 400, "at most 50"},
		{"JSON array body", "", jsonType, `[{"call_log_id":"a"}]`, 400, "JSON object"},
		{"a scalar body", "", jsonType, `123`, 400, "JSON object"},
		{"XML", "", "application/xml", `<call id="a"/>`, 415, "application/xml"},
		{"multipart", "", "multipart/form-data; boundary=x", "--x--", 415, "multipart/form-data"},
		{"an empty key", "&=1&call_log_id=a&converted=1&strict=1", "", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(store.records())
			method := "GET"
			if tt.body != "" {
				method = "POST"
			}
			status, body := send(t, tester, method, edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey+tt.query), tt.ctype, tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", status, tt.status, body)
			}
			if tt.status == 200 {
				return
			}
			if msg := gjson.Get(body, "error.message").String() + " " + gjson.Get(body, "error.fields").Raw; !strings.Contains(msg, tt.contains) {
				t.Errorf("error %q does not say %q", msg, tt.contains)
			}
			if after := len(store.records()); after != before {
				t.Errorf("the call store was touched %d times", after-before)
			}
		})
	}
}

// Ids that look like paths reach the call store as one escaped segment of
// /v1/calls/, never another path (operations#updating-a-call).
func TestHostileIDsStayInTheirSegment(t *testing.T) {
	store := newScriptedStore(t)
	tester := startEdge(t, edgeConfig(store.URL, "", ""))
	ids := map[string]string{
		"../../admin": "..%2F..%2Fadmin",
		"..":          "%2E%2E",
		".":           "%2E",
		"a/b":         "a%2Fb",
		"100%":        "100%25",
		"x?y=1":       "x%3Fy%3D1",
		"frag#1":      "frag%231",
		"complete/..": "complete%2F..",
		"ünï-cödé":    "%C3%BCn%C3%AF-c%C3%B6d%C3%A9",
		"a\\b":        "a%5Cb",
		"%2F":         "%252F",
	}
	var list []string
	for id := range ids {
		list = append(list, fmt.Sprintf("%q", id))
	}
	status, body := send(t, tester, "POST", edgeURL("/postback/update-fields?moja_auth_key="+fieldsKey), jsonType, `{"call_log_id":[`+strings.Join(list, ",")+`],"converted":true}`)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, body)
	}
	for id, escaped := range ids {
		if got := store.applied(escaped); len(got) != 1 {
			t.Errorf("id %q: the call store saw %d PATCHes at /v1/calls/%s", id, len(got), escaped)
		}
	}
	if n := len(store.records()); n != len(ids) {
		t.Fatalf("%d PATCHes for %d ids", n, len(ids))
	}
}
