package refstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// update is a validated PATCH body of docs/operations.md#updating-a-call. The set flags say which
// fields the body carried: absent leaves a field unchanged, present with a
// nil value clears it.
type update struct {
	converted        *bool
	convertedAt      optional[string]
	revenuePaidOut   json.Number
	publisherPaidOut json.Number
	reason           optional[string]
	noPayoutReason   optional[string]
	tagsAdd          map[string]string
	tagsRemove       []string
}

// optional is a clearable field: set says it was present, v is nil for null.
type optional[T any] struct {
	set bool
	v   *T
}

// problems collects every validation failure of one body, so the 422 names
// them all at once.
type problems map[string]string

func (p problems) add(field, format string, args ...any) {
	p[field] = fmt.Sprintf(format, args...)
}

// message joins the problems in key order, so the text is stable.
func (p problems) message() string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + p[k]
	}
	return strings.Join(parts, "; ")
}

// decodeObject reads a body that must be one JSON object.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	// json.Unmarshal would take null as an empty map; the store wants an
	// object and nothing else.
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("body must be a JSON object")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &m); err != nil {
		return nil, fmt.Errorf("body must be a JSON object: %v", err)
	}
	return m, nil
}

// parseUpdate validates a PATCH body: only the fields of docs/operations.md#updating-a-call, each
// of the type a real call store would insist on.
func parseUpdate(body []byte) (update, error) {
	var u update
	m, err := decodeObject(body)
	if err != nil {
		return u, err
	}
	p := problems{}
	for key, raw := range m {
		if key == "tags" {
			u.parseTags(raw, p)
			continue
		}
		if !u.parseField(key, raw, p) {
			p.add(key, "unknown field")
		}
	}
	if len(p) > 0 {
		return u, fmt.Errorf("%s", p.message())
	}
	return u, nil
}

// parseField reads one field of docs/operations.md#updating-a-call other than tags into u. It
// reports false for a key that is not such a field.
func (u *update) parseField(key string, raw json.RawMessage, p problems) bool {
	isNull := string(raw) == "null"
	switch key {
	case "converted":
		switch string(raw) {
		case "true", "false":
			b := string(raw) == "true"
			u.converted = &b
		default:
			p.add(key, "must be true or false")
		}
	case "call_converted_at":
		u.convertedAt.set = true
		if isNull {
			return true
		}
		s, ok := jsonString(raw)
		if !ok {
			p.add(key, "must be an RFC 3339 time or null")
			return true
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			p.add(key, "must be an RFC 3339 time with an offset")
			return true
		}
		u.convertedAt.v = &s
	case "revenue_paid_out", "publisher_paid_out":
		n, msg := amount(raw)
		if msg != "" {
			p.add(key, "%s", msg)
			return true
		}
		if key == "revenue_paid_out" {
			u.revenuePaidOut = n
		} else {
			u.publisherPaidOut = n
		}
	case "reason":
		u.reason.set = true
		if isNull {
			return true
		}
		s, ok := jsonString(raw)
		if !ok {
			p.add(key, "must be a string or null")
			return true
		}
		u.reason.v = &s
	case "no_payout_reason":
		u.noPayoutReason.set = true
		if isNull {
			return true
		}
		s, ok := jsonString(raw)
		if !ok || !slices.Contains(noPayoutReasons, s) {
			p.add(key, "must be one of %q or null", noPayoutReasons)
			return true
		}
		u.noPayoutReason.v = &s
	default:
		return false
	}
	return true
}

// amount reads a revenue or payout: a non-negative JSON number, kept as
// its exact text.
func amount(raw json.RawMessage) (json.Number, string) {
	if len(raw) == 0 || !(raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9') {
		// A string such as "25.50" is the edge's job to turn into a number
		// (docs/partner-api.md#fields); a store that accepted it would hide that bug.
		return "", "must be a JSON number"
	}
	if raw[0] == '-' {
		return "", "must not be negative"
	}
	return json.Number(raw), ""
}

// parseTags reads {"add": {key: value}, "remove": [key]}.
func (u *update) parseTags(raw json.RawMessage, p problems) {
	var t map[string]json.RawMessage
	if err := json.Unmarshal(raw, &t); err != nil || t == nil {
		p.add("tags", `must be an object with "add" and/or "remove"`)
		return
	}
	for key, v := range t {
		switch key {
		case "add":
			var add map[string]json.RawMessage
			if err := json.Unmarshal(v, &add); err != nil || add == nil {
				p.add("tags.add", "must be an object of string values")
				continue
			}
			u.tagsAdd = make(map[string]string, len(add))
			for k, raw := range add {
				// Decoding into map[string]string would take null as "".
				s, ok := jsonString(raw)
				switch {
				case k == "":
					p.add("tags.add", "a tag key must not be empty")
				case !ok:
					p.add("tags.add."+k, "must be a string")
				default:
					u.tagsAdd[k] = s
				}
			}
		case "remove":
			var remove []json.RawMessage
			if err := json.Unmarshal(v, &remove); err != nil || remove == nil {
				p.add("tags.remove", "must be an array of strings")
				continue
			}
			for _, raw := range remove {
				s, ok := jsonString(raw)
				if !ok {
					p.add("tags.remove", "must be an array of strings")
					break
				}
				u.tagsRemove = append(u.tagsRemove, s)
			}
		default:
			p.add("tags."+key, "unknown field")
		}
	}
	for _, k := range u.tagsRemove {
		if _, ok := u.tagsAdd[k]; ok {
			// Add-then-remove and remove-then-add disagree; refuse to guess.
			p.add("tags", "key %q is both added and removed", k)
		}
	}
}

// apply writes u onto c. Only fields u carries change.
func (u update) apply(c *Call) {
	if u.converted != nil {
		c.Converted = clonePtr(u.converted)
	}
	if u.convertedAt.set {
		c.CallConvertedAt = clonePtr(u.convertedAt.v)
	}
	if u.revenuePaidOut != "" {
		c.RevenuePaidOut = u.revenuePaidOut
	}
	if u.publisherPaidOut != "" {
		c.PublisherPaidOut = u.publisherPaidOut
	}
	if u.reason.set {
		c.Reason = clonePtr(u.reason.v)
	}
	if u.noPayoutReason.set {
		c.NoPayoutReason = clonePtr(u.noPayoutReason.v)
	}
	if len(u.tagsAdd) > 0 && c.Tags == nil {
		c.Tags = map[string]string{}
	}
	for k, v := range u.tagsAdd {
		c.Tags[k] = v
	}
	for _, k := range u.tagsRemove {
		delete(c.Tags, k)
	}
}

// jsonString decodes raw when it is a JSON string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}
