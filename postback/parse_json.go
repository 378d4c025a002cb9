package postback

import (
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/tidwall/gjson"
)

// maxDepth bounds JSON nesting (docs/partner-api.md#limits); the root object is level 1.
const maxDepth = 8

// checkJSON rejects what gjson would accept but the contract does not:
// invalid UTF-8, nesting deeper than maxDepth (docs/partner-api.md#limits), and a body that
// is not an object (docs/partner-api.md#request-format). readJSON finds keys given twice, in the
// same pass that reads them.
func checkJSON(body string) *Error {
	// UTF-8 and depth in one flat scan, so that deep input never reaches
	// a recursive parser.
	depth, inString, escaped := 0, false, false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(body[i:])
			if r == utf8.RuneError && size == 1 {
				return invalid("body is not valid UTF-8")
			}
			i += size - 1
			escaped = false
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
	if !gjson.Parse(body).IsObject() {
		return invalid("body must be a JSON object")
	}
	return nil
}

func duplicateError(key string) *Error {
	return invalid("JSON key " + strconv.Quote(key) + " is given twice in one object")
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
	var keys keySet
	v.ForEach(func(k, el gjson.Result) bool {
		if keys.seen(k.Str) {
			key, found = k.Str, true
			return false
		}
		if el.IsObject() || el.IsArray() {
			key, found = duplicateKey(el)
		}
		return !found
	})
	return key, found
}

// keySet remembers the keys of one object. Postback objects are small: a
// linear scan beats a map until they are not.
type keySet struct {
	small [16]string
	n     int
	big   map[string]struct{}
}

// seen reports whether name was added before, and adds it.
func (s *keySet) seen(name string) bool {
	if s.big != nil {
		if _, ok := s.big[name]; ok {
			return true
		}
		s.big[name] = struct{}{}
		return false
	}
	for _, k := range s.small[:s.n] {
		if k == name {
			return true
		}
	}
	if s.n < len(s.small) {
		s.small[s.n] = name
		s.n++
		return false
	}
	s.big = make(map[string]struct{}, 64)
	for _, k := range s.small {
		s.big[k] = struct{}{}
	}
	s.big[name] = struct{}{}
	return false
}

// readJSON fills in from a JSON object body that checkJSON accepted, and
// refuses a key given twice in any object (docs/partner-api.md#limits): at the top level as
// it reads, below it by duplicateKey.
func (p *Parser) readJSON(in *input, body string) *Error {
	var keys keySet
	var dup *Error
	gjson.Parse(body).ForEach(func(k, v gjson.Result) bool {
		name := k.Str
		if keys.seen(name) {
			dup = duplicateError(name)
			return false
		}
		if v.IsObject() || v.IsArray() {
			if key, found := duplicateKey(v); found {
				dup = duplicateError(key)
				return false
			}
		}
		kind, f := classify(name, p.AuthParam)
		switch kind {
		case paramCallLogID:
			p.readJSONIDs(in, v)
		case paramPhone:
			in.setPhone(jsonValue(v), "body")
		case paramAuth:
		case paramIdempotencyKey:
			in.setIdempotencyKey(jsonValue(v), "body")
		case paramDryRun:
			in.setDryRun(jsonValue(v), "body")
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
	return dup
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
