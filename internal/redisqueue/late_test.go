package redisqueue

import (
	"context"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// operations#delivery-guarantee: an append that reaches Redis after its caller gave up (a copy
// held in a paused server's socket) stores nothing and marks the update
// not stored, so that Settle and the caller's 503 agree.
func TestAppendAfterItsCallerGaveUp(t *testing.T) {
	q := New(newClient(t, redistest.Start(t).Addr()), "")
	ctx := context.Background()
	late := entry("late-1", `{"a":1}`)
	late.UpdateID = "late-update"
	r := q.AppendAll(ctx, []*queue.Entry{late}, queue.AppendOptions{Due: time.Now(), NotAfter: time.Now().Add(-time.Second)})[0]
	if r.Appended || r.Err == nil {
		t.Fatalf("late append: %+v, want refused", r)
	}
	if got := patchesOf(t, q, "late-1"); got != "" {
		t.Fatalf("stored %q", got)
	}
	if stored, err := q.Settle(ctx, "late-1", "late-update"); err != nil || stored {
		t.Fatalf("Settle = %v, %v; want not stored", stored, err)
	}
	meta := q.keysOf("late-1").meta
	if ttl := q.client.PTTL(ctx, meta).Val(); ttl <= 0 {
		t.Fatalf("the mark of a call with nothing else in Redis never expires (PTTL %v)", ttl)
	}
	onTime := entry("late-1", `{"a":2}`)
	onTime.UpdateID = "on-time"
	if r := q.AppendAll(ctx, []*queue.Entry{onTime}, queue.AppendOptions{Due: time.Now(), NotAfter: time.Now().Add(time.Minute)})[0]; !r.Appended {
		t.Fatalf("append in time: %+v", r)
	}
	if ttl := q.client.PTTL(ctx, meta).Val(); ttl != -1 {
		t.Fatalf("a call with entries waiting has its meta expire (PTTL %v)", ttl)
	}
}
