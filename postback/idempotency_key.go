package postback

import "strings"

// Names of the idempotency key (docs/partner-api.md#safe-retries).
const (
	HeaderIdempotencyKey     = "Idempotency-Key"
	HeaderIdempotentReplayed = "Idempotent-Replayed"
	paramIdempotencyKeyName  = "idempotency_key"
	maxIdempotencyKeyLen     = 255
)

// validateIdempotencyKey checks the idempotency_key parameter, if any, with
// the other fields, and returns it.
func validateIdempotencyKey(in *input) string {
	if !in.hasIdemKey {
		return ""
	}
	if in.idemKey.kind != rawString {
		in.errs.add(paramIdempotencyKeyName, "must be a string, not "+in.idemKey.describe())
		return ""
	}
	if msg := checkIdempotencyKey(in.idemKey.text); msg != "" {
		in.errs.add(paramIdempotencyKeyName, msg)
		return ""
	}
	return in.idemKey.text
}

// checkIdempotencyKey applies docs/partner-api.md#safe-retries: 1 to 255 printable ASCII characters.
func checkIdempotencyKey(k string) string {
	if k == "" || len(k) > maxIdempotencyKeyLen {
		return "must be 1 to 255 printable ASCII characters"
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return "must be 1 to 255 printable ASCII characters"
		}
	}
	return ""
}

// IdempotencyKeyOf returns the idempotency key of a request: the
// Idempotency-Key header (its values, as received), else the idempotency_key
// parameter of req, else fallback (a key the authentication step vouches
// for, such as a signed request's webhook-id). "" means no key. A header
// and a parameter that disagree, or a bad header, are a 400 naming it.
func IdempotencyKeyOf(header []string, req *Request, fallback string) (string, *Error) {
	var key string
	for i, h := range header {
		k, msg := unquoteIdempotencyKey(strings.TrimSpace(h))
		if msg != "" {
			return "", headerError(msg)
		}
		if i > 0 && k != key {
			return "", headerError("is given twice with different values")
		}
		key = k
	}
	switch {
	case key != "" && req.IdempotencyKey != "" && key != req.IdempotencyKey:
		e := invalid("invalid field " + paramIdempotencyKeyName + ": differs from the " + HeaderIdempotencyKey + " header; send the key once, or the same in both")
		e.Fields = []FieldError{{Field: paramIdempotencyKeyName, Message: "differs from the " + HeaderIdempotencyKey + " header; send the key once, or the same in both"}}
		return "", e
	case key != "":
		return key, nil
	case req.IdempotencyKey != "":
		return req.IdempotencyKey, nil
	}
	return fallback, nil
}

func headerError(msg string) *Error {
	e := invalid("invalid header " + HeaderIdempotencyKey + ": " + msg)
	e.Fields = []FieldError{{Field: HeaderIdempotencyKey, Message: msg}}
	return e
}

// unquoteIdempotencyKey reads a header value bare or as the draft writes
// it, a quoted string ("abc", with \" and \\ escapes): both are one key.
func unquoteIdempotencyKey(v string) (string, string) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		inner := v[1 : len(v)-1]
		if strings.IndexByte(inner, '\\') >= 0 || strings.IndexByte(inner, '"') >= 0 {
			var b strings.Builder
			for i := 0; i < len(inner); i++ {
				c := inner[i]
				switch {
				case c == '\\' && i+1 < len(inner) && (inner[i+1] == '"' || inner[i+1] == '\\'):
					i++
					b.WriteByte(inner[i])
				case c == '\\' || c == '"':
					return "", "is a quoted string with a stray \\ or \""
				default:
					b.WriteByte(c)
				}
			}
			inner = b.String()
		}
		v = inner
	}
	if msg := checkIdempotencyKey(v); msg != "" {
		return "", msg
	}
	return v, ""
}
