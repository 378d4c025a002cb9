package redistest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterSlots is the number of hash slots of a Redis Cluster.
const clusterSlots = 16384

// clusterTimeout bounds how long the nodes may take to agree that the
// cluster is up.
const clusterTimeout = 30 * time.Second

// StartCluster starts masters cluster-enabled redis-servers, splits the hash
// slots evenly among them and waits until every node reports
// cluster_state:ok. It returns the nodes' addresses, for
// redis.ClusterOptions.Addrs; the nodes stop when the test ends.
//
// The cluster is built with CLUSTER ADDSLOTS, SET-CONFIG-EPOCH and MEET, as
// redis-cli --cluster create does, so it needs no redis-cli and works for
// any number of masters, one or two included.
func StartCluster(t testing.TB, masters int) []string {
	t.Helper()
	if masters < 1 {
		t.Fatalf("redistest: a cluster needs at least one master, not %d", masters)
	}
	nodes := make([]*Server, masters)
	addrs := make([]string, masters)
	for i := range nodes {
		nodes[i] = Start(t, clusterNode())
		addrs[i] = nodes[i].Addr()
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	if err := createCluster(ctx, nodes); err != nil {
		t.Fatalf("redistest: creating the cluster: %v", err)
	}
	return addrs
}

func createCluster(ctx context.Context, nodes []*Server) error {
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr()})
		defer clients[i].Close()
	}
	for i, client := range clients {
		first, last := i*clusterSlots/len(clients), (i+1)*clusterSlots/len(clients)
		slots := make([]int, 0, last-first)
		for slot := first; slot < last; slot++ {
			slots = append(slots, slot)
		}
		if err := client.ClusterAddSlots(ctx, slots...).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER ADDSLOTS: %w", nodes[i].Addr(), err)
		}
		// Distinct epochs, so the nodes need no conflict resolution to agree.
		if err := client.Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("node %s: CLUSTER SET-CONFIG-EPOCH: %w", nodes[i].Addr(), err)
		}
	}
	for _, n := range nodes[1:] {
		if err := clients[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(n.port)).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", n.Addr(), err)
		}
	}
	want := fmt.Sprintf("cluster_known_nodes:%d", len(nodes))
	for i, client := range clients {
		for {
			info, err := client.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("node %s did not report cluster_state:ok with %d nodes (last CLUSTER INFO: %q, %v)", nodes[i].Addr(), len(nodes), info, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}
