package redisqueue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// operations#the-queue-in-production: on a 3-master Cluster the due index lives in keys of more
// than one slot, and the periodic check of many calls reads from every
// master, not from one.
func TestDueIndexSpreadsOverTheCluster(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t, 3)})
	t.Cleanup(func() { c.Close() })
	q := New(c, "spread:")
	for i := range 200 {
		mustAppend(t, q, entry(fmt.Sprintf("spread-%03d", i), "x"))
	}
	slots := map[int64]bool{}
	for _, key := range q.dueKeys {
		if c.Exists(ctx, key).Val() == 1 {
			slots[c.ClusterKeySlot(ctx, key).Val()] = true
		}
	}
	if len(slots) < 2 {
		t.Fatalf("the due index of 200 calls is in %d slot(s)", len(slots))
	}

	var mu sync.Mutex
	before := map[string]int{}
	reads := func() map[string]int {
		out := map[string]int{}
		_ = c.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
			stats := node.Info(ctx, "commandstats").Val()
			n := 0
			for _, line := range strings.Split(stats, "\r\n") {
				if strings.HasPrefix(line, "cmdstat_zrangebyscore:calls=") {
					fmt.Sscanf(strings.TrimPrefix(line, "cmdstat_zrangebyscore:calls="), "%d", &n)
				}
			}
			mu.Lock()
			out[node.Options().Addr] = n
			mu.Unlock()
			return nil
		})
		return out
	}
	before = reads()
	due, err := q.Due(ctx, time.Now(), 200)
	if err != nil || len(due) != 200 {
		t.Fatalf("Due = %d calls, %v", len(due), err)
	}
	used := 0
	for addr, n := range reads() {
		if n > before[addr] {
			used++
		}
	}
	if used < 2 {
		t.Fatalf("the periodic check read the due index on %d master(s), want the work spread", used)
	}
}

// operations#the-queue-in-production: calls indexed by an earlier version, in the unsharded due
// index, are still found and move into their shards.
func TestDueReadsTheIndexOfEarlierVersions(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	q := New(c, "")
	mustAppend(t, q, entry("old-1", "x"))
	// As an earlier version left it: the call in the unsharded index only.
	c.ZRem(ctx, q.dueKeyOf("old-1"), "old-1")
	c.ZAdd(ctx, q.legacyDueKey, redis.Z{Score: score(time.Now().Add(-time.Minute)), Member: "old-1"})
	due, err := q.Due(ctx, time.Now(), 10)
	if err != nil || len(due) != 1 || due[0].CallLogID != "old-1" {
		t.Fatalf("Due = %v, %v", due, err)
	}
	if c.Exists(ctx, q.legacyDueKey).Val() != 0 {
		t.Fatal("the call stayed in the unsharded index")
	}
	if err := c.ZScore(ctx, q.dueKeyOf("old-1"), "old-1").Err(); err != nil {
		t.Fatalf("the call is not in its shard: %v", err)
	}
	if st, _ := q.Stats(ctx); st.PendingCalls != 1 {
		t.Fatalf("Stats = %+v", st)
	}
}
