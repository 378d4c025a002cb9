package postback

import (
	"context"
	"net/http"
	"time"

	"github.com/tidwall/gjson"
)

// Lookup reads one call's state, writing nothing (docs/operations.md#looking-up-a-call): Applied for
// a completed call, Live for one in progress, NotFound, or the failure.
func (c *CallStore) Lookup(ctx context.Context, t Target, callLogID string) Outcome {
	return c.lookupBy(ctx, time.Time{}, t, callLogID)
}

// lookupBy is Lookup with a deadline of its own besides ctx's, as patchBy.
func (c *CallStore) lookupBy(ctx context.Context, deadline time.Time, t Target, callLogID string) Outcome {
	u := c.base + "/v1/calls/" + EscapeCallLogID(callLogID)
	out, _ := c.do(ctx, deadline, http.MethodGet, u, t, nil, func(status int, body []byte) Outcome {
		switch status {
		case http.StatusOK:
			// Checked whole first, as a phone look-up: a garbled answer is
			// an upstream error, never a state.
			state := gjson.GetBytes(body, "state")
			switch {
			case !gjson.ValidBytes(body) || state.Type != gjson.String:
				return Outcome{Class: UpstreamError, Message: "the call store answered a call look-up without a state"}
			case state.Str == "live":
				return Outcome{Class: Live}
			case state.Str == "completed":
				return Outcome{Class: Applied}
			}
			return Outcome{Class: UpstreamError, Message: "the call store answered a call look-up with an unknown state"}
		case http.StatusNotFound:
			return Outcome{Class: NotFound, Message: "call not found"}
		}
		return unexpected(status)
	})
	return out
}
