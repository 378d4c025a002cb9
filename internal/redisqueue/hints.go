package redisqueue

import (
	"hash/maphash"
	"sync/atomic"
)

// waitingHints remembers, on this instance, calls lately found with
// updates waiting, so that the ordering check of their next update goes
// straight to the append script (one round trip) instead of asking first
// (two). A hint only picks the way; both ways decide in Redis, so a hint
// that another instance's drain made stale costs an entry sent for
// nothing, never an update out of order. Fixed size: a call whose slot
// another took is merely asked first again.
type waitingHints struct {
	slots [4096]atomic.Uint64
}

var hintSeed = maphash.MakeSeed()

func hintOf(callLogID string) uint64 {
	return maphash.String(hintSeed, callLogID) | 1 // never 0, the empty slot
}

func (w *waitingHints) has(callLogID string) bool {
	h := hintOf(callLogID)
	return w.slots[h%uint64(len(w.slots))].Load() == h
}

func (w *waitingHints) add(callLogID string) {
	h := hintOf(callLogID)
	w.slots[h%uint64(len(w.slots))].Store(h)
}

func (w *waitingHints) remove(callLogID string) {
	h := hintOf(callLogID)
	w.slots[h%uint64(len(w.slots))].CompareAndSwap(h, 0)
}
