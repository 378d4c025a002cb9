package queuetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/callpostback/caddy-postback/internal/queue"
)

// Reasons of the dead letters the suite makes, as the drainer writes them.
const (
	reasonNotFound = "not_found: call not found"
	reasonRejected = "rejected: revenue_paid_out too large"
)

// RunDead exercises the dead-letter listing, requeue and bounds of
// docs/operations.md#dead-letters on q, fresh for each subtest.
func RunDead(t *testing.T, newQueue func(t *testing.T) queue.Queue) {
	ctx := context.Background()
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)

	// bury appends an entry to a call and buries it at at.
	bury := func(t *testing.T, q queue.Queue, call, webhook, account, patch, reason string, at time.Time) queue.Entry {
		t.Helper()
		e := &queue.Entry{CallLogID: call, Account: account, Webhook: webhook, RequestID: "req-" + patch, AcceptedAt: base, Patch: []byte(patch)}
		pending, err := q.Pending(ctx, call)
		if err != nil || len(pending) != 0 {
			t.Fatalf("bury in %s: call has entries waiting (%v, %v)", call, pending, err)
		}
		if _, err := q.Append(ctx, e, false, base); err != nil {
			t.Fatal(err)
		}
		if ok, err := q.Claim(ctx, call, "suite", time.Minute); err != nil || !ok {
			t.Fatalf("Claim = %v, %v", ok, err)
		}
		if err := q.Bury(ctx, call, "suite", e.ID, reason, at); err != nil {
			t.Fatalf("Bury: %v", err)
		}
		if err := q.Release(ctx, call, "suite"); err != nil {
			t.Fatal(err)
		}
		return *e
	}
	// scenario: ten calls, five of webhook acme (account acct_1) and five of
	// beta (acct_2), call i dead at base+i minutes, reasons alternating; the
	// even calls have a second, older dead letter with the other reason.
	scenario := func(t *testing.T, q queue.Queue) {
		t.Helper()
		for i := 0; i < 10; i++ {
			webhook, account := "acme", "acct_1"
			if i%2 == 1 {
				webhook, account = "beta", "acct_2"
			}
			call := fmt.Sprintf("call-%02d", i)
			reason, other := reasonNotFound, reasonRejected
			if i%4 >= 2 {
				reason, other = other, reason
			}
			if i%2 == 0 {
				bury(t, q, call, webhook, account, fmt.Sprintf(`{"revenue_paid_out":%d.00}`, i), other, base.Add(time.Duration(i)*time.Minute-30*time.Second))
			}
			bury(t, q, call, webhook, account, fmt.Sprintf(`{"revenue_paid_out":%d.50}`, i), reason, base.Add(time.Duration(i)*time.Minute))
		}
	}
	list := func(t *testing.T, q queue.Queue, f queue.DeadFilter, limit int) []queue.DeadCall {
		t.Helper()
		var all []queue.DeadCall
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > 100 {
				t.Fatal("pagination does not end")
			}
			page, err := q.ListDead(ctx, f, cursor, limit)
			if err != nil {
				t.Fatalf("ListDead: %v", err)
			}
			if len(page.Calls) > limit {
				t.Fatalf("page of %d calls over limit %d", len(page.Calls), limit)
			}
			all = append(all, page.Calls...)
			if page.Next == "" {
				return all
			}
			cursor = page.Next
		}
	}
	ids := func(calls []queue.DeadCall) string {
		var out []string
		for _, c := range calls {
			out = append(out, c.CallLogID)
		}
		return strings.Join(out, " ")
	}

	t.Run("operations#dead-letters the list is newest first, each call summed up", func(t *testing.T) {
		q := newQueue(t)
		scenario(t, q)
		calls := list(t, q, queue.DeadFilter{}, 100)
		if got := ids(calls); got != "call-09 call-08 call-07 call-06 call-05 call-04 call-03 call-02 call-01 call-00" {
			t.Fatalf("order = %s", got)
		}
		c := calls[1] // call-08: two letters, rejected then not_found
		if c.Count != 2 || !c.Oldest.Equal(base.Add(8*time.Minute-30*time.Second)) || !c.Newest.Equal(base.Add(8*time.Minute)) ||
			fmt.Sprint(c.Reasons) != fmt.Sprint([]string{reasonRejected, reasonNotFound}) {
			t.Fatalf("call-08 = %+v", c)
		}
		if c := calls[0]; c.Count != 1 || !c.Oldest.Equal(c.Newest) || fmt.Sprint(c.Reasons) != fmt.Sprint([]string{reasonNotFound}) {
			t.Fatalf("call-09 = %+v", c)
		}
	})

	t.Run("operations#dead-letters each filter", func(t *testing.T) {
		q := newQueue(t)
		scenario(t, q)
		for _, tc := range []struct {
			name string
			f    queue.DeadFilter
			want string
		}{
			{"webhook", queue.DeadFilter{Webhook: "beta"}, "call-09 call-07 call-05 call-03 call-01"},
			{"account", queue.DeadFilter{Account: "acct_1"}, "call-08 call-06 call-04 call-02 call-00"},
			{"reason", queue.DeadFilter{Reason: "too large"}, "call-08 call-07 call-06 call-04 call-03 call-02 call-00"},
			{"since", queue.DeadFilter{Since: base.Add(6 * time.Minute)}, "call-09 call-08 call-07 call-06"},
			{"all four", queue.DeadFilter{Webhook: "acme", Account: "acct_1", Reason: "not_found", Since: base.Add(2 * time.Minute)}, "call-08 call-06 call-04"},
			{"no match", queue.DeadFilter{Webhook: "nobody"}, ""},
		} {
			if got := ids(list(t, q, tc.f, 100)); got != tc.want {
				t.Errorf("%s: calls = %q, want %q", tc.name, got, tc.want)
			}
		}
		// A filtered summary counts only the matching letters.
		calls := list(t, q, queue.DeadFilter{Reason: "not_found", Webhook: "acme"}, 100)
		if len(calls) == 0 || calls[0].CallLogID != "call-08" || calls[0].Count != 1 || !calls[0].Oldest.Equal(base.Add(8*time.Minute)) {
			t.Fatalf("filtered summary = %+v", calls)
		}
		calls = list(t, q, queue.DeadFilter{Since: base.Add(8*time.Minute - 40*time.Second)}, 100)
		if len(calls) != 2 || calls[1].CallLogID != "call-08" || calls[1].Count != 2 {
			t.Fatalf("since counts = %+v", calls)
		}
	})

	t.Run("operations#dead-letters pagination over more calls than a page", func(t *testing.T) {
		q := newQueue(t)
		scenario(t, q)
		want := ids(list(t, q, queue.DeadFilter{}, 100))
		for _, limit := range []int{1, 3, 4, 10} {
			if got := ids(list(t, q, queue.DeadFilter{}, limit)); got != want {
				t.Errorf("limit %d: %s, want %s", limit, got, want)
			}
		}
		if got := ids(list(t, q, queue.DeadFilter{Webhook: "acme"}, 2)); got != "call-08 call-06 call-04 call-02 call-00" {
			t.Errorf("filtered pages: %s", got)
		}
		page, err := q.ListDead(ctx, queue.DeadFilter{}, "", 4)
		if err != nil || len(page.Calls) != 4 || page.Next == "" {
			t.Fatalf("first page = %+v, %v", page, err)
		}
		if _, err := q.ListDead(ctx, queue.DeadFilter{}, "not a cursor!", 4); err == nil {
			t.Fatal("a cursor the queue never gave was accepted")
		}
	})

	t.Run("operations#dead-letters a call of two webhooks is listed under each, with its own letters", func(t *testing.T) {
		q := newQueue(t)
		bury(t, q, "mixed", "acme", "acct_1", `{"a":1}`, reasonNotFound, base)
		bury(t, q, "mixed", "beta", "acct_2", `{"b":1}`, reasonRejected, base.Add(time.Minute))
		bury(t, q, "other", "acme", "acct_1", `{"a":2}`, reasonNotFound, base.Add(30*time.Second))
		acme := list(t, q, queue.DeadFilter{Webhook: "acme"}, 100)
		if ids(acme) != "other mixed" || acme[1].Count != 1 || fmt.Sprint(acme[1].Reasons) != fmt.Sprint([]string{reasonNotFound}) {
			t.Fatalf("acme = %+v", acme)
		}
		if got := ids(list(t, q, queue.DeadFilter{}, 100)); got != "mixed other" {
			t.Fatalf("all = %s", got)
		}
	})

	t.Run("operations#dead-letters a revived letter, the last one buried, is removed by its ack", func(t *testing.T) {
		q := newQueue(t)
		a := bury(t, q, "c1", "acme", "acct_1", `{"n":1}`, reasonRejected, base)
		if n, err := q.Revive(ctx, "c1", []queue.Entry{a}, base); err != nil || n != 1 {
			t.Fatalf("Revive = %d, %v", n, err)
		}
		if ok, err := q.Claim(ctx, "c1", "suite", time.Minute); err != nil || !ok {
			t.Fatalf("Claim = %v, %v", ok, err)
		}
		if _, _, err := q.Ack(ctx, "c1", "suite", a.ID); err != nil {
			t.Fatalf("Ack: %v", err)
		}
		if pending, _ := q.Pending(ctx, "c1"); len(pending) != 0 {
			t.Fatalf("the applied letter is still waiting: %+v", pending)
		}
	})

	t.Run("operations#dead-letters revive puts the letters named back at the head, in order, edits kept", func(t *testing.T) {
		q := newQueue(t)
		a := bury(t, q, "c1", "acme", "acct_1", `{"n":1}`, reasonNotFound, base)
		b := bury(t, q, "c1", "beta", "acct_2", `{"n":2}`, reasonRejected, base.Add(time.Second))
		c := bury(t, q, "c1", "acme", "acct_1", `{"n":3}`, reasonNotFound, base.Add(2*time.Second))
		if _, err := q.Append(ctx, &queue.Entry{CallLogID: "c1", Webhook: "acme", AcceptedAt: base, Patch: []byte(`{"n":4}`)}, false, base); err != nil {
			t.Fatal(err)
		}
		edited := c
		edited.Patch = []byte(`{"n":30}`)
		edited.EditedAt = base.Add(time.Hour)
		edited.Edited = []string{"n"}
		n, err := q.Revive(ctx, "c1", []queue.Entry{a, edited}, base)
		if err != nil || n != 2 {
			t.Fatalf("Revive = %d, %v", n, err)
		}
		pending, _ := q.Pending(ctx, "c1")
		var got []string
		for _, e := range pending {
			got = append(got, string(e.Patch))
		}
		if strings.Join(got, " ") != `{"n":1} {"n":30} {"n":4}` {
			t.Fatalf("pending = %v", got)
		}
		if p := pending[1]; !p.EditedAt.Equal(edited.EditedAt) || fmt.Sprint(p.Edited) != "[n]" || p.ID != c.ID || p.Webhook != "acme" {
			t.Fatalf("edited entry = %+v", p)
		}
		if p := pending[0]; !p.EditedAt.IsZero() || p.Edited != nil || p.RequestID != a.RequestID {
			t.Fatalf("unedited entry = %+v", p)
		}
		dead, _ := q.Dead(ctx, "c1")
		if len(dead) != 1 || dead[0].ID != b.ID {
			t.Fatalf("dead left = %+v", dead)
		}
		if got := list(t, q, queue.DeadFilter{Webhook: "acme"}, 100); len(got) != 0 {
			t.Fatalf("acme still listed: %+v", got)
		}
		if got := list(t, q, queue.DeadFilter{}, 100); len(got) != 1 || got[0].Count != 1 || !got[0].Newest.Equal(base.Add(time.Second)) {
			t.Fatalf("listing after revive = %+v", got)
		}
		// Named twice, or gone: nothing moves.
		if _, err := q.Revive(ctx, "c1", []queue.Entry{b, a}, base); !errors.Is(err, queue.ErrDeadChanged) {
			t.Fatalf("Revive of a letter gone = %v", err)
		}
		if dead, _ := q.Dead(ctx, "c1"); len(dead) != 1 {
			t.Fatalf("a refused revive moved letters: %+v", dead)
		}
		if pending, _ := q.Pending(ctx, "c1"); len(pending) != 3 {
			t.Fatalf("a refused revive moved letters: %d pending", len(pending))
		}
		if due, _ := q.Due(ctx, base, 10); len(due) != 1 || due[0].CallLogID != "c1" || due[0].Attempt != 0 {
			t.Fatalf("revived call not due: %+v", due)
		}
	})

	t.Run("operations#dead-letters trimming by age and by count, oldest first", func(t *testing.T) {
		q := newQueue(t)
		for i := 0; i < 5; i++ {
			bury(t, q, "c1", "acme", "acct_1", fmt.Sprintf(`{"n":%d}`, i), reasonNotFound, base.Add(time.Duration(i)*time.Minute))
		}
		bury(t, q, "old", "acme", "acct_1", `{"old":1}`, reasonNotFound, base.Add(-time.Minute))
		bury(t, q, "new", "acme", "acct_1", `{"new":1}`, reasonNotFound, base.Add(10*time.Minute))
		before, err := q.DeadBefore(ctx, base.Add(time.Minute), 10)
		if err != nil || fmt.Sprint(sortedCopy(before)) != "[c1 old]" {
			t.Fatalf("DeadBefore = %v, %v", before, err)
		}
		aged, over, err := q.TrimDead(ctx, "c1", base.Add(time.Minute), 2)
		if err != nil || aged != 1 || over != 2 {
			t.Fatalf("TrimDead = %d, %d, %v", aged, over, err)
		}
		dead, _ := q.Dead(ctx, "c1")
		if len(dead) != 2 || string(dead[0].Patch) != `{"n":3}` || string(dead[1].Patch) != `{"n":4}` {
			t.Fatalf("kept = %+v", dead)
		}
		if aged, over, err := q.TrimDead(ctx, "old", base.Add(time.Minute), 0); err != nil || aged != 1 || over != 0 {
			t.Fatalf("TrimDead(old) = %d, %d, %v", aged, over, err)
		}
		if got := ids(list(t, q, queue.DeadFilter{}, 100)); got != "new c1" {
			t.Fatalf("listing after trim = %s", got)
		}
		if c := list(t, q, queue.DeadFilter{}, 100)[1]; c.Count != 2 || !c.Oldest.Equal(base.Add(3*time.Minute)) {
			t.Fatalf("c1 after trim = %+v", c)
		}
		if before, _ := q.DeadBefore(ctx, base.Add(time.Minute), 10); len(before) != 0 {
			t.Fatalf("DeadBefore after trim = %v", before)
		}
		st, err := q.Stats(ctx)
		if err != nil || st.DeadCalls != 2 || st.DeadEntries != 3 {
			t.Fatalf("Stats = %+v, %v", st, err)
		}
	})
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
