package caddymodule

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// operations#the-queue-in-production: a warning that would repeat per request is logged once per
// 10 s, with how many times it happened.
func TestOrderingSkippedWarningIsThrottled(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	a := &App{logger: zap.New(core)}
	for range 50 {
		a.orderingSkipped("c1", errors.New("redis: connection refused"))
	}
	if n := logs.Len(); n != 1 {
		t.Fatalf("%d warnings for 50 calls sent past the ordering check, want 1", n)
	}
	if got := logs.All()[0].ContextMap()["count"]; got != int64(1) {
		t.Fatalf("first line's count = %v, want 1", got)
	}
	// The next line, once 10 s have passed, carries the 49 held back and its own.
	a.orderingWarn.next = a.orderingWarn.next.Add(-defaultWarningInterval)
	a.orderingSkipped("c1", errors.New("redis: connection refused"))
	if n := logs.Len(); n != 2 {
		t.Fatalf("%d warnings after 10 s, want 2", n)
	}
	if got := logs.All()[1].ContextMap()["count"]; got != int64(50) {
		t.Fatalf("second line's count = %v, want 50", got)
	}
}
