package redisbatch

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redistest"
)

// pipelineStarted tells, once, that a pipeline is on its way to Redis.
type pipelineStarted chan struct{}

func (pipelineStarted) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (pipelineStarted) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (s pipelineStarted) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		select {
		case s <- struct{}{}:
		default:
		}
		return next(ctx, cmds)
	}
}

// While Redis stalls, a caller that gives up before its turn is answered
// its context's error and its script is never sent, so callers given up on
// do not pile up behind the stall (and a refusal means not stored).
func TestCallerGivenUpWhileRedisStallsIsNotSent(t *testing.T) {
	srv := redistest.Start(t)
	client := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: -1, MaxRetries: -1})
	t.Cleanup(func() { client.Close() })
	started := make(pipelineStarted, 1)
	client.AddHook(started)
	b := New(client)
	t.Cleanup(b.Close)
	incr := redis.NewScript(`return redis.call('INCR', KEYS[1])`)
	ctx := context.Background()
	if err := incr.Load(ctx, client).Err(); err != nil {
		t.Fatal(err)
	}
	<-started // the Load

	srv.Pause()
	first := make(chan error, 1)
	go func() { _, err := b.Run(ctx, incr, []string{"first"}); first <- err }()
	<-started // the first caller's pipeline is out, waiting on the paused Redis

	gaveUp, cancel := context.WithCancel(ctx)
	second := make(chan error, 1)
	go func() { _, err := b.Run(gaveUp, incr, []string{"second"}); second <- err }()
	for len(b.jobs) == 0 {
		runtime.Gosched() // until the second caller's job is queued
	}
	cancel()
	srv.Resume()

	if err := <-first; err != nil {
		t.Fatalf("the caller whose script was sent: %v", err)
	}
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("the caller who gave up: %v, want context.Canceled", err)
	}
	if n, err := client.Exists(ctx, "first", "second").Result(); err != nil || n != 1 {
		t.Fatalf("keys written: %d %v, want only the first caller's", n, err)
	}
	if client.Exists(ctx, "second").Val() != 0 {
		t.Fatal("the script of the caller who gave up ran")
	}
}
