package postback

import (
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 3, 27, 12, 0, 0, 0, time.UTC)

func testParser() *Parser {
	return &Parser{
		AuthParam:          DefaultAuthParam,
		MaxBatch:           DefaultMaxBatch,
		MaxAmount:          DefaultMaxAmount,
		MaxTags:            DefaultMaxTags,
		DefaultCountryCode: "1",
		Now:                func() time.Time { return testNow },
	}
}

// patchOf parses and renders the PATCH body, or the error's fields.
func patchOf(t *testing.T, p *Parser, ep Endpoint, query, body string, kind BodyKind) (string, *Request, *Error) {
	t.Helper()
	req, err := p.Parse(ep, query, []byte(body), kind)
	if err != nil {
		return "", nil, err
	}
	return string(req.Update.AppendPatch(nil)), req, nil
}

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name  string
		ep    Endpoint
		query string
		body  string
		kind  BodyKind
		ids   string // comma-joined CallLogIDs, or "+phone"
		patch string
		ign   string
	}{
		{"release note single example", EndpointUpdateFields, "", `{"call_log_id":"abc-123","converted":true,"revenue_paid_out":25.50}`, BodyJSON,
			"abc-123", `{"converted":true,"revenue_paid_out":25.50}`, ""},
		{"release note batch update_fields with disposition alias (partner-api#batches, partner-api#fields)", EndpointUpdateFields, "moja_auth_key=k", `{"call_log_id":["abc-123","def-456","ghi-789"],"converted":true,"revenue_paid_out":25.50,"disposition":"sale"}`, BodyJSON,
			"abc-123,def-456,ghi-789", `{"converted":true,"revenue_paid_out":25.50,"reason":"sale"}`, ""},
		{"release note batch update_revenue", EndpointUpdateRevenue, "", `{"call_log_id":["abc-123","def-456","ghi-789"],"revenue_paid_out":25.50}`, BodyJSON,
			"abc-123,def-456,ghi-789", `{"revenue_paid_out":25.50}`, ""},
		{"release note batch update_tags", EndpointUpdateTags, "", `{"call_log_id":["abc-123","def-456","ghi-789"],"add":[{"customer_type":"premium"}],"remove":["old_tag"]}`, BodyJSON,
			"abc-123,def-456,ghi-789", `{"tags":{"add":{"customer_type":"premium"},"remove":["old_tag"]}}`, ""},
		{"partner-api#request-format GET query string", EndpointUpdateFields, "moja_auth_key=k&call_log_id=abc-123&converted=1&revenue_paid_out=25.50", "", BodyNone,
			"abc-123", `{"converted":true,"revenue_paid_out":25.50}`, ""},
		{"partner-api#request-format form body", EndpointUpdateFields, "moja_auth_key=k", "call_log_id=abc-123&reason=sale+made&converted=yes", BodyForm,
			"abc-123", `{"converted":true,"reason":"sale made"}`, ""},
		{"partner-api#request-format POST with ids in query and fields in body", EndpointUpdateFields, "call_log_id=abc-123", `{"converted":false}`, BodyJSON,
			"abc-123", `{"converted":false}`, ""},
		{"partner-api#request-format same key in query and body with the same value", EndpointUpdateFields, "call_log_id=abc-123&revenue_paid_out=25.50", `{"call_log_id":"abc-123","revenue_paid_out":25.50}`, BodyJSON,
			"abc-123", `{"revenue_paid_out":25.50}`, ""},
		{"partner-api#request-format JSON body with only whitespace and ids in query", EndpointUpdateFields, "call_log_id=a&converted=0", " \n", BodyJSON,
			"a", `{"converted":false}`, ""},
		{"partner-api#the-fields-object fields object", EndpointUpdateFields, "", `{"call_log_id":"abc-123","fields":{"converted":true,"reason":"sale"}}`, BodyJSON,
			"abc-123", `{"converted":true,"reason":"sale"}`, ""},
		{"partner-api#the-fields-object fields[name] in a query string", EndpointUpdateFields, "call_log_id=abc-123&fields[converted]=true&fields%5Breason%5D=sale", "", BodyNone,
			"abc-123", `{"converted":true,"reason":"sale"}`, ""},
		{"partner-api#the-fields-object same field at top and in fields with the same value", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"x","fields":{"reason":"x"}}`, BodyJSON,
			"a", `{"reason":"x"}`, ""},
		{"partner-api#identifying-calls single call_log_id wins over phone_number", EndpointUpdateFields, "", `{"call_log_id":"abc-123","phone_number":"+15551234567","converted":true}`, BodyJSON,
			"abc-123", `{"converted":true}`, ""},
		{"partner-api#identifying-calls phone_number normalized to E.164", EndpointUpdateFields, "phone_number=(555)+123-4567&converted=1", "", BodyNone,
			"+15551234567", `{"converted":true}`, ""},
		{"partner-api#batches duplicates in a batch are updated once", EndpointUpdateRevenue, "", `{"call_log_id":["a","b","a"],"revenue_paid_out":"1"}`, BodyJSON,
			"a,b", `{"revenue_paid_out":1}`, ""},
		{"partner-api#batches single call_log_id[] is one id", EndpointUpdateFields, "call_log_id[]=a&converted=1", "", BodyNone,
			"a", `{"converted":true}`, ""},
		{"partner-api#unknown-parameters unknown keys are listed as ignored", EndpointUpdateFields, "moja_auth_key=k&sub1=x", `{"call_log_id":"a","converted":true,"sub2":1,"fields":{"sub3":2}}`, BodyJSON,
			"a", `{"converted":true}`, "sub1,sub2,fields.sub3"},
		{"partner-api#fields converted string forms", EndpointUpdateFields, "call_log_id=a&converted=NO", "", BodyNone,
			"a", `{"converted":false}`, ""},
		{"partner-api#fields converted JSON number", EndpointUpdateFields, "", `{"call_log_id":"a","converted":1}`, BodyJSON,
			"a", `{"converted":true}`, ""},
		{"partner-api#fields call_converted_at with offset goes upstream in UTC with Z", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":"2026-03-27T12:00:00+02:00"}`, BodyJSON,
			"a", `{"call_converted_at":"2026-03-27T10:00:00Z"}`, ""},
		{"partner-api#fields call_converted_at epoch seconds as number", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":1774605600}`, BodyJSON,
			"a", `{"call_converted_at":"2026-03-27T10:00:00Z"}`, ""},
		{"partner-api#fields call_converted_at epoch milliseconds as string", EndpointUpdateFields, "call_log_id=a&call_converted_at=1774605600123", "", BodyNone,
			"a", `{"call_converted_at":"2026-03-27T10:00:00.123Z"}`, ""},
		{"partner-api#fields call_converted_at null clears", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":null}`, BodyJSON,
			"a", `{"call_converted_at":null}`, ""},
		{"partner-api#fields empty query value clears reason", EndpointUpdateFields, "call_log_id=a&reason=", "", BodyNone,
			"a", `{"reason":null}`, ""},
		{"partner-api#fields revenue string keeps its digits", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":"25.50","publisher_paid_out":10}`, BodyJSON,
			"a", `{"revenue_paid_out":25.50,"publisher_paid_out":10}`, ""},
		{"partner-api#fields revenue at max_amount", EndpointUpdateRevenue, "call_log_id=a&revenue_paid_out=1000000.0000", "", BodyNone,
			"a", `{"revenue_paid_out":1000000.0000}`, ""},
		{"partner-api#fields no_payout_reason normalized from snake_case", EndpointUpdateFields, "", `{"call_log_id":"a","no_payout_reason":"caps_EXCEEDED"}`, BodyJSON,
			"a", `{"no_payout_reason":"Caps exceeded"}`, ""},
		{"partner-api#fields no_payout_reason null clears", EndpointUpdateFields, "", `{"call_log_id":"a","no_payout_reason":null}`, BodyJSON,
			"a", `{"no_payout_reason":null}`, ""},
		{"partner-api#fields add as an object, numbers and booleans as text", EndpointUpdateTags, "", `{"call_log_id":"a","add":{"score":7,"vip":true,"k.x:y-z_1":"v"}}`, BodyJSON,
			"a", `{"tags":{"add":{"score":"7","vip":"true","k.x:y-z_1":"v"}}}`, ""},
		{"partner-api#fields add[key] and comma-separated remove in a query", EndpointUpdateTags, "call_log_id=a&add[customer_type]=premium&remove=old,older&remove[]=oldest", "", BodyNone,
			"a", `{"tags":{"add":{"customer_type":"premium"},"remove":["old","older","oldest"]}}`, ""},
		{"partner-api#fields fields[add][key] in a form", EndpointUpdateFields, "", "call_log_id=a&fields[add][tier]=gold&fields[remove]=x", BodyForm,
			"a", `{"tags":{"add":{"tier":"gold"},"remove":["x"]}}`, ""},
		{"partner-api#fields remove a single string", EndpointUpdateTags, "", `{"call_log_id":"a","remove":"old_tag"}`, BodyJSON,
			"a", `{"tags":{"remove":["old_tag"]}}`, ""},
		{"partner-api#fields reason escaped upstream", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"say \"hi\" <b>"}`, BodyJSON,
			"a", `{"reason":"say \"hi\" \u003cb\u003e"}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			patch, req, err := patchOf(t, testParser(), tt.ep, tt.query, tt.body, tt.kind)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			ids := strings.Join(req.CallLogIDs, ",")
			if req.PhoneNumber != "" {
				ids = req.PhoneNumber
			}
			if ids != tt.ids {
				t.Errorf("ids = %q, want %q", ids, tt.ids)
			}
			if patch != tt.patch {
				t.Errorf("patch = %s\nwant    %s", patch, tt.patch)
			}
			if got := strings.Join(req.Ignored, ","); got != tt.ign {
				t.Errorf("ignored = %q, want %q", got, tt.ign)
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	long := strings.Repeat("x", 256)
	var manyIDs, manyTags strings.Builder
	manyIDs.WriteString(`{"call_log_id":[`)
	for i := 0; i < 51; i++ {
		if i > 0 {
			manyIDs.WriteString(",")
		}
		manyIDs.WriteString(`"id` + strings.Repeat("x", i) + `"`)
	}
	manyIDs.WriteString(`],"converted":true}`)
	manyTags.WriteString(`{"call_log_id":"a","add":{`)
	for i := 0; i < 51; i++ {
		if i > 0 {
			manyTags.WriteString(",")
		}
		manyTags.WriteString(`"t` + strings.Repeat("x", i%60) + string(rune('a'+i%26)) + `":"v"`)
	}
	manyTags.WriteString(`}}`)

	tests := []struct {
		name   string
		ep     Endpoint
		query  string
		body   string
		kind   BodyKind
		fields string // comma-joined offending fields; "" for a request-level error
		msg    string // part of the message (of the first field, or of the error)
	}{
		{"partner-api#request-format body not a JSON object", EndpointUpdateFields, "", `["a"]`, BodyJSON, "", "must be a JSON object"},
		{"partner-api#request-format JSON sent as a form", EndpointUpdateFields, "", `{"call_log_id":"a","converted":true}`, BodyForm, "", "Content-Type: application/json"},
		{"partner-api#request-format body not JSON", EndpointUpdateFields, "", `{"call_log_id":`, BodyJSON, "", "not valid JSON"},
		{"partner-api#request-format same key in query and body with different values", EndpointUpdateFields, "call_log_id=a", `{"call_log_id":"b","converted":true}`, BodyJSON, "call_log_id", "different values"},
		{"partner-api#the-fields-object same field at top and in fields with different values", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"x","fields":{"reason":"y"}}`, BodyJSON, "reason", "different values"},
		{"partner-api#the-fields-object fields not an object", EndpointUpdateFields, "", `{"call_log_id":"a","fields":"converted"}`, BodyJSON, "fields", "must be an object"},
		{"partner-api#identifying-calls identifiers are top level only", EndpointUpdateFields, "", `{"fields":{"call_log_id":"a","converted":true}}`, BodyJSON, "fields.call_log_id,call_log_id", "identifiers belong at the top level"},
		{"partner-api#identifying-calls no identifier", EndpointUpdateFields, "converted=1", "", BodyNone, "call_log_id", "call_log_id or phone_number is required"},
		{"partner-api#identifying-calls phone number too short", EndpointUpdateFields, "phone_number=%2B12345&converted=1", "", BodyNone, "phone_number", "7 to 15 digits"},
		{"partner-api#identifying-calls phone number too long", EndpointUpdateFields, "phone_number=%2B1234567890123456&converted=1", "", BodyNone, "phone_number", "7 to 15 digits"},
		{"partner-api#identifying-calls phone number with letters", EndpointUpdateFields, "phone_number=555-CALL-NOW&converted=1", "", BodyNone, "phone_number", "ASCII digits"},
		{"partner-api#identifying-calls call_log_id with whitespace", EndpointUpdateFields, "", `{"call_log_id":"a b","converted":true}`, BodyJSON, "call_log_id", "without whitespace"},
		{"partner-api#identifying-calls call_log_id too long", EndpointUpdateFields, "", `{"call_log_id":"` + strings.Repeat("a", 129) + `","converted":true}`, BodyJSON, "call_log_id", "longer than 128"},
		{"partner-api#identifying-calls call_log_id not a string", EndpointUpdateFields, "", `{"call_log_id":123,"converted":true}`, BodyJSON, "call_log_id", "must be a string"},
		{"partner-api#batches array with phone_number", EndpointUpdateFields, "", `{"call_log_id":["a"],"phone_number":"+15551234567","converted":true}`, BodyJSON, "phone_number", "cannot be combined"},
		{"partner-api#batches empty array", EndpointUpdateFields, "", `{"call_log_id":[],"converted":true}`, BodyJSON, "call_log_id", "empty"},
		{"partner-api#batches non-string element", EndpointUpdateFields, "", `{"call_log_id":["a",1],"converted":true}`, BodyJSON, "call_log_id", "must be a string"},
		{"partner-api#batches more than max_batch ids", EndpointUpdateFields, "", manyIDs.String(), BodyJSON, "call_log_id", "at most 50"},
		{"partner-api#batches repeated call_log_id in a GET", EndpointUpdateFields, "call_log_id=a&call_log_id=b&converted=1", "", BodyNone, "call_log_id", "JSON POST"},
		{"partner-api#batches call_log_id[] twice in a form", EndpointUpdateFields, "", "call_log_id[]=a&call_log_id[]=b&converted=1", BodyForm, "call_log_id", "JSON POST"},
		{"partner-api#unknown-parameters field sent to an endpoint that does not accept it", EndpointUpdateRevenue, "", `{"call_log_id":"a","revenue_paid_out":1,"converted":true}`, BodyJSON, "converted", "send it to update-fields"},
		{"partner-api#unknown-parameters tags sent to update-revenue", EndpointUpdateRevenue, "", `{"call_log_id":"a","revenue_paid_out":1,"add":{"a":"b"}}`, BodyJSON, "add", "update-tags or update-fields"},
		{"partner-api#limits key given twice", EndpointUpdateFields, "", `{"call_log_id":"a","converted":true,"converted":false}`, BodyJSON, "", `"converted" is given twice`},
		{"partner-api#limits key given twice inside fields", EndpointUpdateFields, "", `{"call_log_id":"a","fields":{"reason":"x","reason":"x"}}`, BodyJSON, "", `"reason" is given twice`},
		{"partner-api#limits key given twice inside add", EndpointUpdateFields, "", `{"call_log_id":"a","add":[{"k":"1","k":"1"}]}`, BodyJSON, "", `"k" is given twice`},
		{"partner-api#limits nesting deeper than 8", EndpointUpdateFields, "", `{"call_log_id":"a","x":[[[[[[[[1]]]]]]]]}`, BodyJSON, "", "deeper than 8"},
		{"partner-api#limits more than 50 tags added", EndpointUpdateTags, "", manyTags.String(), BodyJSON, "add", "at most 50"},
		{"partner-api#request-format nothing to update", EndpointUpdateFields, "call_log_id=a", "", BodyNone, "fields", "nothing to update"},
		{"partner-api#endpoints update-revenue requires revenue_paid_out", EndpointUpdateRevenue, "call_log_id=a", "", BodyNone, "revenue_paid_out", "required"},
		{"partner-api#endpoints update-tags requires add or remove", EndpointUpdateTags, "call_log_id=a", "", BodyNone, "add", "add or remove is required"},
		{"partner-api#fields converted not a boolean", EndpointUpdateFields, "call_log_id=a&converted=maybe", "", BodyNone, "converted", "true or false"},
		{"partner-api#fields converted cannot be cleared", EndpointUpdateFields, "", `{"call_log_id":"a","converted":null}`, BodyJSON, "converted", "cannot be cleared"},
		{"partner-api#fields time without zone", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":"2026-03-27T10:00:00"}`, BodyJSON, "call_converted_at", "no time zone"},
		{"partner-api#fields time more than 24h ahead", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":"2026-03-28T12:00:01Z"}`, BodyJSON, "call_converted_at", "24 hours in the future"},
		{"partner-api#fields time before 1970", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":"0000-01-01T00:00:00+00:01"}`, BodyJSON, "call_converted_at", "before 1970"},
		{"partner-api#request-format query string not UTF-8", EndpointUpdateFields, "call_log_id=a&converted=1&%FF=1", "", BodyNone, "", "not valid UTF-8"},
		{"partner-api#request-format a vertical tab is not JSON whitespace", EndpointUpdateFields, "call_log_id=a&converted=1", "\v", BodyJSON, "", "not valid JSON"},
		{"partner-api#fields epoch of 11 digits", EndpointUpdateFields, "", `{"call_log_id":"a","call_converted_at":17746056001}`, BodyJSON, "call_converted_at", "10 digits"},
		{"partner-api#fields revenue negative", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":-1}`, BodyJSON, "revenue_paid_out", "negative"},
		{"partner-api#fields revenue exponent", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":1e3}`, BodyJSON, "revenue_paid_out", "without sign, exponent"},
		{"partner-api#fields revenue five decimals", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":"1.00001"}`, BodyJSON, "revenue_paid_out", "more than 4 decimal places"},
		{"partner-api#fields revenue currency sign", EndpointUpdateFields, "call_log_id=a&revenue_paid_out=$25", "", BodyNone, "revenue_paid_out", "without sign"},
		{"partner-api#fields revenue thousands separator", EndpointUpdateFields, "call_log_id=a&revenue_paid_out=1,000", "", BodyNone, "revenue_paid_out", "separators"},
		{"partner-api#fields revenue Unicode digits", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":"٢٥"}`, BodyJSON, "revenue_paid_out", "decimal number"},
		{"partner-api#fields revenue above max_amount", EndpointUpdateFields, "", `{"call_log_id":"a","revenue_paid_out":1000000.0001}`, BodyJSON, "revenue_paid_out", "at most 1000000"},
		{"partner-api#fields revenue cannot be cleared", EndpointUpdateRevenue, "call_log_id=a&revenue_paid_out=", "", BodyNone, "revenue_paid_out", "cannot be cleared"},
		{"partner-api#fields publisher as a boolean", EndpointUpdateFields, "", `{"call_log_id":"a","publisher_paid_out":true}`, BodyJSON, "publisher_paid_out", "not a boolean"},
		{"partner-api#fields reason longer than 255", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"` + long + `"}`, BodyJSON, "reason", "longer than 255"},
		{"partner-api#fields reason with a control character", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"a\u0000b"}`, BodyJSON, "reason", "control characters"},
		{"partner-api#fields reason and disposition differ", EndpointUpdateFields, "", `{"call_log_id":"a","reason":"x","disposition":"y"}`, BodyJSON, "reason", "same field"},
		{"partner-api#fields unknown no_payout_reason", EndpointUpdateFields, "", `{"call_log_id":"a","no_payout_reason":"because"}`, BodyJSON, "no_payout_reason", "must be one of"},
		{"partner-api#fields tag key with a space", EndpointUpdateTags, "", `{"call_log_id":"a","add":{"bad key":"v"}}`, BodyJSON, "add", "may only hold"},
		{"partner-api#fields tag key too long", EndpointUpdateTags, "", `{"call_log_id":"a","add":{"` + strings.Repeat("k", 65) + `":"v"}}`, BodyJSON, "add", "1 to 64"},
		{"partner-api#fields nested tag value", EndpointUpdateTags, "", `{"call_log_id":"a","add":{"k":{"x":1}}}`, BodyJSON, "add", "nested value"},
		{"partner-api#fields tag both added and removed", EndpointUpdateTags, "", `{"call_log_id":"a","add":{"k":"v"},"remove":["k"]}`, BodyJSON, "remove", "both added and removed"},
		{"partner-api#fields remove not a key", EndpointUpdateTags, "", `{"call_log_id":"a","remove":{"k":1}}`, BodyJSON, "remove", "tag key"},
		{"partner-api#fields every failure at once", EndpointUpdateFields, "", `{"call_log_id":"a","converted":"maybe","revenue_paid_out":-1,"no_payout_reason":"x"}`, BodyJSON, "converted,revenue_paid_out,no_payout_reason", "true or false"},
		{"partner-api#unknown-parameters strict refuses unknown keys", EndpointUpdateFields, "", `{"call_log_id":"a","converted":true,"sub1":1}`, BodyJSON, "sub1", "strict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testParser()
			p.Strict = strings.Contains(tt.name, "strict")
			_, _, err := patchOf(t, p, tt.ep, tt.query, tt.body, tt.kind)
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Status != 400 || err.Code != CodeInvalidRequest {
				t.Errorf("status %d code %s, want 400 invalid_request", err.Status, err.Code)
			}
			var names []string
			for _, f := range err.Fields {
				names = append(names, f.Field)
			}
			if got := strings.Join(names, ","); got != tt.fields {
				t.Errorf("fields = %q, want %q (%v)", got, tt.fields, err)
			}
			msg := err.Message
			if len(err.Fields) > 0 {
				msg = err.Fields[0].Message
			}
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("message %q does not contain %q", msg, tt.msg)
			}
		})
	}
}

func TestParseCompleted(t *testing.T) {
	p := testParser()
	ids, err := p.ParseCompleted("", []byte(`{"call_log_id":["a","b","a"]}`), BodyJSON)
	if err != nil || strings.Join(ids, ",") != "a,b" {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	ids, err = p.ParseCompleted("call_log_id=x", nil, BodyNone)
	if err != nil || strings.Join(ids, ",") != "x" {
		t.Fatalf("ids %v, err %v", ids, err)
	}
	if _, err := p.ParseCompleted("", []byte(`{}`), BodyJSON); err == nil || err.Fields[0].Field != "call_log_id" {
		t.Fatalf("operations#completion-and-dead-letters call-completed without ids: %v", err)
	}
}
