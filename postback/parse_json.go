package postback

import (
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxDepth bounds JSON nesting (SPEC §4.6); the root object is level 1.
const maxDepth = 8

// checkJSON rejects what gjson would accept but the contract does not:
// invalid UTF-8, nesting deeper than maxDepth, a key given twice in any
// object (SPEC §4.6), and a body that is not an object (SPEC §4.1).
func checkJSON(body string) *Error {
	if !utf8.ValidString(body) {
		return invalid("body is not valid UTF-8")
	}
	// Depth first, with a flat scan, so that deep input never reaches a
	// recursive parser.
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxDepth {
				return invalid("JSON nesting is deeper than " + strconv.Itoa(maxDepth) + " levels")
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	if !gjson.Valid(body) {
		return invalid("body is not valid JSON")
	}
	root := gjson.Parse(body)
	if !root.IsObject() {
		return invalid("body must be a JSON object")
	}
	if dup, found := duplicateKey(root); found {
		return invalid("JSON key " + strconv.Quote(dup) + " is given twice in one object")
	}
	return nil
}

// duplicateKey reports the first key found twice in one object of v, at
// any depth. The key may be "", so found says whether there is one.
func duplicateKey(v gjson.Result) (key string, found bool) {
	if v.IsArray() {
		v.ForEach(func(_, el gjson.Result) bool {
			key, found = duplicateKey(el)
			return !found
		})
		return key, found
	}
	if !v.IsObject() {
		return "", false
	}
	// Postback objects are small: a linear scan beats a map until they are not.
	var small [16]string
	seen := small[:0]
	var big map[string]struct{}
	v.ForEach(func(k, el gjson.Result) bool {
		name := k.Str
		if big != nil {
			if _, ok := big[name]; ok {
				key, found = name, true
				return false
			}
			big[name] = struct{}{}
		} else {
			for _, s := range seen {
				if s == name {
					key, found = name, true
					return false
				}
			}
			if seen = append(seen, name); len(seen) == len(small) {
				big = make(map[string]struct{}, 64)
				for _, s := range seen {
					big[s] = struct{}{}
				}
			}
		}
		if el.IsObject() || el.IsArray() {
			key, found = duplicateKey(el)
		}
		return !found
	})
	return key, found
}

// readJSON fills in from a JSON object body that checkJSON accepted.
func (p *Parser) readJSON(in *input, body string) {
	gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
		name := k.Str
		kind, f := classify(name, p.AuthParam)
		switch kind {
		case paramCallLogID:
			p.readJSONIDs(in, v)
		case paramPhone:
			in.setPhone(jsonValue(v), "body")
		case paramAuth:
		case paramFields:
			if !v.IsObject() {
				in.errs.add("fields", "must be an object of fields")
				return true
			}
			v.ForEach(func(k, v gjson.Result) bool {
				name := k.Str
				switch kind, f := classify(name, p.AuthParam); kind {
				case paramField:
					in.setField(f, name, jsonValue(v), "fields")
				case paramCallLogID, paramPhone:
					in.errs.add("fields."+name, "identifiers belong at the top level, not inside fields")
				default:
					in.ignore("fields." + name)
				}
				return true
			})
		case paramField:
			in.setField(f, name, jsonValue(v), "body")
		default:
			in.ignore(name)
		}
		return true
	})
}

func (p *Parser) readJSONIDs(in *input, v gjson.Result) {
	switch {
	case v.Type == gjson.String:
		in.setID(v.Str, "body")
	case v.IsArray():
		n := 0
		v.ForEach(func(_, _ gjson.Result) bool { n++; return true })
		ids := make([]string, 0, n)
		ok := true
		v.ForEach(func(_, el gjson.Result) bool {
			if el.Type != gjson.String {
				in.errs.add("call_log_id", "every element of the array must be a string")
				ok = false
				return false
			}
			ids = append(ids, el.Str)
			return true
		})
		if ok {
			in.setIDList(ids, "body")
		} else {
			in.idErrs = true
		}
	default:
		in.errs.add("call_log_id", "must be a string or an array of strings")
		in.idErrs = true
	}
}

// bytesToString views b as a string without copying; b must not change
// afterwards. Parsed values point into it, so a body is read once and kept.
func bytesToString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}
