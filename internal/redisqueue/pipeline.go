package redisqueue

import (
	"context"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/callpostback/caddy-postback/internal/redisbatch"
)

// runAll runs script n times, the i-th with the keys and arguments args(i)
// gives: through the batcher when the Queue has one, else in a pipeline
// of its own.
func (q *Queue) runAll(ctx context.Context, script *redis.Script, n int, args func(i int) ([]string, []any)) []redisbatch.Command {
	out := make([]redisbatch.Command, n)
	if q.batcher != nil {
		for i := range out {
			keys, argv := args(i)
			out[i] = redisbatch.Command{Script: script, Keys: keys, Args: argv}
		}
		q.batcher.RunAll(ctx, out)
		return out
	}
	for i, cmd := range runPipelined(ctx, q.client, script, n, args) {
		out[i].Val, out[i].Err = cmd.Result()
	}
	return out
}

// run runs one script: through the batcher when the Queue has one, so
// that the drainers' steps share pipelines with everything else.
func (q *Queue) run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	if q.batcher != nil {
		return q.batcher.Run(ctx, script, keys, args...)
	}
	return script.Run(ctx, q.client, keys, args...).Result()
}

// do sends one plain command, args being its name and arguments: through
// the batcher when the Queue has one. A nil reply is redis.Nil.
func (q *Queue) do(ctx context.Context, args ...any) (any, error) {
	if q.batcher != nil {
		return q.batcher.Do(ctx, args...)
	}
	return q.client.Do(ctx, args...).Result()
}

// doAll sends n plain commands, the i-th being args(i), in one pipeline:
// the batcher's when there is one.
func (q *Queue) doAll(ctx context.Context, n int, args func(i int) []any) []redisbatch.Command {
	out, wait := q.startAll(ctx, n, args)
	wait()
	return out
}

// startAll is doAll whose commands are in the batcher's queue when it
// returns, answered once wait returns; without a batcher they are sent by
// wait.
func (q *Queue) startAll(ctx context.Context, n int, args func(i int) []any) (out []redisbatch.Command, wait func()) {
	out = make([]redisbatch.Command, n)
	for i := range out {
		out[i].Args = args(i)
	}
	if q.batcher != nil {
		return out, q.batcher.Start(ctx, out).Wait
	}
	return out, func() {
		pipe := q.client.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range out {
			cmds[i] = pipe.Do(ctx, out[i].Args...)
		}
		// Each reply is read from its command.
		_, _ = pipe.Exec(ctx)
		for i, cmd := range cmds {
			out[i].Val, out[i].Err = cmd.Result()
		}
	}
}

// runPipelined runs script n times in one pipeline, the i-th with the keys
// and arguments args(i) gives. Scripts go by their digest (EVALSHA); those
// the server does not know yet (NOSCRIPT: a restart, a failover, a new
// Cluster node) did not run, and are sent again whole.
func runPipelined(ctx context.Context, client redis.UniversalClient, script *redis.Script, n int, args func(i int) ([]string, []any)) []*redis.Cmd {
	return runPipelinedWith(ctx, client, script, n, args, nil).scripts
}

// pipelined are the replies of runPipelinedWith.
type pipelined struct {
	scripts []*redis.Cmd
	extra   []*redis.IntCmd
}

// runPipelinedWith is runPipelined with more commands, which extra adds,
// sent in the same pipeline.
func runPipelinedWith(ctx context.Context, client redis.UniversalClient, script *redis.Script, n int, args func(i int) ([]string, []any), extra func(redis.Pipeliner) []*redis.IntCmd) pipelined {
	cmds := make([]*redis.Cmd, n)
	pipe := client.Pipeline()
	for i := range n {
		keys, argv := args(i)
		cmds[i] = script.EvalSha(ctx, pipe, keys, argv...)
	}
	var out pipelined
	if extra != nil {
		out.extra = extra(pipe)
	}
	out.scripts = cmds
	// Each reply is read from its command.
	_, _ = pipe.Exec(ctx)
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT") {
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return out
	}
	pipe = client.Pipeline()
	for _, i := range again {
		keys, argv := args(i)
		cmds[i] = script.Eval(ctx, pipe, keys, argv...)
	}
	_, _ = pipe.Exec(ctx)
	return out
}
