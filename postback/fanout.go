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
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				do(i)
			}
		}()
	}
	wg.Wait()
}
