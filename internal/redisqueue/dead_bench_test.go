package redisqueue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// BenchmarkListDead100k lists the first page (100 calls) of 100 000 calls
// with dead letters on a real redis-server, unfiltered and by webhook
// (docs/operations.md#dead-letters: an index, not a scan; target < 50 ms).
func BenchmarkListDead100k(b *testing.B) {
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: redistest.Start(b).Addr()})
	b.Cleanup(func() { c.Close() })
	q := New(c, "")
	const calls = 100_000
	base := time.Now().Add(-time.Hour)
	d := deadIndex{q.prefix}
	for start := 0; start < calls; start += 1000 {
		pipe := c.Pipeline()
		for i := start; i < start+1000; i++ {
			id := fmt.Sprintf("call-%06d", i)
			webhook := []string{"acme", "beta"}[i%2]
			at := base.Add(time.Duration(i) * time.Millisecond)
			e := &queue.Entry{CallLogID: id, Account: "acct_1", Webhook: webhook, RequestID: "r", AcceptedAt: base, Patch: []byte(`{"revenue_paid_out":25.50}`)}
			reason := "rejected: revenue above the campaign cap"
			if i%1000 == 999 {
				reason = "rejected: rare"
			}
			letter := string(deadInfo(reason, at)) + "\n" + headPrefix("00000000000000000001") + string(entryTail(e))
			pipe.RPush(ctx, q.keysOf(id).dead, letter)
			pipe.SAdd(ctx, q.deadKey, id)
			deadIndexAddScript.Eval(ctx, pipe, d.keysFor(webhook, e.Account), id, at.UnixMicro())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			b.Fatal(err)
		}
	}
	// rare matches one call in 1000, so its page of 100 reads the whole index.
	for _, bc := range []struct {
		name  string
		f     queue.DeadFilter
		first int
	}{
		{"all", queue.DeadFilter{}, calls - 1},
		{"webhook", queue.DeadFilter{Webhook: "beta"}, calls - 1},
		{"reason", queue.DeadFilter{Reason: "campaign cap"}, calls - 2},
		{"rare", queue.DeadFilter{Reason: "rare"}, calls - 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				page, err := q.ListDead(ctx, bc.f, "", 100)
				if err != nil || len(page.Calls) != 100 || page.Calls[0].CallLogID != fmt.Sprintf("call-%06d", bc.first) {
					b.Fatalf("page = %d calls, %v", len(page.Calls), err)
				}
			}
		})
	}
}
