package redisqueue

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/tidwall/gjson"
)

// An entry is stored as one compact JSON object whose first member is its ID:
//
//	{"id":"00000000000000000001","update_id":"n4bQgYhMfWWaL-qg","account":"acct_1","webhook":"acme","request_id":"r1","accepted_at":"2026-03-27T10:00:00Z","patch":"{\"converted\":true}"}
//
// followed, when the postback had a trace context, by "traceparent" and
// "tracestate" (docs/operations.md#call-store-transport). The call is the
// list's own, so it is not stored again; entries of earlier versions carry
// it as "call", which is read when present.
//
// The ID comes first because the append script assigns it: Go encodes the
// rest (entryTail) and the script writes `{"id":"<id>"` in front. The ack and
// bury scripts recognise the head by that same prefix (headPrefix).
//
// Strings are JSON-escaped, so a stored entry never holds a raw newline; bytes
// that are not valid UTF-8 are kept as they are (Redis values are binary-safe
// and gjson reads them back unchanged), so every Patch round-trips exactly.
//
// A dead letter is a line of JSON with the reason and time, a newline, then
// the entry exactly as it was stored, so the requeue script can cut the entry
// back out at the first newline without parsing JSON in Lua:
//
//	{"reason":"not_found: call not found","dead_at":"2026-03-27T10:05:00Z"}
//	{"id":"00000000000000000001",...}

// idWidth is the number of digits of an entry ID, zero-padded so IDs of one
// call sort as strings in the order they were assigned.
const idWidth = 20

// entryTail encodes e without its ID: everything after `{"id":"<id>"`.
func entryTail(e *queue.Entry) []byte {
	b := make([]byte, 0, 160+len(e.UpdateID)+len(e.Account)+len(e.Webhook)+len(e.RequestID)+len(e.Patch)*5/4)
	if e.UpdateID != "" {
		b = append(b, `,"update_id":`...)
		b = appendString(b, e.UpdateID)
	}
	b = append(b, `,"account":`...)
	b = appendString(b, e.Account)
	b = append(b, `,"webhook":`...)
	b = appendString(b, e.Webhook)
	b = append(b, `,"request_id":`...)
	b = appendString(b, e.RequestID)
	b = append(b, `,"accepted_at":`...)
	b = appendTime(b, e.AcceptedAt)
	b = append(b, `,"patch":`...)
	b = appendString(b, string(e.Patch))
	// The trace context only when there is one: entries without it are
	// stored as before.
	if e.TraceParent != "" {
		b = append(b, `,"traceparent":`...)
		b = appendString(b, e.TraceParent)
	}
	if e.TraceState != "" {
		b = append(b, `,"tracestate":`...)
		b = appendString(b, e.TraceState)
	}
	if !e.EditedAt.IsZero() {
		b = append(b, `,"edited_at":`...)
		b = appendTime(b, e.EditedAt)
		b = append(b, `,"edited":[`...)
		for i, f := range e.Edited {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, f)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// headPrefix is how a stored entry with the given ID begins.
func headPrefix(id string) string {
	return string(appendString([]byte(`{"id":`), id))
}

// deadInfo encodes the first line of a dead letter.
func deadInfo(reason string, at time.Time) []byte {
	b := make([]byte, 0, 64+len(reason))
	b = append(b, `{"reason":`...)
	b = appendString(b, reason)
	b = append(b, `,"dead_at":`...)
	b = appendTime(b, at)
	return append(b, '}')
}

// decodeEntry reads an entry stored in the lists of call callLogID.
func decodeEntry(callLogID, stored string) (queue.Entry, error) {
	if !gjson.Valid(stored) {
		return queue.Entry{}, errors.New("redisqueue: stored entry is not valid JSON")
	}
	e := queue.Entry{CallLogID: callLogID}
	var err error
	gjson.Parse(stored).ForEach(func(key, value gjson.Result) bool {
		switch key.Str {
		case "id":
			e.ID = value.Str
		case "update_id":
			e.UpdateID = value.Str
		case "call":
			e.CallLogID = value.Str
		case "account":
			e.Account = value.Str
		case "webhook":
			e.Webhook = value.Str
		case "request_id":
			e.RequestID = value.Str
		case "accepted_at":
			e.AcceptedAt, err = parseTime(value.Str)
		case "patch":
			e.Patch = []byte(value.Str)
		case "traceparent":
			e.TraceParent = value.Str
		case "tracestate":
			e.TraceState = value.Str
		case "edited_at":
			e.EditedAt, err = parseTime(value.Str)
		case "edited":
			for _, f := range value.Array() {
				e.Edited = append(e.Edited, f.Str)
			}
		}
		return err == nil
	})
	if err != nil {
		return queue.Entry{}, fmt.Errorf("redisqueue: stored entry: %w", err)
	}
	return e, nil
}

// decodeDeadEntry reads a dead letter of call callLogID.
func decodeDeadEntry(callLogID, stored string) (queue.DeadEntry, error) {
	info, entry, ok := strings.Cut(stored, "\n")
	if !ok || !gjson.Valid(info) {
		return queue.DeadEntry{}, errors.New("redisqueue: stored dead letter is malformed")
	}
	e, err := decodeEntry(callLogID, entry)
	if err != nil {
		return queue.DeadEntry{}, err
	}
	d := queue.DeadEntry{Entry: e}
	fields := gjson.GetMany(info, "reason", "dead_at")
	d.Reason = fields[0].Str
	if d.DeadAt, err = parseTime(fields[1].Str); err != nil {
		return queue.DeadEntry{}, fmt.Errorf("redisqueue: stored dead letter: %w", err)
	}
	return d, nil
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func parseTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, s)
}

// appendString appends s as a JSON string. Only the quote, the backslash and
// control characters are escaped; every other byte is copied as it is. It
// is not the edge's writer (postback's appendString), which replaces
// invalid UTF-8 for the partners' sake: an entry must come back from Redis
// byte for byte (FuzzEntryRoundTrip).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
