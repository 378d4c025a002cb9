package postback

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func call(id string, c Class, msg string) CallResult {
	return CallResult{CallLogID: id, Outcome: Outcome{Class: c, Message: msg}}
}

func TestAppendResponse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		calls  []CallResult
		ign    []string
		status int
		body   string
	}{
		{"partner-api#status-codes all applied: 200",
			[]CallResult{call("a", Applied, ""), call("b", Applied, "")}, nil,
			200, `{"call_log_ids":["a","b"],"failed_call_log_ids":[]}`},
		{"partner-api#status-codes some applied, some failed: 200",
			[]CallResult{call("a", Applied, ""), call("b", NotFound, "call not found"), call("c", Applied, "")}, nil,
			200, `{"call_log_ids":["a","c"],"failed_call_log_ids":["b"],"errors":{"b":{"code":"not_found","message":"call not found"}}}`},
		{"partner-api#status-codes none failed, some queued: 202",
			[]CallResult{call("a", Applied, ""), call("b", Queued, "")}, nil,
			202, `{"call_log_ids":["a","b"],"failed_call_log_ids":[],"queued_call_log_ids":["b"]}`},
		{"partner-api#status-codes all queued: 202",
			[]CallResult{call("a", Queued, ""), call("b", Queued, "")}, nil,
			202, `{"call_log_ids":["a","b"],"failed_call_log_ids":[],"queued_call_log_ids":["a","b"]}`},
		{"partner-api#status-codes some queued, some failed: 200",
			[]CallResult{call("a", Queued, ""), call("b", UpstreamError, "the call store answered 500")}, nil,
			200, `{"call_log_ids":["a"],"failed_call_log_ids":["b"],"queued_call_log_ids":["a"],"errors":{"b":{"code":"upstream_error","message":"the call store answered 500"}}}`},
		{"partner-api#status-codes all failed not_found: 404",
			[]CallResult{call("a", NotFound, "call not found")}, nil,
			404, `{"call_log_ids":[],"failed_call_log_ids":["a"],"errors":{"a":{"code":"not_found","message":"call not found"}}}`},
		{"partner-api#status-codes all failed rejected: 422 with the call store's message",
			[]CallResult{call("a", Rejected, "revenue above cap")}, nil,
			422, `{"call_log_ids":[],"failed_call_log_ids":["a"],"errors":{"a":{"code":"rejected","message":"revenue above cap"}}}`},
		{"partner-api#status-codes all failed upstream_error: 502",
			[]CallResult{call("a", UpstreamError, "the call store refused the connection")}, nil,
			502, `{"call_log_ids":[],"failed_call_log_ids":["a"],"errors":{"a":{"code":"upstream_error","message":"the call store refused the connection"}}}`},
		{"partner-api#status-codes all failed upstream_timeout: 504",
			[]CallResult{call("a", UpstreamTimeout, "the call store did not answer in time")}, nil,
			504, `{"call_log_ids":[],"failed_call_log_ids":["a"],"errors":{"a":{"code":"upstream_timeout","message":"the call store did not answer in time"}}}`},
		{"partner-api#status-codes all failed queue_unavailable: 503",
			[]CallResult{call("a", QueueUnavailable, "could not be queued")}, nil,
			503, `{"call_log_ids":[],"failed_call_log_ids":["a"],"errors":{"a":{"code":"queue_unavailable","message":"could not be queued"}}}`},
		{"partner-api#status-codes mixed failures: the most frequent class (422)",
			[]CallResult{call("a", NotFound, "m"), call("b", Rejected, "m"), call("c", Rejected, "m")}, nil,
			422, ""},
		{"partner-api#status-codes mixed failures: the most frequent class (503)",
			[]CallResult{call("a", QueueUnavailable, "m"), call("b", UpstreamError, "m"), call("c", UpstreamError, "m"), call("d", QueueUnavailable, "m"), call("e", QueueUnavailable, "m")}, nil,
			503, ""},
		{"partner-api#status-codes mixed failures: a tie goes to the first seen (504)",
			[]CallResult{call("a", UpstreamTimeout, "m"), call("b", NotFound, "m")}, nil,
			504, ""},
		{"partner-api#status-codes mixed failures: a tie goes to the first seen (404)",
			[]CallResult{call("a", NotFound, "m"), call("b", UpstreamTimeout, "m"), call("c", UpstreamTimeout, "m"), call("d", NotFound, "m")}, nil,
			404, ""},
		{"partner-api#responses partner-api#unknown-parameters ignored keys are listed",
			[]CallResult{call("a", Applied, "")}, []string{"sub1", "utm_source"},
			200, `{"call_log_ids":["a"],"failed_call_log_ids":[],"ignored":["sub1","utm_source"]}`},
		{"partner-api#responses ignored with failures and queued: every list",
			[]CallResult{call("a", Queued, ""), call("b", Rejected, "no")}, []string{"x"},
			200, `{"call_log_ids":["a"],"failed_call_log_ids":["b"],"queued_call_log_ids":["a"],"errors":{"b":{"code":"rejected","message":"no"}},"ignored":["x"]}`},
		{"partner-api#responses a phone number that did not resolve stands in the failed list",
			[]CallResult{call("+15551234567", NotFound, "no call found for this phone number")}, nil,
			404, `{"call_log_ids":[],"failed_call_log_ids":["+15551234567"],"errors":{"+15551234567":{"code":"not_found","message":"no call found for this phone number"}}}`},
		{"partner-api#responses no calls at all",
			nil, nil, 200, `{"call_log_ids":[],"failed_call_log_ids":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body, status := AppendResponse(nil, &Result{Calls: tt.calls, Ignored: tt.ign})
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			if tt.body != "" && string(body) != tt.body {
				t.Errorf("body\n%s\nwant\n%s", body, tt.body)
			}
			checkResponseShape(t, body, tt.calls, tt.ign)
		})
	}
}

// checkResponseShape decodes a partner-api#responses body and checks it against calls.
func checkResponseShape(t *testing.T, body []byte, calls []CallResult, ignored []string) {
	t.Helper()
	var got struct {
		IDs     []string                     `json:"call_log_ids"`
		Failed  []string                     `json:"failed_call_log_ids"`
		Queued  []string                     `json:"queued_call_log_ids"`
		Errors  map[string]map[string]string `json:"errors"`
		Ignored []string                     `json:"ignored"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("not a partner-api#responses body: %v: %s", err, body)
	}
	ids, failed, queued := []string{}, []string{}, []string(nil)
	for _, c := range calls {
		if c.Class.Failed() {
			failed = append(failed, c.CallLogID)
			if e := got.Errors[c.CallLogID]; e["code"] != c.Class.Code() || e["message"] != c.Message {
				t.Errorf("errors[%q] = %v, want %s %q", c.CallLogID, e, c.Class.Code(), c.Message)
			}
		} else {
			ids = append(ids, c.CallLogID)
		}
		if c.Class == Queued {
			queued = append(queued, c.CallLogID)
		}
	}
	if !reflect.DeepEqual(got.IDs, ids) || !reflect.DeepEqual(got.Failed, failed) || !reflect.DeepEqual(got.Queued, queued) {
		t.Errorf("lists %v %v %v, want %v %v %v", got.IDs, got.Failed, got.Queued, ids, failed, queued)
	}
	if _, ok := raw["queued_call_log_ids"]; ok != (len(queued) > 0) {
		t.Errorf("queued_call_log_ids present=%v with %d queued: omitted only when empty", ok, len(queued))
	}
	if _, ok := raw["errors"]; ok != (len(failed) > 0) {
		t.Errorf("errors present=%v with %d failed: omitted only when empty", ok, len(failed))
	}
	if _, ok := raw["ignored"]; ok != (len(ignored) > 0) || !reflect.DeepEqual(got.Ignored, ignored) {
		t.Errorf("ignored %v (present=%v), want %v", got.Ignored, ok, ignored)
	}
}

func TestAppendResponseEscapes(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#responses ids and messages are escaped and the body stays valid JSON", func(t *testing.T) {
		// Ids are partner input (partner-api#identifying-calls allows any printable character): the
		// body stays valid JSON and gives them back exactly.
		calls := []CallResult{
			call(`quo"te`, Applied, ""),
			call(`back\slash`, Queued, ""),
			call("<script>&", NotFound, "call not found"),
			call("line\u2028sep", Rejected, `bad "value" <b>`),
		}
		body, status := AppendResponse([]byte("prefix:"), &Result{Calls: calls, Ignored: []string{`a"b`, "</script>"}})
		if !strings.HasPrefix(string(body), "prefix:{") {
			t.Fatalf("body %s does not keep dst", body)
		}
		body = body[len("prefix:"):]
		if status != 200 {
			t.Errorf("status %d, want 200", status)
		}
		if strings.ContainsAny(string(body), "<>&\u2028") {
			t.Errorf("body %s holds unescaped HTML or line separators", body)
		}
		checkResponseShape(t, body, calls, []string{`a"b`, "</script>"})
	})
}

func TestAppendError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  *Error
		want string
	}{
		{"partner-api#errors without fields", NewError(http.StatusUnauthorized, "missing auth key"),
			`{"error":{"code":"unauthorized","message":"missing auth key"}}`},
		{"partner-api#errors forbidden", NewError(http.StatusForbidden, "wrong webhook type"),
			`{"error":{"code":"forbidden","message":"wrong webhook type"}}`},
		{"partner-api#errors too many requests", NewError(http.StatusTooManyRequests, "slow down"),
			`{"error":{"code":"too_many_requests","message":"slow down"}}`},
		{"partner-api#errors with fields, in order", &Error{Status: 400, Code: CodeInvalidRequest, Message: "invalid fields", Fields: []FieldError{
			{"revenue_paid_out", "must not be negative"}, {"converted", "must be true or false"}}},
			`{"error":{"code":"invalid_request","message":"invalid fields","fields":{"revenue_paid_out":"must not be negative","converted":"must be true or false"}}}`},
		{"partner-api#errors escaped message and field", &Error{Status: 400, Code: CodeInvalidRequest, Message: `tag key "<x>" is bad`, Fields: []FieldError{{`add.<x>`, "a\nb"}}},
			`{"error":{"code":"invalid_request","message":"tag key \"\u003cx\u003e\" is bad","fields":{"add.\u003cx\u003e":"a\nb"}}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := AppendError(nil, tt.err)
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("not JSON: %s", got)
			}
		})
	}
	for status, code := range map[int]string{401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large", 415: "unsupported_media_type", 400: "invalid_request", 429: "too_many_requests"} {
		if e := NewError(status, "m"); e.Code != code || e.Status != status {
			t.Errorf("partner-api#errors NewError(%d) = %s %d, want %s", status, e.Code, e.Status, code)
		}
	}
}

func TestAppendScheduled(t *testing.T) {
	t.Parallel()
	t.Run("operations#completion-and-dead-letters the call-completed answer lists the scheduled calls", func(t *testing.T) {
		for _, tt := range []struct {
			ids  []string
			want string
		}{
			{nil, `{"call_log_ids":[]}`},
			{[]string{"abc-123"}, `{"call_log_ids":["abc-123"]}`},
			{[]string{"a", `b"c`, "d<e"}, `{"call_log_ids":["a","b\"c","d\u003ce"]}`},
		} {
			if got := AppendScheduled(nil, tt.ids); string(got) != tt.want {
				t.Errorf("operations#completion-and-dead-letters AppendScheduled(%q) = %s, want %s", tt.ids, got, tt.want)
			}
		}
	})
}
