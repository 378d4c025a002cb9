package postback

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// rawKind is the shape a value arrived in.
type rawKind uint8

const (
	rawString rawKind = iota // a JSON string, or any query or form value
	rawNumber
	rawBool
	rawNull
	rawObject
	rawArray
)

// rawValue is one input value before validation, from any source.
type rawValue struct {
	kind rawKind
	// text is the string's contents, or the literal text of a number or
	// boolean.
	text string
	// json holds objects and arrays of a JSON body.
	json gjson.Result
	// query marks a value from a query string or form, where empty means
	// clear (docs/partner-api.md#fields).
	query bool
}

func jsonValue(r gjson.Result) rawValue {
	switch r.Type {
	case gjson.String:
		return rawValue{kind: rawString, text: r.Str}
	case gjson.Number:
		return rawValue{kind: rawNumber, text: r.Raw}
	case gjson.True, gjson.False:
		return rawValue{kind: rawBool, text: r.Raw}
	case gjson.Null:
		return rawValue{kind: rawNull}
	}
	if r.IsArray() {
		return rawValue{kind: rawArray, json: r}
	}
	return rawValue{kind: rawObject, json: r}
}

func queryValue(s string) rawValue { return rawValue{kind: rawString, text: s, query: true} }

// isClear reports a value that clears its field: JSON null, or an empty
// query or form value.
func (v rawValue) isClear() bool {
	return v.kind == rawNull || (v.query && v.text == "")
}

// sameAs compares two occurrences of one parameter (docs/partner-api.md#request-format, partner-api#the-fields-object):
// the text matters, not whether it was quoted.
func (v rawValue) sameAs(o rawValue) bool {
	if v.isClear() || o.isClear() {
		return v.isClear() == o.isClear()
	}
	if v.kind == rawObject || v.kind == rawArray || o.kind == rawObject || o.kind == rawArray {
		return v.kind == o.kind && v.json.Raw == o.json.Raw
	}
	return v.text == o.text
}

func (v rawValue) describe() string {
	switch v.kind {
	case rawNumber:
		return "a number"
	case rawBool:
		return "a boolean"
	case rawNull:
		return "null"
	case rawObject:
		return "an object"
	case rawArray:
		return "an array"
	}
	return "a string"
}

// parseConverted reads converted (docs/partner-api.md#fields).
func parseConverted(v rawValue) (bool, string) {
	switch v.kind {
	case rawBool:
		return v.text == "true", ""
	case rawNumber, rawString:
		switch {
		case v.text == "1", strings.EqualFold(v.text, "true"), strings.EqualFold(v.text, "yes"):
			return true, ""
		case v.text == "0", strings.EqualFold(v.text, "false"), strings.EqualFold(v.text, "no"):
			return false, ""
		}
	case rawNull:
		return false, "cannot be cleared; send true or false"
	}
	return false, "must be true or false (also 1/0, yes/no)"
}

const maxFutureSkew = 24 * time.Hour

var minTime = time.Unix(0, 0)

// parseTime reads call_converted_at: RFC 3339 with an offset, or Unix
// epoch seconds (10 digits) or milliseconds (13 digits) (docs/partner-api.md#fields).
func parseTime(v rawValue, now time.Time) (time.Time, string) {
	if v.kind != rawString && v.kind != rawNumber {
		return time.Time{}, "must be an RFC 3339 time with an offset or Unix epoch seconds or milliseconds, not " + v.describe()
	}
	s := v.text
	var t time.Time
	if allASCIIDigits(s) {
		n, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			return t, "is not a valid epoch time"
		case len(s) == 10:
			t = time.Unix(n, 0)
		case len(s) == 13:
			t = time.UnixMilli(n)
		default:
			return t, "epoch time must be 10 digits (seconds) or 13 digits (milliseconds)"
		}
	} else {
		if v.kind == rawNumber {
			return t, "epoch time must be 10 digits (seconds) or 13 digits (milliseconds)"
		}
		var err error
		t, err = time.Parse(time.RFC3339Nano, s)
		if err != nil {
			if _, errLocal := time.Parse("2006-01-02T15:04:05", strings.SplitN(s, ".", 2)[0]); errLocal == nil {
				return t, "has no time zone; add Z or an offset such as +02:00"
			}
			return t, "must be an RFC 3339 time with an offset (2026-03-27T10:00:00Z) or Unix epoch seconds or milliseconds"
		}
	}
	if t.Sub(now) > maxFutureSkew {
		return time.Time{}, "is more than 24 hours in the future"
	}
	// An offset can push year 0000 below year 1 in UTC, which RFC 3339
	// cannot write; no conversion happened before Unix time anyway.
	if t.Before(minTime) {
		return time.Time{}, "is before 1970"
	}
	return t.UTC(), ""
}

// Amount is a non-negative decimal in units of 1/10000, the finest the
// contract allows (docs/partner-api.md#fields).
type Amount int64

// maxIntegerDigits keeps an Amount inside int64.
const maxIntegerDigits = 14

// ParseAmount reads a decimal of ASCII digits with at most four decimal
// places and no sign, exponent, currency or separators.
func ParseAmount(s string) (Amount, string) {
	if s == "" {
		return 0, "must be a decimal number such as 25.50"
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if !allASCIIDigits(intPart) || intPart == "" || (hasDot && (!allASCIIDigits(frac) || frac == "")) {
		if strings.HasPrefix(s, "-") {
			return 0, "must not be negative"
		}
		return 0, "must be a decimal number of digits such as 25.50, without sign, exponent, currency or separators"
	}
	if len(frac) > 4 {
		return 0, "has more than 4 decimal places"
	}
	if len(intPart) > 1 && intPart[0] == '0' {
		return 0, "must not have leading zeros"
	}
	if len(intPart) > maxIntegerDigits {
		return 0, "is too large"
	}
	var a int64
	for i := 0; i < len(intPart); i++ {
		a = a*10 + int64(intPart[i]-'0')
	}
	for i := 0; i < 4; i++ {
		a *= 10
		if i < len(frac) {
			a += int64(frac[i] - '0')
		}
	}
	return Amount(a), ""
}

// String formats the amount with no trailing zeros.
func (a Amount) String() string {
	s := strconv.FormatInt(int64(a)/10000, 10)
	frac := int64(a) % 10000
	if frac == 0 {
		return s
	}
	f := strconv.FormatInt(frac+10000, 10)[1:]
	return s + "." + strings.TrimRight(f, "0")
}

// parseMoney reads revenue_paid_out or publisher_paid_out.
func parseMoney(v rawValue, max Amount) (string, string) {
	if v.kind != rawString && v.kind != rawNumber {
		return "", "must be a decimal number such as 25.50, not " + v.describe()
	}
	a, msg := ParseAmount(v.text)
	if msg != "" {
		return "", msg
	}
	if a > max {
		return "", "must be at most " + max.String()
	}
	return v.text, ""
}

const maxTextLen = 255

// checkText applies the rules every free-text value shares.
func checkText(s string) string {
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if utf8.RuneCountInString(s) > maxTextLen {
		return "is longer than 255 characters"
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "must not contain control characters"
		}
	}
	return ""
}

// parseReason reads reason (or its alias disposition).
func parseReason(v rawValue) (string, string) {
	if v.kind != rawString {
		return "", "must be a string, not " + v.describe()
	}
	return v.text, checkText(v.text)
}

var noPayoutReasons = [...]string{"Campaign preconversion", "Condition not met", "Caps exceeded"}

// parseNoPayoutReason normalizes a payout hold reason to its spelling.
func parseNoPayoutReason(v rawValue) (string, string) {
	if v.kind == rawString {
		for _, r := range noPayoutReasons {
			if equalFoldSnake(v.text, r) {
				return r, ""
			}
		}
	}
	return "", `must be one of "Campaign preconversion", "Condition not met", "Caps exceeded" (or snake_case), or null to clear`
}

// equalFoldSnake compares s to the canonical reason, ignoring case and
// allowing underscores for spaces.
func equalFoldSnake(s, canonical string) bool {
	if len(s) != len(canonical) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c, w := s[i], canonical[i]
		if w == ' ' {
			if c != ' ' && c != '_' {
				return false
			}
			continue
		}
		if c|0x20 != w|0x20 {
			return false
		}
	}
	return true
}

const maxCallLogIDLen = 128

// checkCallLogID applies docs/partner-api.md#identifying-calls: 1 to 128 printable characters, no
// whitespace.
func checkCallLogID(id string) string {
	if id == "" {
		return "must not be empty"
	}
	if !utf8.ValidString(id) {
		return "is not valid UTF-8"
	}
	if utf8.RuneCountInString(id) > maxCallLogIDLen {
		return "is longer than 128 characters"
	}
	for _, r := range id {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return "must be printable characters without whitespace"
		}
	}
	return ""
}

const maxTagKeyLen = 64

// checkTagKey applies docs/partner-api.md#fields: 1 to 64 of A-Z a-z 0-9 _ - . :
func checkTagKey(k string) string {
	if k == "" || len(k) > maxTagKeyLen {
		return "tag keys must be 1 to 64 characters"
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == ':') {
			return "tag key " + strconv.Quote(k) + " may only hold A-Z a-z 0-9 _ - . :"
		}
	}
	return ""
}

func allASCIIDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
