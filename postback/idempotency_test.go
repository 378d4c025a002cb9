package postback

import (
	"net/url"
	"strings"
	"testing"
)

// partner-api#safe-retries: the idempotency_key parameter is read from the query, a form or a
// JSON body, checked with the other fields, and never listed as ignored.
func TestParseIdempotencyKey(t *testing.T) {
	p := testParser()
	for _, tc := range []struct {
		name, query, body string
		kind              BodyKind
		want              string
	}{
		{"query", "call_log_id=a&converted=1&idempotency_key=k-1", "", BodyNone, "k-1"},
		{"form", "", "call_log_id=a&converted=1&idempotency_key=k-1", BodyForm, "k-1"},
		{"JSON", "", `{"call_log_id":"a","converted":true,"idempotency_key":"k-1"}`, BodyJSON, "k-1"},
		{"query and JSON alike", "idempotency_key=k-1", `{"call_log_id":"a","converted":true,"idempotency_key":"k-1"}`, BodyJSON, "k-1"},
		{"printable ASCII with spaces and quotes", "call_log_id=a&converted=1&idempotency_key=" + url.QueryEscape(`order 7 "x" {y}`), "", BodyNone, `order 7 "x" {y}`},
		{"none", "call_log_id=a&converted=1", "", BodyNone, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := p.Parse(EndpointUpdateFields, tc.query, []byte(tc.body), tc.kind)
			if err != nil {
				t.Fatal(err)
			}
			if req.IdempotencyKey != tc.want || len(req.Ignored) != 0 {
				t.Fatalf("key %q ignored %v, want %q and nothing ignored", req.IdempotencyKey, req.Ignored, tc.want)
			}
		})
	}
}

// partner-api#safe-retries: the key is a known parameter, so strict mode takes it too.
func TestParseIdempotencyKeyStrict(t *testing.T) {
	p := testParser()
	p.Strict = true
	req, err := p.Parse(EndpointUpdateFields, "idempotency_key=k-1", []byte(`{"call_log_id":"a","converted":true}`), BodyJSON)
	if err != nil || req.IdempotencyKey != "k-1" {
		t.Fatalf("strict: %v %+v", err, req)
	}
}

// partner-api#safe-retries: a bad key is a 400 naming it, reported with the other fields.
func TestParseIdempotencyKeyRefused(t *testing.T) {
	p := testParser()
	for _, tc := range []struct {
		name, query, body string
		kind              BodyKind
		want              string
	}{
		{"empty", "call_log_id=a&converted=1&idempotency_key=", "", BodyNone, "must be 1 to 255 printable ASCII characters"},
		{"too long", "call_log_id=a&converted=1&idempotency_key=" + strings.Repeat("k", 256), "", BodyNone, "must be 1 to 255 printable ASCII characters"},
		{"not ASCII", "call_log_id=a&converted=1&idempotency_key=cl%C3%A9", "", BodyNone, "must be 1 to 255 printable ASCII characters"},
		{"control character", "call_log_id=a&converted=1&idempotency_key=a%0Ab", "", BodyNone, "must be 1 to 255 printable ASCII characters"},
		{"a number in JSON", "", `{"call_log_id":"a","converted":true,"idempotency_key":7}`, BodyJSON, "must be a string, not a number"},
		{"query and body disagree", "idempotency_key=k-1", `{"call_log_id":"a","converted":true,"idempotency_key":"k-2"}`, BodyJSON, "given twice with different values (query string and body)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Parse(EndpointUpdateFields, tc.query, []byte(tc.body), tc.kind)
			if err == nil || err.Status != 400 || len(err.Fields) != 1 || err.Fields[0].Field != "idempotency_key" || err.Fields[0].Message != tc.want {
				t.Fatalf("error %+v, want 400 idempotency_key: %s", err, tc.want)
			}
		})
	}
	// With other bad fields, all at once.
	_, err := p.Parse(EndpointUpdateFields, "call_log_id=a&converted=maybe&idempotency_key=", nil, BodyNone)
	if err == nil || len(err.Fields) != 2 {
		t.Fatalf("error %+v, want converted and idempotency_key", err)
	}
}

// partner-api#safe-retries: the header, quoted or bare, and the parameter are one key; when they
// disagree, or the header is bad, the answer is a 400 naming it.
func TestIdempotencyKeyOf(t *testing.T) {
	withParam := func(k string) *Request { return &Request{IdempotencyKey: k} }
	for _, tc := range []struct {
		name     string
		header   []string
		req      *Request
		fallback string
		want     string
		field    string // of the 400, "" for none
	}{
		{"none", nil, withParam(""), "", "", ""},
		{"bare header", []string{"abc-1"}, withParam(""), "", "abc-1", ""},
		{"quoted header as the draft writes it", []string{`"abc-1"`}, withParam(""), "", "abc-1", ""},
		{"quoted header with escapes", []string{`"a\"b\\c"`}, withParam(""), "", `a"b\c`, ""},
		{"header with spaces around", []string{"  abc-1 "}, withParam(""), "", "abc-1", ""},
		{"parameter", nil, withParam("abc-1"), "", "abc-1", ""},
		{"quoted header and bare parameter agree", []string{`"abc-1"`}, withParam("abc-1"), "", "abc-1", ""},
		{"header twice, same key", []string{"abc-1", `"abc-1"`}, withParam(""), "", "abc-1", ""},
		{"fallback when no key is given", nil, withParam(""), "msg_1", "msg_1", ""},
		{"an explicit key wins over the fallback", []string{"abc-1"}, withParam(""), "msg_1", "abc-1", ""},
		{"header and parameter disagree", []string{"abc-1"}, withParam("abc-2"), "", "", "idempotency_key"},
		{"header twice, different keys", []string{"abc-1", "abc-2"}, withParam(""), "", "", "Idempotency-Key"},
		{"empty header", []string{""}, withParam(""), "", "", "Idempotency-Key"},
		{"empty quoted header", []string{`""`}, withParam(""), "", "", "Idempotency-Key"},
		{"stray quote", []string{`"a"b"`}, withParam(""), "", "", "Idempotency-Key"},
		{"too long", []string{strings.Repeat("k", 256)}, withParam(""), "", "", "Idempotency-Key"},
		{"not ASCII", []string{"clé"}, withParam(""), "", "", "Idempotency-Key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := IdempotencyKeyOf(tc.header, tc.req, tc.fallback)
			switch {
			case tc.field == "" && (err != nil || got != tc.want):
				t.Fatalf("key %q error %v, want %q", got, err, tc.want)
			case tc.field != "" && (err == nil || err.Status != 400 || err.Code != CodeInvalidRequest || err.Fields[0].Field != tc.field || !strings.Contains(err.Message, tc.field)):
				t.Fatalf("error %+v, want a 400 naming %s", err, tc.field)
			}
		})
	}
}

// partner-api#safe-retries: the fingerprint is the normalised postback: a GET pixel, a form and a
// JSON body of one update are one request; the auth key, unknown parameters
// and the key itself are not part of it; another endpoint, id or value is.
func TestFingerprint(t *testing.T) {
	p := testParser()
	fp := func(ep Endpoint, query, body string, kind BodyKind) string {
		t.Helper()
		req, err := p.Parse(ep, query, []byte(body), kind)
		if err != nil {
			t.Fatalf("%s %s: %v", query, body, err)
		}
		return req.Fingerprint(ep)
	}
	base := fp(EndpointUpdateFields, "moja_auth_key=k1&call_log_id=abc&converted=yes&revenue_paid_out=25.50&call_converted_at=1774605600&add[tier]=gold&remove=old,older", "", BodyNone)
	for _, same := range []struct {
		name, query, body string
		kind              BodyKind
	}{
		{"form", "moja_auth_key=k2", "call_log_id=abc&converted=1&revenue_paid_out=25.50&call_converted_at=2026-03-27T10:00:00Z&fields[add][tier]=gold&remove[]=old&remove[]=older", BodyForm},
		{"JSON", "", `{"call_log_id":"abc","converted":true,"revenue_paid_out":25.50,"call_converted_at":"2026-03-27T12:00:00+02:00","add":{"tier":"gold"},"remove":["old","older"],"idempotency_key":"x","cb":"123"}`, BodyJSON},
		{"JSON in fields", "cb=9", `{"call_log_id":["abc","abc"],"fields":{"converted":"TRUE","revenue_paid_out":"25.50","call_converted_at":1774605600000,"add":[{"tier":"gold"}],"remove":["old","older"]}}`, BodyJSON},
	} {
		if got := fp(EndpointUpdateFields, same.query, same.body, same.kind); got != base {
			t.Errorf("%s: fingerprint differs from the GET's", same.name)
		}
	}
	for _, other := range []struct {
		name  string
		ep    Endpoint
		query string
	}{
		{"another id", EndpointUpdateFields, "call_log_id=abd&converted=yes&revenue_paid_out=25.50&call_converted_at=1774605600&add[tier]=gold&remove=old,older"},
		{"another amount spelling is another PATCH", EndpointUpdateFields, "call_log_id=abc&converted=yes&revenue_paid_out=25.5&call_converted_at=1774605600&add[tier]=gold&remove=old,older"},
		{"one field fewer", EndpointUpdateFields, "call_log_id=abc&converted=yes&revenue_paid_out=25.50&call_converted_at=1774605600&add[tier]=gold&remove=old"},
	} {
		if got := fp(other.ep, other.query, "", BodyNone); got == base {
			t.Errorf("%s: same fingerprint", other.name)
		}
	}
	rev := fp(EndpointUpdateRevenue, "call_log_id=abc&revenue_paid_out=1", "", BodyNone)
	if fp(EndpointUpdateFields, "call_log_id=abc&revenue_paid_out=1", "", BodyNone) == rev {
		t.Error("two endpoints, one fingerprint")
	}
	if fp(EndpointUpdateFields, "phone_number=5551234567&converted=1", "", BodyNone) != fp(EndpointUpdateFields, "", `{"phone_number":"+1 (555) 123-4567","converted":true}`, BodyJSON) {
		t.Error("a phone number's spellings differ after normalisation")
	}
	if fp(EndpointUpdateFields, "phone_number=5551234567&converted=1", "", BodyNone) == fp(EndpointUpdateFields, "call_log_id=%2B15551234567&converted=1", "", BodyNone) {
		t.Error("a phone number and an id of the same text are one request")
	}
	if fp(EndpointUpdateFields, "", `{"call_log_id":["a","b"],"converted":true}`, BodyJSON) == fp(EndpointUpdateFields, "", `{"call_log_id":["b","a"],"converted":true}`, BodyJSON) {
		t.Error("ids in another order are one request")
	}
}

// partner-api#safe-retries: a stored outcome reads back as it was, and the classes a retry
// attempts again are exactly the transient ones.
func TestOutcomeRecord(t *testing.T) {
	calls := []CallResult{
		{"a", Outcome{Class: Applied}},
		{"b", Outcome{Class: Queued}},
		{"c\"\\é", Outcome{Class: NotFound, Message: "call not found"}},
		{"d", Outcome{Class: Rejected, Message: "revenue is locked"}},
		{"e", Outcome{Class: UpstreamError, Message: "503"}},
		{"f", Outcome{Class: UpstreamTimeout, Message: "no answer"}},
		{"g", Outcome{Class: QueueUnavailable, Message: "down"}},
	}
	back, err := decodeOutcomes(encodeOutcomes(nil, calls))
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(calls) {
		t.Fatalf("%d calls back, want %d", len(back), len(calls))
	}
	for i := range calls {
		if back[i] != calls[i] {
			t.Errorf("call %d: %+v, want %+v", i, back[i], calls[i])
		}
	}
	for _, c := range calls {
		want := c.Class == UpstreamError || c.Class == UpstreamTimeout || c.Class == QueueUnavailable
		if c.Class.Transient() != want {
			t.Errorf("%s: Transient() = %v", c.Class.Code(), !want)
		}
	}
	if allFinal(calls) || !allFinal(calls[:4]) {
		t.Error("allFinal is wrong")
	}
	for _, bad := range []string{``, `{}`, `[["a","applied"]]`, `[["a","exploded",""]]`} {
		if _, err := decodeOutcomes([]byte(bad)); err == nil {
			t.Errorf("%q read as a record", bad)
		}
	}
}
