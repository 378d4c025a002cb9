package postback

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// partner-api#batches: a fan-out runs every call once, with as many at once as its bound allows
// and never more.
func TestFanOutRunsEveryIndexOnceWithinItsBound(t *testing.T) {
	const n, workers = 50, 16
	var runs [n]atomic.Int32
	var inFlight, peak atomic.Int32
	full := make(chan struct{})
	var once sync.Once
	fanOut(n, workers, func(i int) {
		runs[i].Add(1)
		now := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); now > p && !peak.CompareAndSwap(p, now); p = peak.Load() {
		}
		if now == workers {
			once.Do(func() { close(full) })
		}
		// The first calls wait until the bound is reached, so that a
		// fan-out with fewer goroutines fails here.
		select {
		case <-full:
		case <-time.After(10 * time.Second):
			t.Errorf("call %d: never %d calls in flight at once", i, workers)
		}
	})
	for i := range runs {
		if got := runs[i].Load(); got != 1 {
			t.Errorf("call %d ran %d times, want once", i, got)
		}
	}
	if p := peak.Load(); p != workers {
		t.Errorf("calls in flight at once: %d, want the bound, %d", p, workers)
	}
}

// The pool keeps at most maxIdle goroutines waiting once their tasks are done; the others end.
func TestWorkerPoolKeepsAtMostMaxIdle(t *testing.T) {
	p := &workerPool{tasks: make(chan func()), maxIdle: 2}
	before := runtime.NumGoroutine()
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(10)
	for range 10 {
		p.run(func() {
			started.Done()
			<-release
		})
	}
	started.Wait()
	close(release)
	limit := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(limit) {
			t.Fatalf("%d goroutines left beside the %d before, want at most maxIdle, 2", runtime.NumGoroutine()-before, before)
		}
		runtime.Gosched()
	}
	// What waits takes the next tasks.
	done := make(chan struct{})
	p.run(func() { close(done) })
	<-done
}
