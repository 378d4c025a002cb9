package postback

import "testing"

func TestClass(t *testing.T) {
	t.Parallel()
	t.Run("partner-api#status-codes codes and statuses of the outcome classes", func(t *testing.T) {
		// partner-api#status-codes: each class a response carries, its code and, when every call
		// failed with it, the status.
		for _, tt := range []struct {
			c      Class
			failed bool
			code   string
			status int
		}{
			{Applied, false, "applied", 200},
			{Queued, false, "queued", 202},
			{NotFound, true, "not_found", 404},
			{Rejected, true, "rejected", 422},
			{UpstreamError, true, "upstream_error", 502},
			{UpstreamTimeout, true, "upstream_timeout", 504},
			{QueueUnavailable, true, "queue_unavailable", 503},
		} {
			if tt.c.Failed() != tt.failed || tt.c.Code() != tt.code || tt.c.Status() != tt.status {
				t.Errorf("class %d: failed=%v code=%s status=%d; want %v %s %d", tt.c, tt.c.Failed(), tt.c.Code(), tt.c.Status(), tt.failed, tt.code, tt.status)
			}
		}
		if Live.Failed() {
			t.Error("Live counts as failed")
		}
	})
}
