package postback

import (
	"sync"
	"sync/atomic"
)

// fanOut runs do(0) … do(n-1) on at most workers goroutines, taking the
// indexes in order: no goroutine or channel per call. Edge.Apply sends
// a postback's calls with it; a dry run looks them up with it.
func fanOut(n, workers int, do func(i int)) {
	if n == 1 {
		do(0)
		return
	}
	workers = min(n, max(workers, 1))
	var next atomic.Int64
	var wg sync.WaitGroup
	wg.Add(workers)
	for range workers {
		fanWorkers.run(func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				do(i)
			}
		})
	}
	wg.Wait()
}

// fanWorkers keeps the goroutines of finished fan-outs for the next ones:
// a new goroutine grows its stack under its first call-store request, step
// by step, each step copying the request's frames (3% of Caddy's CPU in a
// batch, BENCHMARKS.md).
var fanWorkers = &workerPool{tasks: make(chan func()), maxIdle: 256}

type workerPool struct {
	tasks chan func()
	// maxIdle bounds the goroutines kept waiting between fan-outs.
	maxIdle int32
	idle    atomic.Int32
}

// run gives task to a waiting goroutine, or to a new one if none waits.
func (p *workerPool) run(task func()) {
	select {
	case p.tasks <- task:
	default:
		go p.work(task)
	}
}

func (p *workerPool) work(task func()) {
	for {
		task()
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		task = <-p.tasks
		p.idle.Add(-1)
	}
}
