package postback

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisqueue"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// TestDeadLetterBounds buries updates refused by a real HTTP call store and
// checks that dead_max_per_call and dead_max_age drop the oldest, counted,
// on the memory queue and on a real redis-server.
func TestDeadLetterBounds(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	for name, newQueue := range map[string]func() queue.Queue{
		"memory": func() queue.Queue { return queue.NewMemory() },
		"redis":  func() queue.Queue { client.FlushDB(context.Background()); return redisqueue.New(client, "") },
	} {
		t.Run(name, func(t *testing.T) {
			s := newStoreDouble(t)
			s.addCall("call-1", "completed", "acct_1")
			s.setReject("call-1", "revenue above the campaign cap")
			q := newQueue()
			ctx := context.Background()
			now := edgeTestNow
			var mu sync.Mutex
			var buried []queue.DeadEntry
			dropped := map[string]int{}
			d := newTestDrainer(q, newTestCallStore(t, s.srv.URL), fixedClock(now))
			d.Dead = DeadLetterPolicy{MaxAge: 24 * time.Hour, MaxPerCall: 3,
				OnBury: func(e queue.DeadEntry) { mu.Lock(); buried = append(buried, e); mu.Unlock() },
				OnDrop: func(cause string, n int) { mu.Lock(); dropped[cause] += n; mu.Unlock() },
			}
			for i := 1; i <= 5; i++ {
				enqueue(t, q, "call-1", fmt.Sprint("req-", i), fmt.Sprintf(`{"revenue_paid_out":%d}`, i), now, now)
			}
			d.DrainCall(ctx, "call-1", 0)
			dead, _ := q.Dead(ctx, "call-1")
			if len(dead) != 3 || string(dead[0].Patch) != `{"revenue_paid_out":3}` || string(dead[2].Patch) != `{"revenue_paid_out":5}` {
				t.Fatalf("operations#dead-letters dead_max_per_call 3 kept %+v, want the newest three", dead)
			}
			if len(buried) != 5 || buried[0].Reason != "rejected: revenue above the campaign cap" || buried[4].RequestID != "req-5" {
				t.Fatalf("OnBury saw %+v", buried)
			}
			if dropped["max_per_call"] != 2 || dropped["max_age"] != 0 {
				t.Fatalf("dropped = %v", dropped)
			}
			// A day and a minute later, the periodic sweep drops them all.
			d.Now = fixedClock(now.Add(24*time.Hour + time.Minute))
			d.sweepDead(ctx)
			if dead, _ := q.Dead(ctx, "call-1"); len(dead) != 0 {
				t.Fatalf("operations#dead-letters dead_max_age kept %+v", dead)
			}
			if dropped["max_age"] != 3 {
				t.Fatalf("dropped = %v", dropped)
			}
			if page, _ := q.ListDead(ctx, queue.DeadFilter{}, "", 10); len(page.Calls) != 0 {
				t.Fatalf("listing after the sweep = %+v", page)
			}
		})
	}
}
