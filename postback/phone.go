package postback

import "strings"

// NormalizePhone turns a phone number into E.164 (docs/partner-api.md#identifying-calls): a leading
// "+" or "00" marks an international number; any other is national and
// gets defaultCountryCode, after dropping one trunk "0". Spaces, dashes,
// dots and parentheses are separators, and an international number's
// "(0)" trunk prefix is dropped. With country code 1, an 11-digit
// national number that starts with 1 already holds it (the NANP habit).
// The result has 7 to 15 digits.
func NormalizePhone(s, defaultCountryCode string) (string, string) {
	if len(s) > 64 {
		return "", "is too long for a phone number"
	}
	// "+44 (0)20 …": the (0) is the national trunk prefix, not dialled
	// from abroad.
	if strings.HasPrefix(strings.TrimSpace(s), "+") {
		s = strings.Replace(s, "(0)", "", 1)
	}
	var digits [64]byte
	n := 0
	international := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits[n] = c
			n++
		case c == '+' && n == 0 && !international:
			international = true
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", "must hold only ASCII digits, an optional leading +, and spaces, dashes, dots or parentheses"
		}
	}
	d := string(digits[:n])
	switch {
	case international:
	case len(d) > 2 && d[:2] == "00":
		d = d[2:]
	case defaultCountryCode == "":
		return "", "must be an international number starting with + (no default country code is configured)"
	case defaultCountryCode == "1" && len(d) == 11 && d[0] == '1':
	default:
		if len(d) > 0 && d[0] == '0' {
			d = d[1:]
		}
		d = defaultCountryCode + d
	}
	if len(d) < 7 || len(d) > 15 {
		return "", "must have 7 to 15 digits in E.164 form"
	}
	if d[0] == '0' {
		return "", "country code must not start with 0"
	}
	return "+" + d, ""
}
