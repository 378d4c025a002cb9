package redisqueue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/queue/queuetest"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// oddIDs are call IDs that would break a naive hash tag.
var oddIDs = []string{"c1", "{", "}", "{}", "}{", "a{b}c", "{call:c1}", "%7B", "%", "with space", "ünïcødé ☎", "", "line\nbreak", `"quoted"`}

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c
}

func entry(call, patch string) *queue.Entry {
	return &queue.Entry{CallLogID: call, Account: "acct_1", Webhook: "acme", RequestID: "req-" + patch,
		AcceptedAt: time.Now().Truncate(time.Millisecond), Patch: []byte(patch)}
}

func mustAppend(t *testing.T, q *Queue, e *queue.Entry) {
	t.Helper()
	if ok, err := q.Append(context.Background(), e, false, time.Now()); err != nil || !ok {
		t.Fatalf("Append = %v, %v", ok, err)
	}
}

func patchesOf(t *testing.T, q *Queue, call string) string {
	t.Helper()
	es, err := q.Pending(context.Background(), call)
	if err != nil {
		t.Fatalf("Pending: %v", err)
	}
	var ps []string
	for _, e := range es {
		ps = append(ps, string(e.Patch))
	}
	return strings.Join(ps, " ")
}

func TestConformanceSingleNode(t *testing.T) {
	c := newClient(t, redistest.Start(t).Addr())
	queuetest.Run(t, func(t *testing.T) queue.Queue {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return New(c, "")
	})
}

// The appends of a Queue with a batcher go through pipelines shared with
// other callers, as in production; the contract is the same.
func TestConformanceBatched(t *testing.T) {
	c := newClient(t, redistest.Start(t).Addr())
	b := redisbatch.New(c)
	t.Cleanup(b.Close)
	queuetest.Run(t, func(t *testing.T) queue.Queue {
		if err := c.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		return New(c, "", WithBatcher(b))
	})
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t, 3)})
	t.Cleanup(func() { c.Close() })
	var prefixes atomic.Int64
	newQueue := func() *Queue { return New(c, fmt.Sprintf("test%d:", prefixes.Add(1))) }

	t.Run("operations#several-instances conformance on a 3-master cluster", func(t *testing.T) {
		queuetest.Run(t, func(*testing.T) queue.Queue { return newQueue() })
	})

	t.Run("operations#several-instances keys of one call share a cluster slot, whatever the ID", func(t *testing.T) {
		q := newQueue()
		lists := map[string]string{}
		slotsUsed := map[int64]bool{}
		for _, id := range oddIDs {
			k := q.keysOf(id)
			var slots []int64
			for _, key := range []string{k.list, k.dead, k.lease, k.meta} {
				slot, err := c.ClusterKeySlot(ctx, key).Result()
				if err != nil {
					t.Fatal(err)
				}
				slots = append(slots, slot)
			}
			if slots[0] != slots[1] || slots[0] != slots[2] || slots[0] != slots[3] {
				t.Errorf("keys of call %q are in slots %v", id, slots)
			}
			slotsUsed[slots[0]] = true
			if other, dup := lists[k.list]; dup {
				t.Errorf("calls %q and %q share the key %q", other, id, k.list)
			}
			lists[k.list] = id
		}
		if len(slotsUsed) < len(oddIDs)/2 {
			t.Errorf("%d calls in only %d slots: the tag does not spread calls", len(oddIDs), len(slotsUsed))
		}
	})

	t.Run("operations#order operations#completion-and-dead-letters operations#several-instances odd call IDs go through every step on a cluster", func(t *testing.T) {
		q := newQueue()
		now := time.Now()
		for _, id := range oddIDs {
			mustAppend(t, q, entry(id, "1"))
			if ok, err := q.Append(ctx, entry(id, "2"), true, now); err != nil || !ok {
				t.Fatalf("call %q: Append ifPending = %v, %v", id, ok, err)
			}
			if ok, err := q.Claim(ctx, id, "a", time.Minute); err != nil || !ok {
				t.Fatalf("call %q: Claim = %v, %v", id, ok, err)
			}
			head, ok, err := q.Head(ctx, id)
			if err != nil || !ok || head.CallLogID != id {
				t.Fatalf("call %q: Head = %+v, %v, %v", id, head, ok, err)
			}
			if err := q.Bury(ctx, id, "a", head.ID, "unprocessable", now); err != nil {
				t.Fatalf("call %q: Bury: %v", id, err)
			}
			if n, err := q.Requeue(ctx, id, now); err != nil || n != 1 {
				t.Fatalf("call %q: Requeue = %d, %v", id, n, err)
			}
			if err := q.Schedule(ctx, id, now, 2); err != nil {
				t.Fatalf("call %q: Schedule: %v", id, err)
			}
			if got := patchesOf(t, q, id); got != "1 2" {
				t.Fatalf("call %q: pending %q, want %q", id, got, "1 2")
			}
		}
		due, err := q.Due(ctx, now, 100)
		if err != nil || len(due) != len(oddIDs) {
			t.Fatalf("Due = %d calls, %v; want %d", len(due), err, len(oddIDs))
		}
		st, err := q.Stats(ctx)
		st.OldestPending = time.Time{}
		if want := (queue.Stats{PendingCalls: len(oddIDs), PendingEntries: 2 * len(oddIDs)}); err != nil || st != want {
			t.Fatalf("Stats = %+v, %v; want %+v", st, err, want)
		}
		for _, id := range oddIDs {
			for {
				head, ok, err := q.Head(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if !ok {
					break
				}
				if _, _, err := q.Ack(ctx, id, "a", head.ID); err != nil {
					t.Fatalf("call %q: Ack: %v", id, err)
				}
			}
			if err := q.Release(ctx, id, "a"); err != nil {
				t.Fatal(err)
			}
		}
		if due, err := q.Due(ctx, now.Add(time.Hour), 100); err != nil || len(due) != 0 {
			t.Fatalf("Due after draining = %v, %v", due, err)
		}
	})
}

func TestRestartDurability(t *testing.T) {
	ctx := context.Background()
	for _, how := range []string{"stopped", "killed"} {
		t.Run("operations#the-queue what was accepted survives redis-server being "+how+" (appendonly)", func(t *testing.T) {
			s := redistest.Start(t, redistest.AppendOnly())
			q := New(newClient(t, s.Addr()), "")
			now := time.Now().Truncate(time.Millisecond)
			for _, p := range []string{"1", "2", "3"} {
				mustAppend(t, q, entry("c1", p))
			}
			if ok, err := q.Claim(ctx, "c1", "a", time.Minute); err != nil || !ok {
				t.Fatalf("Claim = %v, %v", ok, err)
			}
			head, _, _ := q.Head(ctx, "c1")
			if err := q.Bury(ctx, "c1", "a", head.ID, "not_found", now); err != nil {
				t.Fatal(err)
			}
			if err := q.Schedule(ctx, "c1", now, 2); err != nil {
				t.Fatal(err)
			}
			before, _ := q.Pending(ctx, "c1")

			if how == "killed" {
				s.Kill()
			} else {
				s.Stop()
			}
			s.Restart()

			q = New(newClient(t, s.Addr()), "")
			after, err := q.Pending(ctx, "c1")
			if err != nil || len(after) != 2 || after[0].ID != before[0].ID || after[1].ID != before[1].ID || string(after[1].Patch) != "3" {
				t.Fatalf("pending after restart = %+v, %v; before %+v", after, err, before)
			}
			if dead, err := q.Dead(ctx, "c1"); err != nil || len(dead) != 1 || string(dead[0].Patch) != "1" || dead[0].Reason != "not_found" {
				t.Fatalf("dead after restart = %+v, %v", dead, err)
			}
			if due, err := q.Due(ctx, now, 10); err != nil || len(due) != 1 || due[0].Attempt != 2 {
				t.Fatalf("due after restart = %+v, %v", due, err)
			}
			if ok, _ := q.Claim(ctx, "c1", "b", time.Minute); ok {
				t.Fatal("the lease did not survive the restart")
			}
			e := entry("c1", "4")
			mustAppend(t, q, e)
			if e.ID <= after[1].ID {
				t.Fatalf("ID after restart %q does not follow %q", e.ID, after[1].ID)
			}
		})
	}
}

func TestInstanceRestart(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	t.Run("operations#several-instances a new Queue resumes what a crashed instance left, after its lease expires", func(t *testing.T) {
		first := redis.NewClient(&redis.Options{Addr: s.Addr()})
		q1 := New(first, "")
		for _, p := range []string{"1", "2", "3"} {
			mustAppend(t, q1, entry("c1", p))
		}
		if ok, err := q1.Claim(ctx, "c1", "instance-1", 300*time.Millisecond); err != nil || !ok {
			t.Fatalf("Claim = %v, %v", ok, err)
		}
		head, _, _ := q1.Head(ctx, "c1")
		first.Close() // the instance crashes holding the lease

		q2 := New(newClient(t, s.Addr()), "")
		if due, err := q2.Due(ctx, time.Now(), 10); err != nil || len(due) != 1 || due[0].CallLogID != "c1" {
			t.Fatalf("Due on the new instance = %v, %v", due, err)
		}
		if ok, _ := q2.Claim(ctx, "c1", "instance-2", time.Minute); ok {
			t.Fatal("took a lease before it expired")
		}
		if _, _, err := q2.Ack(ctx, "c1", "instance-2", head.ID); err != queue.ErrNotLeaseholder {
			t.Fatalf("Ack without the lease = %v", err)
		}
		time.Sleep(400 * time.Millisecond)
		if ok, err := q2.Claim(ctx, "c1", "instance-2", time.Minute); err != nil || !ok {
			t.Fatalf("Claim after expiry = %v, %v", ok, err)
		}
		var drained []string
		for {
			head, ok, err := q2.Head(ctx, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			if _, _, err := q2.Ack(ctx, "c1", "instance-2", head.ID); err != nil {
				t.Fatal(err)
			}
			drained = append(drained, string(head.Patch))
		}
		if got := strings.Join(drained, " "); got != "1 2 3" {
			t.Fatalf("drained %q, want in order %q", got, "1 2 3")
		}
	})
}

func TestCompetingQueues(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	const entries = 60
	setup := New(newClient(t, s.Addr()), "")
	for i := range entries {
		mustAppend(t, setup, entry("c1", fmt.Sprint(i)))
	}

	t.Run("operations#several-instances two Queues on one Redis: one drainer at a time, every entry applied once and in order", func(t *testing.T) {
		queues := []*Queue{New(newClient(t, s.Addr()), ""), New(newClient(t, s.Addr()), "")}
		var (
			holders atomic.Int32
			mu      sync.Mutex
			applied []string
			turns   = map[string]int{}
			wg      sync.WaitGroup
		)
		for d := range 4 {
			q, owner := queues[d%2], fmt.Sprint("drainer-", d)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ok, err := q.Claim(ctx, "c1", owner, 5*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					if !ok {
						time.Sleep(time.Millisecond)
						continue
					}
					if n := holders.Add(1); n != 1 {
						t.Errorf("%d drainers hold the lease at once", n)
					}
					empty := false
					// A few entries per turn, then the lease goes back, so the drainers take turns.
					for range 3 {
						head, ok, err := q.Head(ctx, "c1")
						if err != nil || !ok {
							empty = err == nil
							break
						}
						if _, _, err := q.Ack(ctx, "c1", owner, head.ID); err != nil {
							t.Errorf("%s: Ack while holding the lease: %v", owner, err)
							break
						}
						mu.Lock()
						applied = append(applied, string(head.Patch))
						turns[owner]++
						mu.Unlock()
					}
					holders.Add(-1)
					if err := q.Release(ctx, "c1", owner); err != nil {
						t.Error(err)
					}
					if empty {
						return
					}
				}
			}()
		}
		wg.Wait()
		if len(applied) != entries {
			t.Fatalf("applied %d entries, want %d", len(applied), entries)
		}
		for i, p := range applied {
			if p != fmt.Sprint(i) {
				t.Fatalf("entry %d applied as %q: out of order or twice", i, p)
			}
		}
		t.Logf("entries per drainer: %v", turns)
	})

	t.Run("operations#several-instances a drainer whose lease expired and was taken over cannot ack", func(t *testing.T) {
		a, b := New(newClient(t, s.Addr()), ""), New(newClient(t, s.Addr()), "")
		mustAppend(t, a, entry("c2", "x"))
		if ok, _ := a.Claim(ctx, "c2", "a", 100*time.Millisecond); !ok {
			t.Fatal("claim failed")
		}
		head, _, _ := a.Head(ctx, "c2")
		time.Sleep(150 * time.Millisecond)
		if ok, _ := b.Claim(ctx, "c2", "b", time.Minute); !ok {
			t.Fatal("expired lease not taken over")
		}
		if _, _, err := a.Ack(ctx, "c2", "a", head.ID); err != queue.ErrNotLeaseholder {
			t.Fatalf("Ack by the former holder = %v", err)
		}
		if err := a.Bury(ctx, "c2", "a", head.ID, "late", time.Now()); err != queue.ErrNotLeaseholder {
			t.Fatalf("Bury by the former holder = %v", err)
		}
		if st, _ := b.Stats(ctx); st.DeadCalls != 0 {
			t.Fatalf("a refused Bury counts a dead call: %+v", st)
		}
		if _, _, err := b.Ack(ctx, "c2", "b", head.ID); err != nil {
			t.Fatalf("Ack by the new holder: %v", err)
		}
	})
}

func TestSelfHealingIndexes(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	fresh := func(t *testing.T) *Queue {
		if err := c.FlushDB(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		return New(c, "")
	}
	now := time.Now()

	t.Run("operations#completion-and-dead-letters Due skips and drops calls with nothing waiting, and still fills its limit", func(t *testing.T) {
		q := fresh(t)
		for i := range 5 {
			// What a process leaves when it dies between indexing and appending.
			c.ZAdd(ctx, q.dueKeyOf(fmt.Sprint("ghost-", i)), redis.Z{Score: score(now.Add(-time.Hour)), Member: fmt.Sprint("ghost-", i)})
		}
		for i := range 4 {
			mustAppend(t, q, entry(fmt.Sprint("real-", i), "x"))
		}
		due, err := q.Due(ctx, time.Now(), 3)
		if err != nil || len(due) != 3 {
			t.Fatalf("Due = %v, %v; want 3 real calls", due, err)
		}
		for _, d := range due {
			if !strings.HasPrefix(d.CallLogID, "real-") {
				t.Fatalf("Due returned %q", d.CallLogID)
			}
		}
		n := int64(0)
		for _, key := range q.dueKeys {
			n += c.ZCard(ctx, key).Val()
		}
		if n != 4 {
			t.Fatalf("due index holds %d calls, want the 4 real ones", n)
		}
	})

	t.Run("operations#completion-and-dead-letters Wake restores a call that lost its due-index member", func(t *testing.T) {
		q := fresh(t)
		mustAppend(t, q, entry("c1", "x"))
		c.ZRem(ctx, q.dueKeyOf("c1"), "c1")
		if due, _ := q.Due(ctx, now.Add(time.Hour), 10); len(due) != 0 {
			t.Fatalf("Due = %v", due)
		}
		if pending, err := q.Wake(ctx, "c1", now); err != nil || !pending {
			t.Fatalf("Wake = %v, %v", pending, err)
		}
		if due, _ := q.Due(ctx, now, 10); len(due) != 1 {
			t.Fatalf("Due after Wake = %v", due)
		}
	})

	t.Run("operations#completion-and-dead-letters Stats counts only calls that hold entries", func(t *testing.T) {
		q := fresh(t)
		mustAppend(t, q, entry("c1", "x"))
		c.ZAdd(ctx, q.dueKeyOf("ghost"), redis.Z{Score: score(now), Member: "ghost"})
		c.SAdd(ctx, q.deadKey, "ghost")
		if st, err := q.Stats(ctx); err != nil || st.OldestPending.IsZero() || st.PendingCalls != 1 || st.PendingEntries != 1 || st.DeadCalls != 0 || st.DeadEntries != 0 {
			t.Fatalf("Stats = %+v, %v", st, err)
		}
	})

	t.Run("operations#the-queue-in-production an ack run twice removes one entry, and both runs answer the next head", func(t *testing.T) {
		q := fresh(t)
		first, second := entry("c1", `{"a":1}`), entry("c1", `{"a":2}`)
		mustAppend(t, q, first)
		mustAppend(t, q, second)
		q.Claim(ctx, "c1", "a", time.Minute)
		for run := 1; run <= 2; run++ {
			next, ok, err := q.Ack(ctx, "c1", "a", first.ID)
			if err != nil || !ok || next.ID != second.ID || string(next.Patch) != `{"a":2}` {
				t.Fatalf("ack, run %d = %+v, %v, %v; want the second entry next", run, next, ok, err)
			}
		}
		if got := patchesOf(t, q, "c1"); got != `{"a":2}` {
			t.Fatalf("pending after the ack ran twice: %s", got)
		}
	})

	t.Run("operations#completion-and-dead-letters an emptied call leaves the due index at once and keeps its ID counter", func(t *testing.T) {
		q := fresh(t)
		e := entry("c1", "x")
		mustAppend(t, q, e)
		q.Claim(ctx, "c1", "a", time.Minute)
		if _, _, err := q.Ack(ctx, "c1", "a", e.ID); err != nil {
			t.Fatal(err)
		}
		if err := c.ZScore(ctx, q.dueKeyOf("c1"), "c1").Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("emptied call still in the due index: %v", err)
		}
		if ttl, _ := c.PTTL(ctx, q.keysOf("c1").meta).Result(); ttl <= 0 || ttl > counterRetention {
			t.Fatalf("counter of an emptied call expires in %v, want within %v", ttl, counterRetention)
		}
		next := entry("c1", "y")
		mustAppend(t, q, next)
		if next.ID <= e.ID {
			t.Fatalf("ID %q after the call emptied does not follow %q", next.ID, e.ID)
		}
		if ttl, _ := c.PTTL(ctx, q.keysOf("c1").meta).Result(); ttl != -1 {
			t.Fatalf("counter of a waiting call expires in %v", ttl)
		}
	})

	t.Run("operations#completion-and-dead-letters dead letters keep every byte through bury and requeue", func(t *testing.T) {
		q := fresh(t)
		patch := "{\"a\":\"line\nbreak\"}\xff\x00"
		reason := "unprocessable: \"bad\"\nsecond line"
		e := entry("c1", patch)
		mustAppend(t, q, e)
		q.Claim(ctx, "c1", "a", time.Minute)
		if err := q.Bury(ctx, "c1", "a", e.ID, reason, now); err != nil {
			t.Fatal(err)
		}
		dead, err := q.Dead(ctx, "c1")
		if err != nil || len(dead) != 1 || string(dead[0].Patch) != patch || dead[0].Reason != reason || dead[0].ID != e.ID {
			t.Fatalf("Dead = %+v, %v", dead, err)
		}
		if n, err := q.Requeue(ctx, "c1", now); err != nil || n != 1 {
			t.Fatalf("Requeue = %d, %v", n, err)
		}
		back, _, err := q.Head(ctx, "c1")
		if err != nil || string(back.Patch) != patch || back.ID != e.ID || back.RequestID != e.RequestID {
			t.Fatalf("requeued head = %+v, %v", back, err)
		}
		if n, _ := c.SCard(ctx, q.deadKey).Result(); n != 0 {
			t.Fatalf("dead index holds %d calls after requeue", n)
		}
	})
}

func TestRedisDown(t *testing.T) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialTimeout: 200 * time.Millisecond,
		DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { c.Close() })
	q := New(c, "")
	e := entry("c1", "x")
	mustAppend(t, q, e)
	s.Stop()

	t.Run("operations#the-queue every method returns an error, not a panic, when Redis is down", func(t *testing.T) {
		now := time.Now()
		check := func(method string, err error) {
			t.Helper()
			if err == nil || !strings.HasPrefix(err.Error(), "redisqueue: ") || errors.Is(err, queue.ErrNotLeaseholder) {
				t.Errorf("%s = %v, want a redisqueue error", method, err)
			}
		}
		appended, err := q.Append(ctx, entry("c1", "y"), false, now)
		check("Append", err)
		if appended {
			t.Error("Append reported appended with Redis down")
		}
		_, err = q.Append(ctx, entry("c1", "y"), true, now)
		check("Append ifPending", err)
		_, err = q.Wake(ctx, "c1", now)
		check("Wake", err)
		_, err = q.Due(ctx, now, 10)
		check("Due", err)
		check("Schedule", q.Schedule(ctx, "c1", now, 1))
		_, err = q.Claim(ctx, "c1", "a", time.Second)
		check("Claim", err)
		check("Release", q.Release(ctx, "c1", "a"))
		_, _, err = q.Head(ctx, "c1")
		check("Head", err)
		_, _, err = q.Ack(ctx, "c1", "a", e.ID)
		check("Ack", err)
		check("Bury", q.Bury(ctx, "c1", "a", e.ID, "r", now))
		_, err = q.Pending(ctx, "c1")
		check("Pending", err)
		_, err = q.Dead(ctx, "c1")
		check("Dead", err)
		_, err = q.Requeue(ctx, "c1", now)
		check("Requeue", err)
		_, err = q.Stats(ctx)
		check("Stats", err)
	})

	t.Run("operations#the-queue the queue works again once Redis is back", func(t *testing.T) {
		s.Restart()
		if ok, err := q.Append(ctx, entry("c1", "z"), false, time.Now()); err != nil || !ok {
			t.Fatalf("Append after Redis came back = %v, %v", ok, err)
		}
	})
}
