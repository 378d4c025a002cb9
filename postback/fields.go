package postback

import "time"

// field is one updatable field of docs/partner-api.md#fields.
type field uint8

const (
	fieldConverted field = iota
	fieldConvertedAt
	fieldRevenue
	fieldPublisher
	fieldReason
	fieldNoPayoutReason
	fieldAdd
	fieldRemove
	numFields
)

var fieldNames = [numFields]string{
	"converted", "call_converted_at", "revenue_paid_out", "publisher_paid_out",
	"reason", "no_payout_reason", "add", "remove",
}

func (f field) String() string { return fieldNames[f] }

type fieldSet uint16

const allFields = fieldSet(1)<<numFields - 1

func (s fieldSet) has(f field) bool { return s&(fieldSet(1)<<f) != 0 }

// aliasDisposition is another name of reason (docs/partner-api.md#fields).
const aliasDisposition = "disposition"

// lookupField maps a parameter name to its field; disposition is reason.
func lookupField(name string) (field, bool) {
	switch name {
	case "converted":
		return fieldConverted, true
	case "call_converted_at":
		return fieldConvertedAt, true
	case "revenue_paid_out":
		return fieldRevenue, true
	case "publisher_paid_out":
		return fieldPublisher, true
	case "reason", aliasDisposition:
		return fieldReason, true
	case "no_payout_reason":
		return fieldNoPayoutReason, true
	case "add":
		return fieldAdd, true
	case "remove":
		return fieldRemove, true
	}
	return 0, false
}

// Tag is one tag to add or overwrite on a call.
type Tag struct {
	Key   string
	Value string
}

// Update is the normalized change a postback makes to each of its calls,
// whichever source (query, form, JSON) it came from.
type Update struct {
	// Set holds the fields the postback carried; Cleared those of them
	// sent as null or empty, which clear the value upstream.
	Set     fieldSet
	Cleared fieldSet

	Converted      bool
	ConvertedAt    time.Time
	Revenue        string // decimal text exactly as received
	Publisher      string // decimal text exactly as received
	Reason         string
	NoPayoutReason string
	TagsAdd        []Tag
	TagsRemove     []string
}

// Has reports whether the update carries the named field.
func (u *Update) Has(name string) bool {
	f, ok := lookupField(name)
	return ok && u.Set.has(f)
}
