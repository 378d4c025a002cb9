package redisqueue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
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

// The ordering check of single-id postbacks arriving together, as the
// edge runs it under load: concurrent AppendAll of one entry each, through
// a shared Batcher, on calls with nothing waiting.
func BenchmarkOrderingCheckConcurrent(b *testing.B) {
	client := newClient(b, redistest.Start(b).Addr())
	batcher := redisbatch.New(client)
	b.Cleanup(batcher.Close)
	q := New(client, "", WithBatcher(batcher))
	ctx := context.Background()
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := &queue.Entry{CallLogID: fmt.Sprintf("done-%d", n.Add(1)%1000), UpdateID: "9b2f7c1e4a554b7e8d2a0f1e", Account: "acct_1", Webhook: "acme",
				RequestID: "9b2f7c1e-4a55-4b7e-8d2a-0f1e2d3c4b5a", AcceptedAt: time.Now(), Patch: []byte(`{"converted":true,"revenue_paid_out":25.5}`)}
			r := q.AppendAll(ctx, []*queue.Entry{e}, queue.AppendOptions{IfPending: true, Due: time.Now(), MaxPending: 1000, NotAfter: time.Now().Add(2 * time.Second)})
			if r[0].Err != nil || r[0].Appended {
				b.Fatal(r[0])
			}
		}
	})
}
