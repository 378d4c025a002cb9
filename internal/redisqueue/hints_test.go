package redisqueue

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/queue"
	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// askedCounter counts the waiting questions (LLEN) a client sends.
type askedCounter struct{ n atomic.Int64 }

func (c *askedCounter) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *askedCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.count([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}
func (c *askedCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.count(cmds)
		return next(ctx, cmds)
	}
}
func (c *askedCounter) count(cmds []redis.Cmder) {
	for _, cmd := range cmds {
		if cmd.Name() == "llen" {
			c.n.Add(1)
		}
	}
}

// operations#the-queue-in-production: the ordering check asks first only for calls this instance has not lately
// found with updates waiting; a hint made stale by a drain elsewhere costs one append that stores
// nothing, and is dropped.
func TestOrderingCheckSkipsTheQuestionForCallsFoundWaiting(t *testing.T) {
	eachWay(t, func(t *testing.T, opts ...Option) {
		checkSkipsTheQuestionForCallsFoundWaiting(t, opts...)
	})
}

// eachWay runs test on a Queue sending its own pipelines and on one whose
// commands go through a batcher, as in production (where the check of a
// single call takes a way of its own).
func eachWay(t *testing.T, test func(t *testing.T, opts ...Option)) {
	t.Run("own pipelines", func(t *testing.T) { test(t) })
	t.Run("batcher", func(t *testing.T) {
		test(t, func(q *Queue) {
			b := redisbatch.New(q.client)
			t.Cleanup(b.Close)
			q.batcher = b
		})
	})
}

func checkSkipsTheQuestionForCallsFoundWaiting(t *testing.T, opts ...Option) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	asked := &askedCounter{}
	c.AddHook(asked)
	q := New(c, "", opts...)
	check := func(call string) queue.AppendResult {
		e := entry(call, `{"b":2}`)
		return q.AppendAll(ctx, []*queue.Entry{e}, queue.AppendOptions{IfPending: true, Due: time.Now()})[0]
	}

	if r := check("c1"); r.Err != nil || r.Appended {
		t.Fatalf("check of a call with nothing waiting = %+v", r)
	}
	if asked.n.Load() != 1 {
		t.Fatalf("questions = %d, want 1", asked.n.Load())
	}
	mustAppend(t, q, entry("c1", `{"a":1}`)) // the call is live: its update waits
	if r := check("c1"); r.Err != nil || !r.Appended {
		t.Fatalf("check behind a waiting update = %+v, want appended", r)
	}
	if asked.n.Load() != 1 || patchesOf(t, q, "c1") != `{"a":1} {"b":2}` {
		t.Fatalf("questions = %d, pending %s; want no new question and both updates in order", asked.n.Load(), patchesOf(t, q, "c1"))
	}
	// Another instance drains the call.
	if err := c.Del(ctx, q.keysOf("c1").list).Err(); err != nil {
		t.Fatal(err)
	}
	if r := check("c1"); r.Err != nil || r.Appended {
		t.Fatalf("check with a stale hint = %+v, want not appended", r)
	}
	if asked.n.Load() != 1 || patchesOf(t, q, "c1") != "" {
		t.Fatalf("questions = %d, pending %q", asked.n.Load(), patchesOf(t, q, "c1"))
	}
	if r := check("c1"); r.Err != nil || r.Appended || asked.n.Load() != 2 {
		t.Fatalf("check after the stale hint = %+v with %d questions; want asked again", r, asked.n.Load())
	}
	// Another instance queues an update: without a hint, this one asks and
	// queues its update behind.
	mustAppend(t, q, entry("c1", `{"c":3}`))
	q.hints.remove("c1")
	if r := check("c1"); r.Err != nil || !r.Appended || asked.n.Load() != 3 || patchesOf(t, q, "c1") != `{"c":3} {"b":2}` {
		t.Fatalf("check behind another instance's update = %+v with %d questions, pending %s; want asked and queued behind",
			r, asked.n.Load(), patchesOf(t, q, "c1"))
	}
}

// NothingWaiting answers, writing nothing, which calls have no updates waiting; a call found
// waiting is hinted, so that its append is not asked about a second time.
func TestNothingWaiting(t *testing.T) {
	ctx := context.Background()
	c := newClient(t, redistest.Start(t).Addr())
	asked := &askedCounter{}
	c.AddHook(asked)
	q := New(c, "")
	mustAppend(t, q, entry("busy", `{"a":1}`))
	q.hints.remove("busy") // as if another instance had queued it
	nothing, err := q.NothingWaiting(ctx, []string{"idle", "busy"})
	if err != nil || len(nothing) != 2 || !nothing[0] || nothing[1] {
		t.Fatalf("NothingWaiting = %v, %v; want [true false]", nothing, err)
	}
	if asked.n.Load() != 2 || !q.hints.has("busy") || q.hints.has("idle") {
		t.Fatalf("questions %d, hints busy %v idle %v", asked.n.Load(), q.hints.has("busy"), q.hints.has("idle"))
	}
	r := q.AppendAll(ctx, []*queue.Entry{entry("busy", `{"b":2}`)}, queue.AppendOptions{IfPending: true, Due: time.Now()})[0]
	if r.Err != nil || !r.Appended || asked.n.Load() != 2 || patchesOf(t, q, "busy") != `{"a":1} {"b":2}` {
		t.Fatalf("append behind = %+v after %d questions, pending %s", r, asked.n.Load(), patchesOf(t, q, "busy"))
	}
	k := q.keysOf("idle")
	if n, err := c.Exists(ctx, k.list, k.meta, k.dead, k.lease).Result(); err != nil || n != 0 {
		t.Fatalf("asking about a call with nothing waiting wrote %d of its keys (%v)", n, err)
	}
}

// operations#when-redis-is-down: an ordering check whose read went unanswered wrote nothing, and
// says so, so the edge does not ask Redis again to settle it; one whose append went out (a call
// hinted waiting) may have stored the entry, and does not.
func TestOrderingCheckUnansweredSaysWhetherItWrote(t *testing.T) {
	eachWay(t, checkUnansweredSaysWhetherItWrote)
}

func checkUnansweredSaysWhetherItWrote(t *testing.T, qopts ...Option) {
	ctx := context.Background()
	s := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: time.Millisecond})
	t.Cleanup(func() { c.Close() })
	q := New(c, "", qopts...)
	s.Stop()
	opts := queue.AppendOptions{IfPending: true, Due: time.Now()}

	q.hints.add("busy")
	for i, r := range q.AppendAll(ctx, []*queue.Entry{entry("idle", `{"a":1}`), entry("busy", `{"a":1}`)}, opts) {
		if r.Err == nil || r.Appended || !r.Unwritten {
			t.Errorf("entry %d of a check whose read failed = %+v, want an error, unwritten", i, r)
		}
	}
	if r := q.AppendAll(ctx, []*queue.Entry{entry("idle", `{"b":2}`)}, opts)[0]; r.Err == nil || r.Appended || !r.Unwritten {
		t.Errorf("check of one call whose read failed = %+v, want an error, unwritten", r)
	}
	r := q.AppendAll(ctx, []*queue.Entry{entry("busy", `{"b":2}`)}, opts)[0]
	if r.Err == nil || r.Appended || r.Unwritten {
		t.Errorf("check of a call hinted waiting, its append unanswered = %+v, want an error, maybe written", r)
	}
}
