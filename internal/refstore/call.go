package refstore

import (
	"encoding/json"
	"maps"
	"time"
)

// States of a call (docs/operations.md#updating-a-call, operations#finding-a-call-by-phone-number).
const (
	// StateLive is a call in progress: the store refuses updates with 409.
	StateLive = "live"
	// StateCompleted is an ended call: updates apply.
	StateCompleted = "completed"
)

// noPayoutReasons are the only values no_payout_reason takes, in the
// spelling the edge normalizes to (docs/partner-api.md#fields).
var noPayoutReasons = []string{"Campaign preconversion", "Condition not met", "Caps exceeded"}

// Fields are the updatable values of a call, the fields of docs/operations.md#updating-a-call. A nil
// pointer or an empty number is a field that is not set, so it is left out
// of the call's JSON.
type Fields struct {
	Converted *bool `json:"converted,omitempty"`
	// CallConvertedAt is the RFC 3339 text as it was received.
	CallConvertedAt *string `json:"call_converted_at,omitempty"`
	// RevenuePaidOut keeps the decimal text as received, so 25.50 reads
	// back as 25.50 and never as 25.5.
	RevenuePaidOut   json.Number `json:"revenue_paid_out,omitempty"`
	PublisherPaidOut json.Number `json:"publisher_paid_out,omitempty"`
	Reason           *string     `json:"reason,omitempty"`
	NoPayoutReason   *string     `json:"no_payout_reason,omitempty"`
}

// Call is one call of the reference store. Its JSON form, with Fields
// inlined at the top level, is what the store answers and what a seed file
// and POST /v1/calls hold.
type Call struct {
	CallLogID string `json:"call_log_id"`
	// Account scopes the call: a request with another X-Account-Id does
	// not see it (docs/partner-api.md#accounts).
	Account string `json:"account,omitempty"`
	// PhoneNumber is in E.164 form, e.g. +15551234567.
	PhoneNumber string `json:"phone_number,omitempty"`
	// State is StateLive or StateCompleted.
	State string `json:"state"`
	// StartedAt orders the calls of one number, newest first (docs/operations.md#finding-a-call-by-phone-number).
	StartedAt time.Time `json:"started_at"`
	Fields
	Tags map[string]string `json:"tags"`
}

// clone returns a deep copy, so a caller never shares pointers or maps with
// the store's own copy.
func (c Call) clone() Call {
	c.Converted = clonePtr(c.Converted)
	c.CallConvertedAt = clonePtr(c.CallConvertedAt)
	c.Reason = clonePtr(c.Reason)
	c.NoPayoutReason = clonePtr(c.NoPayoutReason)
	c.Tags = maps.Clone(c.Tags)
	if c.Tags == nil {
		// An empty object reads better than null in a demo.
		c.Tags = map[string]string{}
	}
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// normalizePhone does the minimal normalization a store would: drop the
// usual separators and require E.164, "+" then 7 to 15 digits. Unlike the
// edge (docs/partner-api.md#identifying-calls) it knows no default country code.
func normalizePhone(s string) (string, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+' && i == 0:
			out = append(out, c)
		case c >= '0' && c <= '9':
			out = append(out, c)
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	digits := len(out) - 1
	if len(out) == 0 || out[0] != '+' || digits < 7 || digits > 15 || out[1] == '0' {
		return "", false
	}
	return string(out), true
}
