package refstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"
)

// NotifyConfig points the store at the edge's call-completed endpoint
// (docs/operations.md#completion-and-dead-letters a), told of each call completed through the store.
type NotifyConfig struct {
	// URL is the edge's call-completed endpoint, e.g.
	// http://127.0.0.1:8080/postback/call-completed.
	URL string
	// Key is the internal key of a call_completed webhook, sent as
	// Authorization: Bearer <key>.
	Key string
	// Client sends the notification; nil means a client with a 5 s timeout.
	Client *http.Client
}

// NotifyResult is the outcome of one notification, reported in the answer
// to POST /v1/calls/{id}/complete: the edge's status, or why there was none.
type NotifyResult struct {
	Status int    `json:"status,omitempty"`
	Error  string `json:"error,omitempty"`
}

// notifyTimeout bounds a notification even when the caller set a client
// without a timeout.
const notifyTimeout = 10 * time.Second

var defaultNotifyClient = &http.Client{Timeout: 5 * time.Second}

// notify posts {"call_log_id": id} to the edge. It never fails the
// completion: whatever happens is only reported.
func (n *NotifyConfig) notify(ctx context.Context, id string) NotifyResult {
	// The call is already completed; a client hanging up must not cancel
	// the edge's chance to drain it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
	defer cancel()
	body, err := json.Marshal(map[string]string{"call_log_id": id})
	if err != nil {
		return NotifyResult{Error: err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(body))
	if err != nil {
		return NotifyResult{Error: "invalid notify URL"}
	}
	req.Header.Set("Content-Type", "application/json")
	if n.Key != "" {
		req.Header.Set("Authorization", "Bearer "+n.Key)
	}
	client := n.Client
	if client == nil {
		client = defaultNotifyClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return NotifyResult{Error: redact(err)}
	}
	defer resp.Body.Close()
	// Draining a little lets the connection be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return NotifyResult{Status: resp.StatusCode}
}

// redact drops the URL from a client error: an operator may have put a
// key in its query string (docs/partner-api.md#authentication), and keys never reach a response
// (docs/operations.md#webhooks-and-keys).
func redact(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}
