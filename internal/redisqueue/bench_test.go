package redisqueue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// The ordering check of a 50-id batch (operations#the-queue-in-production): one pipelined
// AppendAll against one Append per call, on calls with nothing waiting (the
// common case: the check finds nothing and appends nothing).
func BenchmarkOrderingCheck50(b *testing.B) {
	q := New(newClient(b, redistest.Start(b).Addr()), "")
	ctx := context.Background()
	batch := make([]*queue.Entry, 50)
	for i := range batch {
		batch[i] = &queue.Entry{CallLogID: fmt.Sprintf("bench-%02d", i), UpdateID: fmt.Sprint("u", i), AcceptedAt: time.Now(), Patch: []byte(`{"converted":true}`)}
	}
	b.Run("pipelined", func(b *testing.B) {
		for b.Loop() {
			for _, r := range q.AppendAll(ctx, batch, queue.AppendOptions{IfPending: true, Due: time.Now(), MaxPending: 1000}) {
				if r.Err != nil || r.Appended {
					b.Fatal(r)
				}
			}
		}
	})
	b.Run("one_per_call", func(b *testing.B) {
		for b.Loop() {
			for _, e := range batch {
				if ok, err := q.Append(ctx, e, true, time.Now()); err != nil || ok {
					b.Fatal(ok, err)
				}
			}
		}
	})
}
