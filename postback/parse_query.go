package postback

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxParams bounds the parameters of one query string or form: a full
// postback needs about a hundred (50 tags added, 50 removed, the fields).
const maxParams = 256

// readQuery fills in from a query string or an x-www-form-urlencoded body
// (docs/partner-api.md#request-format): name=value pairs, fields[name]=value nesting (partner-api#the-fields-object),
// add[key]=value and remove=key tags (partner-api#fields).
func (p *Parser) readQuery(in *input, raw, from string) *Error {
	var firstID string
	ids, count := 0, 0
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" {
			continue
		}
		if count++; count > maxParams {
			return invalid("the " + from + " has more than " + strconv.Itoa(maxParams) + " parameters")
		}
		rawName, rawValue, _ := strings.Cut(pair, "=")
		name, err1 := url.QueryUnescape(rawName)
		value, err2 := url.QueryUnescape(rawValue)
		if err1 != nil || err2 != nil {
			return invalid("the " + from + " has invalid percent-encoding")
		}
		// Names are echoed back under "ignored" and in errors: only text.
		if !utf8.ValidString(name) || !utf8.ValidString(value) {
			return invalid("the " + from + " is not valid UTF-8")
		}
		switch name {
		case "call_log_id", "call_log_id[]":
			if ids++; ids == 1 {
				firstID = value
			}
			continue
		case "phone_number":
			in.setPhone(queryValue(value), from)
			continue
		case p.AuthParam:
			continue
		case paramIdempotencyKeyName:
			in.setIdempotencyKey(queryValue(value), from)
			continue
		case "dry_run":
			in.setDryRun(queryValue(value), from)
			continue
		case "add", "fields[add]":
			in.errs.add("add", "send tags as add[key]=value")
			continue
		case "remove", "remove[]", "fields[remove]", "fields[remove][]":
			in.queryRemove = append(in.queryRemove, splitRemove(value)...)
			continue
		case "fields":
			in.errs.add("fields", "send nested fields as fields[name]=value")
			continue
		}
		if key, ok := tagParam(name); ok {
			in.queryAdd = append(in.queryAdd, Tag{Key: key, Value: value})
			continue
		}
		if rest, nested := strings.CutPrefix(name, "fields["); nested {
			fieldName, ok := strings.CutSuffix(rest, "]")
			kind, f := classify(fieldName, p.AuthParam)
			switch {
			case !ok || strings.ContainsAny(fieldName, "[]"):
				in.ignore(name)
			case kind == paramField:
				in.setField(f, fieldName, queryValue(value), "fields[] of the "+from)
			case kind == paramCallLogID || kind == paramPhone:
				in.errs.add(name, "identifiers belong at the top level, not inside fields")
			default:
				in.ignore(name)
			}
			continue
		}
		if kind, f := classify(name, p.AuthParam); kind == paramField {
			in.setField(f, name, queryValue(value), from)
			continue
		}
		in.ignore(name)
	}
	switch {
	case ids > 1:
		in.errs.add("call_log_id", "several ids need a JSON POST body with call_log_id as an array; a "+from+" carries one id")
		in.idErrs = true
	case ids == 1:
		in.setID(firstID, from)
	}
	return nil
}

// tagParam returns key from add[key] or fields[add][key]. The key itself
// may hold brackets; it is checked later.
func tagParam(name string) (string, bool) {
	for _, prefix := range [...]string{"add[", "fields[add]["} {
		if inner, ok := strings.CutPrefix(name, prefix); ok {
			return strings.CutSuffix(inner, "]")
		}
	}
	return "", false
}
