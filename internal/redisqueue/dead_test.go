package redisqueue

import (
	"context"
	"fmt"
	"github.com/redis/go-redis/v9"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/queue/queuetest"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

func TestDeadLettersSingleNode(t *testing.T) {
	c := newClient(t, redistest.Start(t).Addr())
	queuetest.RunDead(t, func(t *testing.T) queue.Queue {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return New(c, "")
	})
}

func TestDeadLettersCluster(t *testing.T) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t, 3)})
	t.Cleanup(func() { c.Close() })
	var prefixes atomic.Int64
	queuetest.RunDead(t, func(*testing.T) queue.Queue { return New(c, fmt.Sprintf("dead%d:", prefixes.Add(1))) })
}

// A call left in the dead index without dead letters (a process died
// between the index and the bury) is skipped and taken out of the index,
// without hiding the calls behind it (operations#dead-letters).
func TestListDeadDropsStaleMembers(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	d := deadIndex{q.prefix}
	now := time.Now()
	for i := 0; i < 5; i++ {
		id := fmt.Sprint("stale-", i)
		if err := q.indexDead(ctx, id, queue.Entry{Webhook: "acme"}, now.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	mustAppend(t, q, entry("real", `{"a":1}`))
	head, _, _ := q.Head(ctx, "real")
	if ok, _ := q.Claim(ctx, "real", "me", time.Minute); !ok {
		t.Fatal("no lease")
	}
	if err := q.Bury(ctx, "real", "me", head.ID, "rejected: no", now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	page, err := q.ListDead(ctx, queue.DeadFilter{}, "", 2)
	if err != nil || len(page.Calls) != 1 || page.Calls[0].CallLogID != "real" {
		t.Fatalf("page = %+v, %v", page, err)
	}
	if n, _ := c.ZCard(ctx, d.newest()).Result(); n != 1 {
		t.Fatalf("%d members left in the index, want 1", n)
	}
}
