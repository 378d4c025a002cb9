package refstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"time"
	"unicode"
)

// seedFile is the layout of a seed file: {"calls": [{...}, ...]}.
type seedFile struct {
	Calls []json.RawMessage `json:"calls"`
}

// LoadFile reads the calls of a seed file such as testdata/calls.json:
// {"calls": [call, ...]}, each call in the JSON form of Call. Every call
// needs a call_log_id, and ids must be unique; a call without started_at
// gets the zero time, so it sorts oldest.
func LoadFile(path string) ([]Call, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f seedFile
	dec := json.NewDecoder(bytes.NewReader(data))
	// A misspelt top-level key would otherwise load an empty store quietly.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	calls := make([]Call, 0, len(f.Calls))
	seen := make(map[string]bool, len(f.Calls))
	for i, raw := range f.Calls {
		c, err := decodeCall(raw)
		if err == nil && c.CallLogID == "" {
			err = fmt.Errorf("call_log_id: is required in a seed file")
		}
		if err == nil && seen[c.CallLogID] {
			err = fmt.Errorf("call_log_id: %q appears more than once", c.CallLogID)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: calls[%d]: %w", path, i, err)
		}
		seen[c.CallLogID] = true
		calls = append(calls, c)
	}
	return calls, nil
}

// decodeCall reads one call in its JSON form, from a seed file or the body
// of POST /v1/calls. call_log_id may be absent; state defaults to live. The
// fields take the values a PATCH takes, and a clearable one given as null
// is simply not set.
func decodeCall(body []byte) (Call, error) {
	var c Call
	m, err := decodeObject(body)
	if err != nil {
		return c, err
	}
	p := problems{}
	var u update
	for key, raw := range m {
		switch key {
		case "call_log_id":
			s, ok := jsonString(raw)
			if !ok || !validID(s) {
				p.add(key, "must be a non-empty string without control characters")
				continue
			}
			c.CallLogID = s
		case "account":
			s, ok := jsonString(raw)
			if !ok {
				p.add(key, "must be a string")
				continue
			}
			c.Account = s
		case "phone_number":
			s, ok := jsonString(raw)
			if ok {
				s, ok = normalizePhone(s)
			}
			if !ok {
				p.add(key, "must be an E.164 number such as +15551234567")
				continue
			}
			c.PhoneNumber = s
		case "state":
			s, _ := jsonString(raw)
			if s != StateLive && s != StateCompleted {
				p.add(key, "must be %q or %q", StateLive, StateCompleted)
				continue
			}
			c.State = s
		case "started_at":
			s, _ := jsonString(raw)
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				p.add(key, "must be an RFC 3339 time with an offset")
				continue
			}
			c.StartedAt = t
		case "tags":
			// A call's tags are a flat object, not the add/remove of a PATCH.
			var raws map[string]json.RawMessage
			if err := json.Unmarshal(raw, &raws); err != nil {
				p.add(key, "must be an object of string values")
				continue
			}
			c.Tags = make(map[string]string, len(raws))
			for k, v := range raws {
				s, ok := jsonString(v)
				if !ok || k == "" {
					p.add("tags."+k, "must be a string under a non-empty key")
					continue
				}
				c.Tags[k] = s
			}
		default:
			if !u.parseField(key, raw, p) {
				p.add(key, "unknown field")
			}
		}
	}
	if len(p) > 0 {
		return c, fmt.Errorf("%s", p.message())
	}
	u.apply(&c)
	if c.State == "" {
		c.State = StateLive
	}
	return c, nil
}

// validID accepts any id the URL space can carry, including "/", "%", "?",
// spaces and "..": the edge is the one that restricts ids (docs/partner-api.md#identifying-calls), and
// the store must look up whatever reaches it exactly.
func validID(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}
