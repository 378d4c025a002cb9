// Command drain is the drain benchmark of bench/run.sh
// (docs/operations.md#the-queue-in-production): against a running Caddy and bench/upstream,
//
//  1. baseline: -updates single-id postbacks for completed calls, after a
//     warm-up of up to 1000 that is not counted;
//  2. queue:    the same number for -calls live calls ("live-*", answered
//     409 by the upstream), -updates/-calls per call, each queued (202);
//  3. drain:    the upstream's live calls complete, call-completed is sent
//     for all of them in batches of 50, and the clock runs until the
//     upstream has applied every queued update.
//
// It prints one JSON line: the three rates, queue/baseline and
// drain/baseline, and with -redis the Redis memory the queued updates took,
// per update (used_memory after the queue phase less before it).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

func main() {
	edge := flag.String("edge", "", "the edge's base `URL`, http://127.0.0.1:port")
	key := flag.String("key", "", "the update_fields webhook's key")
	platformKey := flag.String("platform-key", "", "the call_completed webhook's key")
	upstream := flag.String("upstream", "", "bench/upstream's base `URL`")
	redisAddr := flag.String("redis", "", "Redis `address` of the queue, for its memory (empty: the memory queue)")
	calls := flag.Int("calls", 1000, "live calls")
	updates := flag.Int("updates", 5000, "updates queued (and sent in the baseline)")
	conns := flag.Int("c", 32, "concurrent connections")
	flag.Parse()
	if *edge == "" || *key == "" || *platformKey == "" || *upstream == "" {
		log.Fatal("drain: -edge, -key, -platform-key and -upstream are required")
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns}, Timeout: 30 * time.Second}
	post := func(url, body string, want int) error {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			return fmt.Errorf("POST %s: %d %s, want %d", url[:strings.IndexByte(url+"?", '?')], resp.StatusCode, answer, want)
		}
		return nil
	}
	postbackURL := *edge + "/postback/update-fields?moja_auth_key=" + *key
	// run sends n requests on the connections and returns their rate.
	run := func(n int, body func(i int) string, want int) float64 {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range *conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
					if err := post(postbackURL, body(i), want); err != nil {
						log.Fatalf("drain: %v", err)
					}
				}
			}()
		}
		wg.Wait()
		return float64(n) / time.Since(start).Seconds()
	}

	completed := func(i int) string {
		return fmt.Sprintf(`{"call_log_id":"done-%d","converted":true,"revenue_paid_out":25.50}`, i)
	}
	// A warm-up, not counted: connections opened, caches and pools filled.
	run(min(1000, *updates), completed, http.StatusOK)
	baseline := run(*updates, completed, http.StatusOK)

	var rdb *redis.Client
	var memBefore int64
	if *redisAddr != "" {
		rdb = redis.NewClient(&redis.Options{Addr: *redisAddr})
		defer rdb.Close()
		memBefore = usedMemory(rdb)
	}
	queued := run(*updates, func(i int) string {
		return fmt.Sprintf(`{"call_log_id":"live-%d","converted":true,"revenue_paid_out":%d.50}`, i%*calls, i / *calls)
	}, http.StatusAccepted)
	bytesPer := 0.0
	if rdb != nil {
		bytesPer = float64(usedMemory(rdb)-memBefore) / float64(*updates)
	}

	appliedBefore := liveApplied(client, *upstream)
	if err := post(*upstream+"/live/complete", "", http.StatusNoContent); err != nil {
		log.Fatalf("drain: %v", err)
	}
	start := time.Now()
	completedURL := *edge + "/postback/call-completed?moja_auth_key=" + *platformKey
	for first := 0; first < *calls; first += 50 {
		var ids []string
		for c := first; c < min(first+50, *calls); c++ {
			ids = append(ids, fmt.Sprintf(`"live-%d"`, c))
		}
		if err := post(completedURL, `{"call_log_id":[`+strings.Join(ids, ",")+`]}`, http.StatusAccepted); err != nil {
			log.Fatalf("drain: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for liveApplied(client, *upstream)-appliedBefore < int64(*updates) {
		if ctx.Err() != nil {
			log.Fatalf("drain: only %d of %d queued updates applied after 10 minutes", liveApplied(client, *upstream)-appliedBefore, *updates)
		}
		time.Sleep(5 * time.Millisecond)
	}
	drained := float64(*updates) / time.Since(start).Seconds()

	out, _ := json.Marshal(map[string]any{
		"baseline_per_s":         round(baseline),
		"queue_per_s":            round(queued),
		"drain_per_s":            round(drained),
		"queue_over_baseline":    round(queued / baseline),
		"drain_over_baseline":    round(drained / baseline),
		"redis_bytes_per_update": round(bytesPer),
		"calls":                  *calls,
		"updates":                *updates,
		"connections":            *conns,
		"redis_memory_measured":  rdb != nil,
	})
	fmt.Fprintln(os.Stdout, string(out))
}

func round(v float64) float64 { return float64(int64(v*1000+0.5)) / 1000 }

func usedMemory(rdb *redis.Client) int64 {
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		log.Fatalf("drain: redis INFO: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			var n int64
			fmt.Sscan(v, &n)
			return n
		}
	}
	log.Fatal("drain: no used_memory in redis INFO")
	return 0
}

func liveApplied(client *http.Client, upstream string) int64 {
	resp, err := client.Get(upstream + "/stats")
	if err != nil {
		log.Fatalf("drain: upstream stats: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		LiveApplied int64 `json:"live_applied"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&st); err != nil {
		log.Fatalf("drain: upstream stats %s: %v", b, err)
	}
	return st.LiveApplied
}
