package postback

import "net/http"

// AppendResponse appends the body of docs/partner-api.md#responses for r and returns it with
// the status of partner-api#status-codes.
func AppendResponse(dst []byte, r *Result) ([]byte, int) {
	var counts [classCount]int
	failed := 0
	for _, c := range r.Calls {
		counts[c.Class]++
		if c.Class.Failed() {
			failed++
		}
	}
	if r.DryRun {
		dst = append(dst, `{"dry_run":true,"call_log_ids":`...)
	} else {
		dst = append(dst, `{"call_log_ids":`...)
	}
	dst = appendIDs(dst, r.Calls, func(c Class) bool { return !c.Failed() })
	dst = append(dst, `,"failed_call_log_ids":`...)
	dst = appendIDs(dst, r.Calls, Class.Failed)
	if counts[Queued] > 0 {
		dst = append(dst, `,"queued_call_log_ids":`...)
		dst = appendIDs(dst, r.Calls, func(c Class) bool { return c == Queued })
	}
	if failed > 0 {
		dst = append(dst, `,"errors":{`...)
		n := 0
		for _, c := range r.Calls {
			if c.Class.Failed() {
				if n > 0 {
					dst = append(dst, ',')
				}
				dst = appendString(dst, c.CallLogID)
				dst = append(dst, `:{"code":`...)
				dst = appendString(dst, c.Class.Code())
				dst = append(dst, `,"message":`...)
				dst = appendString(dst, c.Message)
				dst = append(dst, '}')
				n++
			}
		}
		dst = append(dst, '}')
	}
	if len(r.Ignored) > 0 {
		dst = append(dst, `,"ignored":`...)
		dst = appendStrings(dst, r.Ignored)
	}
	if r.DryRun {
		dst = append(dst, `,"patch":`...)
		dst = append(dst, r.Patch...)
	}
	dst = append(dst, '}')
	return dst, resultStatus(r, &counts, failed)
}

// appendIDs appends, as a JSON array, the ids of the calls whose class
// is picked.
func appendIDs(dst []byte, calls []CallResult, pick func(Class) bool) []byte {
	dst = append(dst, '[')
	n := 0
	for _, c := range calls {
		if pick(c.Class) {
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c.CallLogID)
			n++
		}
	}
	return append(dst, ']')
}

// resultStatus applies partner-api#status-codes. When every call failed but not all for one
// reason, the most frequent class decides, the first seen on a tie.
func resultStatus(r *Result, counts *[classCount]int, failed int) int {
	switch {
	case failed == 0 && counts[Queued] > 0:
		return http.StatusAccepted
	case failed < len(r.Calls), len(r.Calls) == 0:
		return http.StatusOK
	}
	best := r.Calls[0].Class
	for _, c := range r.Calls {
		if counts[c.Class] > counts[best] {
			best = c.Class
		}
	}
	return best.Status()
}

// AppendError appends the body of a request-level error (docs/partner-api.md#errors).
func AppendError(dst []byte, e *Error) []byte {
	dst = append(dst, `{"error":{"code":`...)
	dst = appendString(dst, e.Code)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	if len(e.Fields) > 0 {
		dst = append(dst, `,"fields":{`...)
		for i, f := range e.Fields {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, f.Field)
			dst = append(dst, ':')
			dst = appendString(dst, f.Message)
		}
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

// AppendScheduled appends the answer to call-completed (docs/operations.md#completion-and-dead-letters).
func AppendScheduled(dst []byte, ids []string) []byte {
	dst = append(dst, `{"call_log_ids":`...)
	dst = appendStrings(dst, ids)
	return append(dst, '}')
}

// AppendScheduledDryRun appends the answer to a dry run of call-completed:
// the calls that would be scheduled (docs/partner-api.md#dry-run).
func AppendScheduledDryRun(dst []byte, ids []string) []byte {
	dst = append(dst, `{"dry_run":true,"call_log_ids":`...)
	dst = appendStrings(dst, ids)
	return append(dst, '}')
}
