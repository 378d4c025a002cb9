package postback

import "net/http"

// Class is what became of one call of a postback (docs/partner-api.md#status-codes, operations#updating-a-call).
type Class uint8

const (
	// Applied: the call store took the update.
	Applied Class = iota
	// Queued: the call is in progress; the update waits in the queue (operations#the-queue).
	Queued
	// Live: the call store answered 409 live; the edge turns it into Queued
	// or QueueUnavailable, so a response never carries it.
	Live
	NotFound
	Rejected
	UpstreamError
	UpstreamTimeout
	QueueUnavailable
	// TooManyPending: the call already holds max_pending_per_call updates;
	// nothing was stored (operations#the-queue-in-production). Transient: the
	// same update may be sent again once the call drains.
	TooManyPending
)

// classCount sizes arrays indexed by Class.
const classCount = int(TooManyPending) + 1

// Failed reports a class that lands the call in failed_call_log_ids.
func (c Class) Failed() bool { return c >= NotFound }

// Code is the class's code in the errors of a response.
func (c Class) Code() string {
	switch c {
	case NotFound:
		return "not_found"
	case Rejected:
		return "rejected"
	case UpstreamError:
		return "upstream_error"
	case UpstreamTimeout:
		return "upstream_timeout"
	case QueueUnavailable:
		return "queue_unavailable"
	case TooManyPending:
		return "too_many_pending"
	case Queued, Live:
		return "queued"
	}
	return "applied"
}

// Status is the HTTP status of a response whose every call failed with c.
func (c Class) Status() int {
	switch c {
	case NotFound:
		return http.StatusNotFound
	case Rejected:
		return http.StatusUnprocessableEntity
	case UpstreamTimeout:
		return http.StatusGatewayTimeout
	case QueueUnavailable:
		return http.StatusServiceUnavailable
	case TooManyPending:
		return http.StatusTooManyRequests
	case UpstreamError:
		return http.StatusBadGateway
	case Queued:
		return http.StatusAccepted
	}
	return http.StatusOK
}

// Outcome is the class of one call and, for a failure, why.
type Outcome struct {
	Class   Class
	Message string
}
