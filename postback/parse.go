package postback

import (
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// BodyKind is how a request body is read (docs/partner-api.md#request-format).
type BodyKind uint8

const (
	BodyNone BodyKind = iota
	BodyJSON
	BodyForm
)

// Parser turns a postback's query string and body into a Request, with
// the same rules whichever source a value came from (docs/partner-api.md#request-format, partner-api#fields).
type Parser struct {
	// AuthParam is the query parameter that carries the auth key; it is
	// never reported as ignored.
	AuthParam string
	// MaxBatch is the most ids one call_log_id array may hold.
	MaxBatch int
	// MaxAmount bounds revenue_paid_out and publisher_paid_out.
	MaxAmount Amount
	// MaxTags bounds the tags added, and those removed, by one request.
	MaxTags int
	// Strict refuses unknown parameters instead of listing them as ignored.
	Strict bool
	// DefaultCountryCode is prefixed to national phone numbers; empty
	// refuses them.
	DefaultCountryCode string
	// Now is the clock for the future bound of call_converted_at.
	Now func() time.Time
}

// Defaults of docs/partner-api.md#batches, #limits and #fields.
const (
	DefaultAuthParam = "moja_auth_key"
	DefaultMaxBatch  = 50
	DefaultMaxTags   = 50
)

// DefaultMaxAmount is 1000000 (docs/partner-api.md#fields).
const DefaultMaxAmount = Amount(1000000 * 10000)

// Request is a validated postback.
type Request struct {
	// CallLogIDs are the calls to update, without duplicates, in the order
	// given. Empty when the call is named by PhoneNumber.
	CallLogIDs []string
	// PhoneNumber, in E.164, names the most recent call of that number.
	PhoneNumber string
	// Batch is set when call_log_id came as an array.
	Batch   bool
	Update  Update
	Ignored []string
	// IdempotencyKey is the idempotency_key parameter, when given
	// (docs/partner-api.md#safe-retries); IdempotencyKeyOf weighs it against the header.
	IdempotencyKey string
	// DryRun asks what the postback would do, writing nothing (docs/partner-api.md#dry-run).
	DryRun bool

	// one backs CallLogIDs for a single id, saving an allocation.
	one [1]string
}

// Parse reads and validates one postback for endpoint ep. query is the
// raw query string; body is read as kind. Every validation failure is
// reported at once in the returned Error (docs/partner-api.md#errors).
func (p *Parser) Parse(ep Endpoint, query string, body []byte, kind BodyKind) (*Request, *Error) {
	var in input
	if err := p.read(&in, query, body, kind); err != nil {
		return nil, err
	}
	return p.validate(ep, &in)
}

func (p *Parser) read(in *input, query string, body []byte, kind BodyKind) *Error {
	if query != "" {
		if err := p.readQuery(in, query, "query string"); err != nil {
			return err
		}
	}
	switch kind {
	case BodyJSON:
		s := bytesToString(body)
		// Only JSON's own whitespace makes an empty body (RFC 8259 partner-api#endpoints).
		if strings.Trim(s, " \t\n\r") == "" {
			return nil
		}
		if err := checkJSON(s); err != nil {
			return err
		}
		return p.readJSON(in, s)
	case BodyForm:
		s := bytesToString(body)
		// curl -d sends JSON as a form unless told otherwise.
		if t := strings.TrimSpace(s); strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			return invalid("the body is JSON but Content-Type says application/x-www-form-urlencoded; send Content-Type: application/json")
		}
		return p.readQuery(in, s, "form")
	}
	return nil
}

// ParseCompleted reads the call ids of a call-completed notification
// (docs/operations.md#completion-and-dead-letters): call_log_id as a string or an array, from any source.
func (p *Parser) ParseCompleted(query string, body []byte, kind BodyKind) ([]string, *Error) {
	ids, _, err := p.ParseCompletedDryRun(query, body, kind)
	return ids, err
}

// ParseCompletedDryRun is ParseCompleted that also reports whether the
// notification asked for a dry run (docs/partner-api.md#dry-run).
func (p *Parser) ParseCompletedDryRun(query string, body []byte, kind BodyKind) ([]string, bool, *Error) {
	var in input
	if err := p.read(&in, query, body, kind); err != nil {
		return nil, false, err
	}
	ids := p.validateIDs(&in, nil)
	if !in.idErrs && in.idsFrom == "" {
		in.errs.add("call_log_id", "is required")
	}
	dryRun := validateDryRun(&in)
	if err := in.errs.err(); err != nil {
		return nil, false, err
	}
	return ids, dryRun, nil
}

func (p *Parser) validate(ep Endpoint, in *input) (*Request, *Error) {
	req := &Request{Ignored: in.ignored}
	req.CallLogIDs = p.validateIDs(in, req)
	req.Batch = in.idsArray
	switch {
	case in.idsFrom != "" && in.idsArray && in.hasPhone:
		in.errs.add("phone_number", "cannot be combined with an array of call_log_id; send one or the other")
	case in.idsFrom != "" || in.idErrs:
		// A single call_log_id wins over phone_number (docs/partner-api.md#identifying-calls).
	case in.hasPhone:
		if in.phone.kind != rawString {
			in.errs.add("phone_number", "must be a string, not "+in.phone.describe())
		} else if phone, msg := NormalizePhone(in.phone.text, p.DefaultCountryCode); msg != "" {
			in.errs.add("phone_number", msg)
		} else {
			req.PhoneNumber = phone
		}
	default:
		in.errs.add("call_log_id", "call_log_id or phone_number is required")
	}

	p.validateFields(ep, in, &req.Update)
	req.IdempotencyKey = validateIdempotencyKey(in)
	req.DryRun = validateDryRun(in)

	if p.Strict {
		for _, name := range in.ignored {
			in.errs.add(name, "is not a known parameter (strict mode)")
		}
		req.Ignored = nil
	}
	if err := in.errs.err(); err != nil {
		return nil, err
	}
	return req, nil
}

// validateIDs checks and de-duplicates call_log_id (docs/partner-api.md#identifying-calls, partner-api#batches). A
// single id is kept in req, when given, rather than in a new slice.
func (p *Parser) validateIDs(in *input, req *Request) []string {
	if in.idsFrom == "" {
		return nil
	}
	if !in.idsArray {
		if msg := checkCallLogID(in.id); msg != "" {
			in.errs.add("call_log_id", msg)
			return nil
		}
		if req == nil {
			return []string{in.id}
		}
		req.one[0] = in.id
		return req.one[:1]
	}
	switch {
	case len(in.ids) == 0:
		in.errs.add("call_log_id", "the array is empty")
		return nil
	case len(in.ids) > p.MaxBatch:
		in.errs.add("call_log_id", "holds "+strconv.Itoa(len(in.ids))+" ids; at most "+strconv.Itoa(p.MaxBatch)+" per request")
		return nil
	}
	// In place: the kept ids never outrun the ones read.
	ids := in.ids[:0]
	var seen map[string]struct{}
	if len(in.ids) > 64 {
		seen = make(map[string]struct{}, len(in.ids))
	}
	for i, id := range in.ids {
		if msg := checkCallLogID(id); msg != "" {
			in.errs.add("call_log_id", "element "+strconv.Itoa(i)+" "+msg)
			continue
		}
		if seen != nil {
			if _, dup := seen[id]; dup {
				continue
			}
			seen[id] = struct{}{}
		} else if contains(ids, id) {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

func (p *Parser) validateFields(ep Endpoint, in *input, u *Update) {
	accepted := ep.accepts()
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	// Tags of a query or form arrive apart from the JSON values.
	present := in.set
	if len(in.queryAdd) > 0 {
		present |= fieldSet(1) << fieldAdd
		in.names[fieldAdd] = "add"
	}
	if len(in.queryRemove) > 0 {
		present |= fieldSet(1) << fieldRemove
		in.names[fieldRemove] = "remove"
	}
	for f := field(0); f < numFields; f++ {
		if !present.has(f) {
			continue
		}
		name := in.names[f]
		if !accepted.has(f) {
			in.errs.add(name, "is not accepted by "+ep.Segment()+"; send it to "+endpointsAccepting(f))
			continue
		}
		v := in.values[f]
		var msg string
		if v.isClear() && f != fieldAdd && f != fieldRemove {
			switch f {
			case fieldConvertedAt, fieldReason, fieldNoPayoutReason:
				u.Set |= fieldSet(1) << f
				u.Cleared |= fieldSet(1) << f
			default:
				in.errs.add(name, "cannot be cleared")
			}
			continue
		}
		switch f {
		case fieldConverted:
			u.Converted, msg = parseConverted(v)
		case fieldConvertedAt:
			u.ConvertedAt, msg = parseTime(v, now())
		case fieldRevenue:
			u.Revenue, msg = parseMoney(v, p.MaxAmount)
		case fieldPublisher:
			u.Publisher, msg = parseMoney(v, p.MaxAmount)
		case fieldReason:
			u.Reason, msg = parseReason(v)
		case fieldNoPayoutReason:
			u.NoPayoutReason, msg = parseNoPayoutReason(v)
		case fieldAdd:
			p.validateAdd(in, u)
			continue
		case fieldRemove:
			p.validateRemove(in, u)
			continue
		}
		if msg != "" {
			in.errs.add(name, msg)
			continue
		}
		u.Set |= fieldSet(1) << f
	}
	for _, k := range u.TagsRemove {
		for _, t := range u.TagsAdd {
			if t.Key == k {
				in.errs.add("remove", "tag "+strconv.Quote(k)+" is both added and removed")
			}
		}
	}
	if len(in.errs) > 0 {
		return
	}
	switch {
	case ep == EndpointUpdateRevenue && !u.Set.has(fieldRevenue):
		in.errs.add("revenue_paid_out", "is required by update-revenue")
	case ep == EndpointUpdateTags && u.Set&(fieldSet(1)<<fieldAdd|fieldSet(1)<<fieldRemove) == 0:
		in.errs.add("add", "add or remove is required by update-tags")
	case u.Set == 0:
		in.errs.add("fields", "nothing to update; send at least one of converted, call_converted_at, revenue_paid_out, publisher_paid_out, reason (or disposition), no_payout_reason, add, remove")
	}
}

// endpointsAccepting names the endpoints that take f (docs/partner-api.md#unknown-parameters).
func endpointsAccepting(f field) string {
	switch f {
	case fieldRevenue:
		return "update-revenue or update-fields"
	case fieldAdd, fieldRemove:
		return "update-tags or update-fields"
	}
	return "update-fields"
}

func (p *Parser) validateAdd(in *input, u *Update) {
	name := in.names[fieldAdd]
	addTag := func(key string, v rawValue) {
		if msg := checkTagKey(key); msg != "" {
			in.errs.add(name, msg)
			return
		}
		switch v.kind {
		case rawString, rawNumber, rawBool:
		case rawNull:
			in.errs.add(name, "tag "+strconv.Quote(key)+" has no value; use remove to delete a tag")
			return
		default:
			in.errs.add(name, "tag "+strconv.Quote(key)+" has a nested value; values are strings")
			return
		}
		if msg := checkText(v.text); msg != "" {
			in.errs.add(name, "tag "+strconv.Quote(key)+" value "+msg)
			return
		}
		for _, t := range u.TagsAdd {
			if t.Key == key {
				if t.Value != v.text {
					in.errs.add(name, "tag "+strconv.Quote(key)+" is given twice with different values")
				}
				return
			}
		}
		u.TagsAdd = append(u.TagsAdd, Tag{Key: key, Value: v.text})
	}
	fromObject := func(obj gjson.Result) {
		obj.ForEach(func(k, v gjson.Result) bool {
			addTag(k.Str, jsonValue(v))
			return true
		})
	}
	// add and remove reach in.values only from a JSON body.
	if in.set.has(fieldAdd) {
		switch v := in.values[fieldAdd]; v.kind {
		case rawObject:
			fromObject(v.json)
		case rawArray:
			v.json.ForEach(func(_, el gjson.Result) bool {
				if !el.IsObject() {
					in.errs.add(name, "must be a tag object or an array of tag objects")
					return false
				}
				fromObject(el)
				return true
			})
		default:
			in.errs.add(name, "must be a tag object or an array of tag objects, not "+v.describe())
		}
	}
	for _, t := range in.queryAdd {
		addTag(t.Key, queryValue(t.Value))
	}
	if len(u.TagsAdd) > p.MaxTags {
		in.errs.add(name, "adds "+strconv.Itoa(len(u.TagsAdd))+" tags; at most "+strconv.Itoa(p.MaxTags)+" per request")
	}
	if len(u.TagsAdd) > 0 {
		u.Set |= fieldSet(1) << fieldAdd
	}
}

func (p *Parser) validateRemove(in *input, u *Update) {
	name := in.names[fieldRemove]
	removeTag := func(key string) {
		if msg := checkTagKey(key); msg != "" {
			in.errs.add(name, msg)
			return
		}
		if !contains(u.TagsRemove, key) {
			u.TagsRemove = append(u.TagsRemove, key)
		}
	}
	if in.set.has(fieldRemove) {
		switch v := in.values[fieldRemove]; v.kind {
		case rawString:
			removeTag(v.text)
		case rawArray:
			v.json.ForEach(func(_, el gjson.Result) bool {
				if el.Type != gjson.String {
					in.errs.add(name, "must be a tag key or an array of tag keys")
					return false
				}
				removeTag(el.Str)
				return true
			})
		default:
			in.errs.add(name, "must be a tag key or an array of tag keys, not "+v.describe())
		}
	}
	for _, k := range in.queryRemove {
		removeTag(k)
	}
	if len(u.TagsRemove) > p.MaxTags {
		in.errs.add(name, "removes "+strconv.Itoa(len(u.TagsRemove))+" tags; at most "+strconv.Itoa(p.MaxTags)+" per request")
	}
	if len(u.TagsRemove) > 0 {
		u.Set |= fieldSet(1) << fieldRemove
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
