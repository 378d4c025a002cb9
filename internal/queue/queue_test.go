package queue_test

import (
	"fmt"
	"testing"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// AppendSome appends only the entries whose check found updates waiting,
// and answers each at its own index.
func TestAppendSome(t *testing.T) {
	entries := []*queue.Entry{{CallLogID: "a"}, {CallLogID: "b"}, {CallLogID: "c"}, {CallLogID: "d"}}
	var sent []string
	results := queue.AppendSome(entries, []bool{true, false, true, false}, func(some []*queue.Entry) []queue.AppendResult {
		out := make([]queue.AppendResult, len(some))
		for k, e := range some {
			sent = append(sent, e.CallLogID)
			if e.CallLogID == "d" {
				out[k].Err = queue.ErrTooManyPending
			} else {
				out[k].Appended = true
			}
		}
		return out
	})
	if fmt.Sprint(sent) != "[b d]" {
		t.Fatalf("appended %v, want [b d]", sent)
	}
	if results[0] != (queue.AppendResult{}) || !results[1].Appended || results[2] != (queue.AppendResult{}) || results[3].Err != queue.ErrTooManyPending {
		t.Fatalf("results = %+v", results)
	}
	if got := queue.AppendSome(entries, []bool{true, true, true, true}, func([]*queue.Entry) []queue.AppendResult { t.Fatal("nothing to append"); return nil }); len(got) != 4 {
		t.Fatalf("results = %+v", got)
	}
}
