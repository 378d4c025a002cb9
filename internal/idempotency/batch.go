package idempotency

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// maxBatch bounds the scripts sent in one pipeline.
const maxBatch = 64

// batcher sends the scripts of concurrent requests to Redis together: one
// goroutine takes what has queued up while the previous pipeline was out
// and sends it as the next, so that under load many requests share one
// write and one read instead of two system calls and a wake-up each.
type batcher struct {
	client redis.UniversalClient
	ops    chan *scriptOp
	stop   chan struct{}
	done   sync.WaitGroup
	// mu makes close wait for the sends under way, so that no op is
	// queued after the goroutine has gone.
	mu     sync.RWMutex
	closed bool
}

// scriptOp is one script run and, once done is closed, its answer.
type scriptOp struct {
	script *redis.Script
	keys   []string
	args   []any
	val    any
	err    error
	done   chan struct{}
}

func newBatcher(client redis.UniversalClient) *batcher {
	b := &batcher{client: client, ops: make(chan *scriptOp, maxBatch), stop: make(chan struct{})}
	b.done.Add(1)
	go b.run()
	return b
}

// do runs script and waits for its answer. It waits even when ctx ends: a
// script already sent would otherwise run unseen, and every pipeline is
// bounded by the client's own timeouts.
func (b *batcher) do(ctx context.Context, script *redis.Script, keys []string, args ...any) (any, error) {
	op := &scriptOp{script: script, keys: keys, args: args, done: make(chan struct{})}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return nil, errClosed
	}
	select {
	case b.ops <- op:
	case <-ctx.Done():
		b.mu.RUnlock()
		return nil, ctx.Err()
	}
	b.mu.RUnlock()
	<-op.done
	return op.val, op.err
}

func (b *batcher) run() {
	defer b.done.Done()
	batch := make([]*scriptOp, 0, maxBatch)
	for {
		select {
		case op := <-b.ops:
			batch = append(batch[:0], op)
		case <-b.stop:
			// Nothing is queued after stop: answer what was.
			for {
				select {
				case op := <-b.ops:
					b.send([]*scriptOp{op})
				default:
					return
				}
			}
		}
	more:
		for len(batch) < maxBatch {
			select {
			case op := <-b.ops:
				batch = append(batch, op)
			default:
				break more
			}
		}
		b.send(batch)
	}
}

// send runs batch as one pipeline of EVALSHA; a script Redis does not have
// yet (NOSCRIPT, after a restart or on first use) is run again on its own,
// which loads it.
func (b *batcher) send(batch []*scriptOp) {
	ctx := context.Background()
	pipe := b.client.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, op := range batch {
		cmds[i] = pipe.EvalSha(ctx, op.script.Hash(), op.keys, op.args...)
	}
	_, _ = pipe.Exec(ctx)
	for i, op := range batch {
		op.val, op.err = cmds[i].Result()
		if op.err != nil && redis.HasErrorPrefix(op.err, "NOSCRIPT") {
			op.val, op.err = op.script.Run(ctx, b.client, op.keys, op.args...).Result()
		}
		close(op.done)
	}
}

// close stops the goroutine; what it was sending is answered first.
func (b *batcher) close() {
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
