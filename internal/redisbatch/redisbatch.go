// Package redisbatch sends the commands and Lua scripts of concurrent
// callers to Redis together. One goroutine per client takes whatever has
// queued up while the previous pipeline was out and sends it as the next
// one, so under load many postbacks share one write, one read and one
// connection check instead of paying them each; alone, a command goes out
// at once.
//
// The queue's ordering check and the idempotency store share one Batcher
// per Redis client, so a postback's key and its ordering check ride in the
// same pipelines as everyone else's.
package redisbatch

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxPipeline bounds the commands sent in one pipeline; a job larger than
// that (a batch postback) still goes out whole.
const maxPipeline = 128

// ErrClosed answers a command run after Close.
var ErrClosed = errors.New("redisbatch: closed")

// Command is one script run or, without a Script, one plain command (Args
// is then the command and its arguments, as for redis.Client.Do), and,
// once Run, Do or RunAll returns, its answer. A plain command costs Redis
// about half what a script doing the same does.
type Command struct {
	Script *redis.Script
	Keys   []string
	Args   []any

	Val any
	Err error
}

// Batcher is safe for concurrent use. The client stays the caller's.
type Batcher struct {
	client redis.UniversalClient
	jobs   chan *Pending
	stop   chan struct{}
	done   sync.WaitGroup
	// mu makes Close wait for the jobs being queued, so that none is
	// queued after the goroutine has gone.
	mu      sync.RWMutex
	closed  bool
	observe func(commands int, took time.Duration)
	// pipe and cmds belong to the goroutine that sends: kept from one
	// pipeline to the next, they cost no allocation each.
	pipe redis.Pipeliner
	cmds []*redis.Cmd
}

// Option configures a Batcher.
type Option func(*Batcher)

// WithObserver has observe told of every pipeline sent: how many commands
// it carried and how long Redis took to answer them all (a second
// pipeline for scripts Redis did not know included). It runs on the
// sending goroutine, so it must be quick.
func WithObserver(observe func(commands int, took time.Duration)) Option {
	return func(b *Batcher) { b.observe = observe }
}

// Pending is the commands of one caller, sent by Start and answered
// together; Wait waits for the answers.
type Pending struct {
	ctx      context.Context
	commands []Command
	done     chan struct{}
}

// answered is the done of a Pending answered without being queued.
var answered = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// New starts the goroutine that sends the pipelines; Close stops it.
func New(client redis.UniversalClient, opts ...Option) *Batcher {
	b := &Batcher{client: client, jobs: make(chan *Pending, maxPipeline), stop: make(chan struct{})}
	for _, o := range opts {
		o(b)
	}
	b.done.Add(1)
	go b.run()
	return b
}

// Run runs one script and waits for its answer.
func (b *Batcher) Run(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	c := []Command{{Script: script, Keys: keys, Args: args}}
	b.RunAll(ctx, c)
	return c[0].Val, c[0].Err
}

// Do sends one plain command, args being its name and arguments, and
// waits for its answer; a nil reply is redis.Nil.
func (b *Batcher) Do(ctx context.Context, args ...any) (any, error) {
	c := []Command{{Args: args}}
	b.RunAll(ctx, c)
	return c[0].Val, c[0].Err
}

// RunAll runs every command, in one pipeline with those of other callers,
// and fills in each one's answer. A job whose ctx has ended when its turn
// comes is answered ctx's error and not sent, so that callers given up on
// do not pile up behind a Redis that stalls; once sent, it waits for the
// answer even when ctx ends, since a command sent would otherwise run
// unseen, and every pipeline is bounded by the client's own timeouts.
func (b *Batcher) RunAll(ctx context.Context, commands []Command) {
	b.Start(ctx, commands).Wait()
}

// Start queues the commands as RunAll does (waiting only while the queue
// is full) and returns without their answers, so that a caller can put
// other commands in the same pipeline, or do other work, before it Waits.
// The commands are not to be touched until Wait returns.
func (b *Batcher) Start(ctx context.Context, commands []Command) *Pending {
	if len(commands) == 0 {
		return &Pending{done: answered}
	}
	j := &Pending{ctx: ctx, commands: commands, done: make(chan struct{})}
	if err := b.enqueue(ctx, j); err != nil {
		for i := range commands {
			commands[i].Val, commands[i].Err = nil, err
		}
		j.done = answered
	}
	return j
}

// Wait waits until every command of p has its answer.
func (p *Pending) Wait() { <-p.done }

func (b *Batcher) enqueue(ctx context.Context, j *Pending) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	select {
	case b.jobs <- j:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Batcher) run() {
	defer b.done.Done()
	batch := make([]*Pending, 0, maxPipeline)
	for {
		select {
		case j := <-b.jobs:
			batch = append(batch[:0], j)
		case <-b.stop:
			// Nothing is queued after stop: answer what was.
			for {
				select {
				case j := <-b.jobs:
					b.send([]*Pending{j})
				default:
					return
				}
			}
		}
		// Let the goroutines that are ready run first: those about to
		// queue a command then share this pipeline, without a timer.
		runtime.Gosched()
		n := len(batch[0].commands)
	more:
		for n < maxPipeline {
			select {
			case j := <-b.jobs:
				batch = append(batch, j)
				n += len(j.commands)
			default:
				break more
			}
		}
		b.send(batch)
		clear(batch)
	}
}

// send runs the commands of batch as one pipeline, scripts by EVALSHA;
// scripts Redis does not know yet (NOSCRIPT: first use, a restart, a
// failover, a new Cluster node) did not run, and go again whole in a
// second pipeline.
func (b *Batcher) send(batch []*Pending) {
	live := batch[:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			for i := range j.commands {
				j.commands[i].Val, j.commands[i].Err = nil, err
			}
			close(j.done)
			continue
		}
		live = append(live, j)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	ctx := context.Background()
	if b.pipe == nil {
		b.pipe = b.client.Pipeline()
	}
	// Exec empties the pipeline, whatever it answers.
	pipe, cmds := b.pipe, b.cmds[:0]
	for _, j := range batch {
		for i := range j.commands {
			c := &j.commands[i]
			if c.Script == nil {
				cmds = append(cmds, pipe.Do(ctx, c.Args...))
				continue
			}
			cmds = append(cmds, c.Script.EvalSha(ctx, pipe, c.Keys, c.Args...))
		}
	}
	// Each reply is read from its command.
	sent := time.Now()
	_, _ = pipe.Exec(ctx)
	type retry struct {
		command *Command
		cmd     *redis.Cmd
	}
	var again []retry
	k := 0
	for _, j := range batch {
		for i := range j.commands {
			c := &j.commands[i]
			c.Val, c.Err = cmds[k].Result()
			k++
			if c.Script != nil && c.Err != nil && redis.HasErrorPrefix(c.Err, "NOSCRIPT") {
				again = append(again, retry{command: c})
			}
		}
	}
	if len(again) > 0 {
		pipe = b.client.Pipeline()
		for i := range again {
			c := again[i].command
			again[i].cmd = c.Script.Eval(ctx, pipe, c.Keys, c.Args...)
		}
		_, _ = pipe.Exec(ctx)
		for _, r := range again {
			r.command.Val, r.command.Err = r.cmd.Result()
		}
	}
	if b.observe != nil {
		b.observe(len(cmds), time.Since(sent))
	}
	clear(cmds)
	b.cmds = cmds
	for _, j := range batch {
		close(j.done)
	}
}

// Close stops the goroutine; what was queued is answered first.
func (b *Batcher) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	b.done.Wait()
}
