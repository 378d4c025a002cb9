package postback

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzFingerprintSpellings checks partner-api#safe-retries: one postback spelled as a GET query,
// a form and a JSON body is accepted by all three or by none, and when
// accepted has one fingerprint and one idempotency key, whatever
// cache-buster each carries. Values are given as strings, the one type all
// three spellings share; empty values are left out, since an empty query
// value clears a field and an empty JSON string does not.
func FuzzFingerprintSpellings(f *testing.F) {
	f.Add("abc-123", "", "yes", "25.50", "", "sale", "tier", "gold", "old,older", "k-1", "1")
	f.Add("", "(555) 123-4567", "", "", "2026-03-27T10:00:00+02:00", "", "", "", "", "pixel 7", "x")
	f.Add("a b", "", "maybe", "1e3", "", "", "", "", "", "", "")
	f.Add("abc", "", "", "10", "1774605600", "no\x01way", "k]x", "v", " , ", "\"q\"", "")
	f.Add("abc", "+44 20 7946 0958", "0", "0.0001", "1774605600000", "é", "a:b", "☃", "x,y,x", strings.Repeat("k", 255), "")
	f.Fuzz(func(t *testing.T, id, phone, converted, revenue, at, reason, tagKey, tagValue, remove, key, cacheBuster string) {
		for _, s := range []string{id, phone, converted, revenue, at, reason, tagKey, tagValue, remove, key, cacheBuster} {
			if !utf8.ValidString(s) {
				return // a JSON body cannot carry it as the query does
			}
		}
		var query []string
		json := []string{}
		add := func(name, value string) {
			if value == "" {
				return
			}
			query = append(query, url.QueryEscape(name)+"="+url.QueryEscape(value))
			json = append(json, string(appendString(nil, name))+":"+string(appendString(nil, value)))
		}
		add("call_log_id", id)
		add("phone_number", phone)
		add("converted", converted)
		add("revenue_paid_out", revenue)
		add("call_converted_at", at)
		add("reason", reason)
		add("idempotency_key", key)
		if tagKey != "" && tagValue != "" {
			query = append(query, "add["+url.QueryEscape(tagKey)+"]="+url.QueryEscape(tagValue))
			json = append(json, `"add":{`+string(appendString(nil, tagKey))+":"+string(appendString(nil, tagValue))+"}")
		}
		if keys := splitRemove(remove); len(keys) > 0 {
			query = append(query, "remove="+url.QueryEscape(remove))
			json = append(json, `"remove":`+string(appendStrings(nil, keys)))
		}
		q := strings.Join(query, "&")
		withBuster := func(s, sep string) string {
			if cacheBuster == "" {
				return s
			}
			if s == "" {
				return "cb=" + url.QueryEscape(cacheBuster)
			}
			return s + sep + "cb=" + url.QueryEscape(cacheBuster)
		}
		jsonBody := "{" + strings.Join(json, ",") + "}"
		if cacheBuster != "" {
			jsonBody = "{" + strings.Join(append(json, `"cb":`+string(appendString(nil, cacheBuster))), ",") + "}"
		}
		p := fuzzLenient
		for _, ep := range fuzzEndpoints {
			get, getErr := p.Parse(ep, q, nil, BodyNone)
			form, formErr := p.Parse(ep, "moja_auth_key=k", []byte(withBuster(q, "&")), BodyForm)
			body, bodyErr := p.Parse(ep, withBuster("", ""), []byte(jsonBody), BodyJSON)
			if (getErr == nil) != (formErr == nil) || (getErr == nil) != (bodyErr == nil) {
				t.Fatalf("%s: accepted differently:\nGET  %s: %v\nform: %v\nJSON %s: %v", ep.Segment(), q, getErr, formErr, jsonBody, bodyErr)
			}
			if getErr != nil {
				continue
			}
			fp := get.Fingerprint(ep)
			if form.Fingerprint(ep) != fp || body.Fingerprint(ep) != fp {
				t.Fatalf("%s: fingerprints differ:\nGET  %s\nform %s\nJSON %s", ep.Segment(), q, withBuster(q, "&"), jsonBody)
			}
			if get.IdempotencyKey != key || form.IdempotencyKey != key || body.IdempotencyKey != key {
				t.Fatalf("%s: keys %q %q %q, want %q", ep.Segment(), get.IdempotencyKey, form.IdempotencyKey, body.IdempotencyKey, key)
			}
		}
	})
}
