package postback

import (
	"net/http"

	"github.com/tidwall/gjson"
	"github.com/tidwall/sjson"
)

// PatchEdit is an operator's correction of a queued PATCH before it is
// replayed (docs/operations.md#dead-letters): fields set to new JSON values,
// written as the operator wrote them, and fields deleted. Every other byte
// of the PATCH stays as stored.
type PatchEdit struct {
	Set    []PatchValue
	Delete []string
}

// PatchValue is one field set by an edit; Raw is its JSON text as sent.
type PatchValue struct {
	Field string
	Raw   string
}

// patchFields are the top-level members a PATCH may hold (docs/operations.md#updating-a-call).
var patchFields = []string{"converted", "call_converted_at", "revenue_paid_out", "publisher_paid_out", "reason", "no_payout_reason", "tags"}

func isPatchField(name string) bool { return contains(patchFields, name) }

// ParsePatchEdit reads {"set": {...}, "delete": [...]}; both are optional,
// and an empty body is no edit. Any other member, a name that is not a
// field of a PATCH, or a field both set and deleted is a 400.
func ParsePatchEdit(body []byte) (PatchEdit, *Error) {
	var edit PatchEdit
	if len(gjson.ParseBytes(body).Raw) == 0 {
		return edit, nil
	}
	if err := checkJSON(bytesToString(body)); err != nil {
		return edit, err
	}
	root := gjson.ParseBytes(body)
	if !root.IsObject() {
		return edit, invalid(`the body must be a JSON object: {"set": {...}, "delete": [...]}`)
	}
	var fe fieldErrors
	seen := map[string]bool{}
	root.ForEach(func(key, value gjson.Result) bool {
		if seen[key.Str] {
			fe.add(key.Str, "given twice")
			return true
		}
		seen[key.Str] = true
		switch key.Str {
		case "set":
			if !value.IsObject() {
				fe.add("set", "must be an object of fields and their new values")
				return true
			}
			value.ForEach(func(k, v gjson.Result) bool {
				if !isPatchField(k.Str) {
					fe.add("set."+k.Str, "not a field of a PATCH")
				} else {
					edit.Set = append(edit.Set, PatchValue{Field: k.Str, Raw: v.Raw})
				}
				return true
			})
		case "delete":
			if !value.IsArray() {
				fe.add("delete", "must be an array of field names")
				return true
			}
			for _, v := range value.Array() {
				switch {
				case v.Type != gjson.String:
					fe.add("delete", "must be an array of field names")
				case !isPatchField(v.Str):
					fe.add("delete."+v.Str, "not a field of a PATCH")
				default:
					edit.Delete = append(edit.Delete, v.Str)
				}
			}
		default:
			fe.add(key.Str, `unknown member; an edit has "set" and "delete"`)
		}
		return true
	})
	for _, s := range edit.Set {
		if contains(edit.Delete, s.Field) {
			fe.add(s.Field, "both set and deleted")
		}
	}
	if err := fe.err(); err != nil {
		return PatchEdit{}, err
	}
	return edit, nil
}

// Empty reports whether the edit changes nothing.
func (e PatchEdit) Empty() bool { return len(e.Set) == 0 && len(e.Delete) == 0 }

// Fields names the fields the edit sets or deletes, in that order.
func (e PatchEdit) Fields() []string {
	out := make([]string, 0, len(e.Set)+len(e.Delete))
	for _, s := range e.Set {
		out = append(out, s.Field)
	}
	return append(out, e.Delete...)
}

// Apply edits patch in place of its values: a set field keeps its position
// if present and is appended if not; a deleted field goes with its comma.
func (e PatchEdit) Apply(patch []byte) ([]byte, error) {
	out := append([]byte(nil), patch...)
	var err error
	for _, s := range e.Set {
		if out, err = sjson.SetRawBytes(out, s.Field, []byte(s.Raw)); err != nil {
			return nil, err
		}
	}
	for _, name := range e.Delete {
		if out, err = sjson.DeleteBytes(out, name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// CheckPatch validates a PATCH body by the rules of a partner's postback
// (docs/partner-api.md#fields), and requires each value in the form the edge
// itself sends upstream, since the call store gets it as written: a 400
// naming each offending field.
func (p *Parser) CheckPatch(patch []byte) *Error {
	if err := checkJSON(bytesToString(patch)); err != nil {
		return err
	}
	root := gjson.ParseBytes(patch)
	if !root.IsObject() {
		return invalid("the PATCH must be a JSON object")
	}
	// The PATCH as a partner would have posted it: tags.add and
	// tags.remove are the partner's add and remove.
	body := []byte(`{"call_log_id":"edit"`)
	var fe fieldErrors
	root.ForEach(func(key, value gjson.Result) bool {
		switch {
		case key.Str == "tags":
			if !value.IsObject() {
				fe.add("tags", `must be an object with "add" and/or "remove"`)
				return true
			}
			value.ForEach(func(k, v gjson.Result) bool {
				if k.Str != "add" && k.Str != "remove" {
					fe.add("tags."+k.Str, `not part of tags; use "add" or "remove"`)
					return true
				}
				body = appendMember(body, k.Str, v.Raw)
				return true
			})
		case isPatchField(key.Str):
			body = appendMember(body, key.Str, value.Raw)
		default:
			fe.add(key.Str, "not a field of a PATCH")
		}
		return true
	})
	if err := fe.err(); err != nil {
		return err
	}
	req, err := p.Parse(EndpointUpdateFields, "", append(body, '}'), BodyJSON)
	if err != nil {
		if err.Status == http.StatusBadRequest && len(err.Fields) == 0 {
			err.Message = "the edited PATCH: " + err.Message
		}
		return err
	}
	// Each value as the edge would send it: e.g. "20.50" (a string) is a
	// valid amount from a partner, but the call store takes 20.50.
	normalized := gjson.ParseBytes(req.Update.AppendPatch(nil))
	root.ForEach(func(key, value gjson.Result) bool {
		want := normalized.Get(gjson.Escape(key.Str))
		if key.Str == "tags" {
			if !sameJSON(value, want) {
				fe.add("tags", "write it as the call store takes it: "+want.Raw)
			}
		} else if value.Raw != want.Raw {
			fe.add(key.Str, "write it as the call store takes it: "+want.Raw)
		}
		return true
	})
	return fe.err()
}

func appendMember(b []byte, name, raw string) []byte {
	b = append(b, ',')
	b = appendString(b, name)
	b = append(b, ':')
	return append(b, raw...)
}

// sameJSON compares two values member by member, ignoring whitespace.
func sameJSON(a, b gjson.Result) bool {
	if a.IsObject() != b.IsObject() || a.IsArray() != b.IsArray() {
		return false
	}
	switch {
	case a.IsObject():
		am, bm := a.Map(), b.Map()
		if len(am) != len(bm) {
			return false
		}
		for k, v := range am {
			if w, ok := bm[k]; !ok || !sameJSON(v, w) {
				return false
			}
		}
		return true
	case a.IsArray():
		aa, ba := a.Array(), b.Array()
		if len(aa) != len(ba) {
			return false
		}
		for i := range aa {
			if !sameJSON(aa[i], ba[i]) {
				return false
			}
		}
		return true
	}
	return a.Type == b.Type && a.Raw == b.Raw
}
