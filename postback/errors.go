package postback

import (
	"net/http"
	"strings"
)

// Error codes of a request-level error (docs/partner-api.md#errors).
const (
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodePayloadTooLarge      = "payload_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeInvalidRequest       = "invalid_request"
	CodeTooManyRequests      = "too_many_requests"
)

// FieldError names one offending input and why it was refused.
type FieldError struct {
	Field   string
	Message string
}

// Error is a request refused before any call was touched: authentication,
// validation and limits (docs/partner-api.md#errors). The handler writes it as
// {"error":{"code","message","fields"}}.
type Error struct {
	Status  int
	Code    string
	Message string
	// Fields holds the per-field problems of a validation error, in the
	// order they were found; at most one entry per field.
	Fields []FieldError
	// RetryAfter is, for a 429, the seconds to wait.
	RetryAfter int64
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return e.Message
	}
	var b strings.Builder
	b.WriteString(e.Message)
	for i, f := range e.Fields {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field)
		b.WriteString(": ")
		b.WriteString(f.Message)
	}
	return b.String()
}

// NewError returns a request-level error with the code of status.
func NewError(status int, message string) *Error {
	return &Error{Status: status, Code: codeOf(status), Message: message}
}

func invalid(message string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: CodeInvalidRequest, Message: message}
}

func codeOf(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodePayloadTooLarge
	case http.StatusUnsupportedMediaType:
		return CodeUnsupportedMediaType
	case http.StatusTooManyRequests:
		return CodeTooManyRequests
	default:
		return CodeInvalidRequest
	}
}

// fieldErrors gathers every validation failure of one request so that all
// are reported at once (docs/partner-api.md#fields, last paragraph).
type fieldErrors []FieldError

func (fe *fieldErrors) add(field, message string) {
	for i := range *fe {
		if (*fe)[i].Field == field {
			(*fe)[i].Message += "; " + message
			return
		}
	}
	*fe = append(*fe, FieldError{Field: field, Message: message})
}

func (fe fieldErrors) err() *Error {
	if len(fe) == 0 {
		return nil
	}
	e := invalid("invalid fields")
	if len(fe) == 1 {
		e.Message = "invalid field " + fe[0].Field + ": " + fe[0].Message
	}
	e.Fields = fe
	return e
}
