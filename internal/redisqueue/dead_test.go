package redisqueue

import (
	"context"
	"fmt"
	"github.com/redis/go-redis/v9"
	"sync/atomic"
	"testing"

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
