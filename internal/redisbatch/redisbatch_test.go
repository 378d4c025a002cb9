package redisbatch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redisbatch"
	"github.com/callpostback/caddy-postback/internal/redistest"
)

// incr adds ARGV[1] to KEYS[1] and answers the new value with the key.
var incr = redis.NewScript(`return {KEYS[1], redis.call('INCRBY', KEYS[1], ARGV[1])}`)

func newBatcher(t *testing.T, client redis.UniversalClient) *redisbatch.Batcher {
	b := redisbatch.New(client)
	t.Cleanup(b.Close)
	return b
}

// Each caller gets the answers of its own scripts, in its order, however
// the pipelines were cut; a job larger than a pipeline goes out whole.
func TestConcurrentCallersGetTheirOwnAnswers(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	b := newBatcher(t, client)
	ctx := context.Background()
	const callers, each = 40, 3
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := each
			if c == 0 {
				n = 300 // more than one pipeline's worth
			}
			scripts := make([]redisbatch.Command, n)
			for i := range scripts {
				scripts[i] = redisbatch.Command{Script: incr, Keys: []string{fmt.Sprintf("c%d:%d", c, i)}, Args: []any{i + 1}}
			}
			b.RunAll(ctx, scripts)
			for i, s := range scripts {
				want := fmt.Sprintf("[c%d:%d %d]", c, i, i+1)
				if s.Err != nil || fmt.Sprint(s.Val) != want {
					errs <- fmt.Errorf("caller %d script %d: %v %v, want %s", c, i, s.Val, s.Err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// A script Redis no longer has (a restart, SCRIPT FLUSH) is loaded again,
// for every caller of the pipeline that met NOSCRIPT; a script error is
// that script's answer alone.
func TestScriptsReloadedAndErrorsKeptApart(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	b := newBatcher(t, client)
	ctx := context.Background()
	failing := redis.NewScript(`return redis.error_reply('BROKEN on purpose')`)
	for round := range 3 {
		if err := client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		scripts := []redisbatch.Command{
			{Script: incr, Keys: []string{"a"}, Args: []any{1}},
			{Script: failing},
			{Script: incr, Keys: []string{"b"}, Args: []any{2}},
		}
		b.RunAll(ctx, scripts)
		if fmt.Sprint(scripts[0].Val) != fmt.Sprintf("[a %d]", round+1) || scripts[0].Err != nil {
			t.Fatalf("round %d: first script %v %v", round, scripts[0].Val, scripts[0].Err)
		}
		if scripts[1].Err == nil || scripts[1].Err.Error() != "BROKEN on purpose" {
			t.Fatalf("round %d: failing script answered %v %v", round, scripts[1].Val, scripts[1].Err)
		}
		if fmt.Sprint(scripts[2].Val) != fmt.Sprintf("[b %d]", 2*(round+1)) || scripts[2].Err != nil {
			t.Fatalf("round %d: third script %v %v", round, scripts[2].Val, scripts[2].Err)
		}
	}
}

// Plain commands ride in the pipelines beside scripts, each with its own
// answer: a value, a nil reply (redis.Nil) or an error; a script's reload
// after NOSCRIPT sends none of them twice.
func TestPlainCommandsBesideScripts(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	b := newBatcher(t, client)
	ctx := context.Background()
	if err := client.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	commands := []redisbatch.Command{
		{Args: []any{"incrby", "plain", 5}},
		{Script: incr, Keys: []string{"scripted"}, Args: []any{1}},
		{Args: []any{"get", "missing"}},
		{Args: []any{"lpush", "plain", "x"}},
	}
	b.RunAll(ctx, commands)
	if commands[0].Val != int64(5) || commands[0].Err != nil {
		t.Errorf("INCRBY answered %v %v, want 5 once", commands[0].Val, commands[0].Err)
	}
	if fmt.Sprint(commands[1].Val) != "[scripted 1]" || commands[1].Err != nil {
		t.Errorf("script answered %v %v", commands[1].Val, commands[1].Err)
	}
	if !errors.Is(commands[2].Err, redis.Nil) {
		t.Errorf("GET of a missing key answered %v %v, want redis.Nil", commands[2].Val, commands[2].Err)
	}
	if commands[3].Err == nil || !strings.HasPrefix(commands[3].Err.Error(), "WRONGTYPE") {
		t.Errorf("LPUSH on a string answered %v %v, want WRONGTYPE", commands[3].Val, commands[3].Err)
	}
	if v, err := b.Do(ctx, "get", "plain"); v != "5" || err != nil {
		t.Errorf("Do(GET) = %v %v, want 5", v, err)
	}
}

// A Redis that cannot be reached is every script's error, not a hang.
func TestUnreachableRedisIsAnError(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	b := newBatcher(t, client)
	srv.Stop()
	if _, err := b.Run(context.Background(), incr, []string{"a"}, 1); err == nil {
		t.Fatal("a stopped Redis answered")
	}
}

// After Close, nothing is sent and every caller hears so at once; Close
// twice is fine. A caller whose context ended before its job was queued
// hears that.
func TestCloseAndCancelledContext(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	b := redisbatch.New(client)
	ctx := context.Background()
	if v, err := b.Run(ctx, incr, []string{"a"}, 1); err != nil || fmt.Sprint(v) != "[a 1]" {
		t.Fatalf("before close: %v %v", v, err)
	}
	b.Close()
	b.Close()
	if _, err := b.Run(ctx, incr, []string{"a"}, 1); !errors.Is(err, redisbatch.ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", err)
	}
	if got := client.Get(ctx, "a").Val(); got != "1" {
		t.Fatalf("a script ran after close: a = %s", got)
	}

	open := newBatcher(t, client)
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	// The job may still be queued if the channel has room: either answer
	// is fine, as long as it is the real one.
	v, err := open.Run(cancelled, incr, []string{"b"}, 1)
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if err == nil && fmt.Sprint(v) != "[b 1]" {
		t.Fatalf("cancelled but queued: %v", v)
	}
}

// On Cluster a pipeline spans nodes; every caller still gets its answers.
func TestCluster(t *testing.T) {
	client := redis.NewClusterClient(&redis.ClusterOptions{Addrs: redistest.StartCluster(t, 3)})
	t.Cleanup(func() { client.Close() })
	b := newBatcher(t, client)
	scripts := make([]redisbatch.Command, 64)
	for i := range scripts {
		scripts[i] = redisbatch.Command{Script: incr, Keys: []string{fmt.Sprintf("k%d", i)}, Args: []any{i}}
	}
	b.RunAll(context.Background(), scripts)
	for i, s := range scripts {
		if s.Err != nil || fmt.Sprint(s.Val) != fmt.Sprintf("[k%d %d]", i, i) {
			t.Fatalf("script %d: %v %v", i, s.Val, s.Err)
		}
	}
}

// The observer is told of every pipeline: together they carried every
// script once (a first use, which Redis answers NOSCRIPT and which goes
// again whole, included), each with the time Redis took to answer.
func TestObserverSeesEveryPipeline(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	var mu sync.Mutex
	var pipelines, scripts int
	var slowest time.Duration
	b := redisbatch.New(client, redisbatch.WithObserver(func(n int, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		pipelines++
		scripts += n
		slowest = max(slowest, took)
	}))
	t.Cleanup(b.Close)
	const callers, each = 20, 3
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			s := make([]redisbatch.Command, each)
			for i := range s {
				s[i] = redisbatch.Command{Script: incr, Keys: []string{fmt.Sprintf("o%d:%d", c, i)}, Args: []any{1}}
			}
			b.RunAll(context.Background(), s)
			for _, r := range s {
				if r.Err != nil {
					t.Error(r.Err)
				}
			}
		})
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if scripts != callers*each || pipelines < 1 || pipelines > callers || slowest <= 0 {
		t.Fatalf("observed %d scripts in %d pipelines, slowest %v; want %d scripts in 1 to %d pipelines, each with its time",
			scripts, pipelines, slowest, callers*each, callers)
	}
}

// Commands Started one after another, before any is waited for, go out in
// one pipeline: here the sender is held, inside the observer of the
// pipeline before, until both are queued. A Start after Close is answered
// at once.
func TestStartedCommandsShareThePipeline(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr()})
	t.Cleanup(func() { client.Close() })
	held, release := make(chan struct{}), make(chan struct{})
	sizes := make(chan int, 8)
	var once sync.Once
	b := redisbatch.New(client, redisbatch.WithObserver(func(n int, _ time.Duration) {
		sizes <- n
		once.Do(func() {
			close(held)
			<-release
		})
	}))
	ctx := context.Background()
	first := b.Start(ctx, []redisbatch.Command{{Args: []any{"set", "k", "1"}}})
	<-held
	incrBy := []redisbatch.Command{{Args: []any{"incrby", "k", 2}}}
	read := []redisbatch.Command{{Args: []any{"incrby", "k", 10}}, {Args: []any{"get", "k"}}}
	a, c := b.Start(ctx, incrBy), b.Start(ctx, read)
	close(release)
	first.Wait()
	c.Wait()
	a.Wait()
	got := fmt.Sprintf("%v %v, %v %v, %q %v", incrBy[0].Val, incrBy[0].Err, read[0].Val, read[0].Err, read[1].Val, read[1].Err)
	if got != `3 <nil>, 13 <nil>, "13" <nil>` {
		t.Fatalf("answers: %s", got)
	}
	b.Close()
	if got := [2]int{<-sizes, <-sizes}; got != [2]int{1, 3} {
		t.Fatalf("pipelines of %v commands, want [1 3]", got)
	}
	after := []redisbatch.Command{{Args: []any{"set", "k", "0"}}}
	b.Start(ctx, after).Wait()
	if !errors.Is(after[0].Err, redisbatch.ErrClosed) {
		t.Fatalf("after close: %v, want ErrClosed", after[0].Err)
	}
}
