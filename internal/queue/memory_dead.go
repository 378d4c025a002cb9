package queue

import (
	"context"
	"sort"
	"time"
)

// The memory queue answers the listing of dead letters by walking its
// calls: it serves one instance in development, where that is cheap.

func (m *Memory) ListDead(_ context.Context, f DeadFilter, cursor string, limit int) (DeadPage, error) {
	var after *DeadRank
	if cursor != "" {
		r, err := ParseDeadCursor(cursor)
		if err != nil {
			return DeadPage{}, err
		}
		after = &r
	}
	type ranked struct {
		rank DeadRank
		call DeadCall
	}
	var found []ranked
	m.mu.Lock()
	for id, letters := range m.dead {
		rank, ok := DeadRankOf(id, letters, f)
		if !ok || (!f.Since.IsZero() && rank.Score < f.Since.UnixMicro()) || (after != nil && !after.Before(rank)) {
			continue
		}
		if c, ok := SummarizeDead(id, letters, f); ok {
			found = append(found, ranked{rank, c})
		}
	}
	m.mu.Unlock()
	sort.Slice(found, func(i, j int) bool { return found[i].rank.Before(found[j].rank) })
	page := DeadPage{Calls: []DeadCall{}}
	for _, r := range found {
		if len(page.Calls) == limit {
			break
		}
		page.Calls = append(page.Calls, r.call)
		if len(page.Calls) == limit {
			page.Next = r.rank.Cursor()
		}
	}
	return page, nil
}

func (m *Memory) Revive(_ context.Context, callLogID string, letters []Entry, due time.Time) (int, error) {
	if len(letters) == 0 {
		return 0, nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dead := m.dead[callLogID]
	taken := make(map[string]bool, len(letters))
	for _, l := range letters {
		found := false
		for _, d := range dead {
			if d.ID == l.ID {
				found = true
				break
			}
		}
		if !found || taken[l.ID] {
			return 0, ErrDeadChanged
		}
		taken[l.ID] = true
	}
	kept := dead[:0:0]
	for _, d := range dead {
		if !taken[d.ID] {
			kept = append(kept, d)
		}
	}
	if len(kept) == 0 {
		delete(m.dead, callLogID)
	} else {
		m.dead[callLogID] = kept
	}
	c := m.calls[callLogID]
	if c == nil {
		c = &memCall{}
		m.calls[callLogID] = c
	}
	back := make([]Entry, 0, len(letters)+len(c.entries))
	back = append(back, letters...)
	c.entries = append(back, c.entries...)
	c.due, c.attempt = due, 0
	return len(letters), nil
}

func (m *Memory) TrimDead(_ context.Context, callLogID string, before time.Time, maxPerCall int) (aged, over int, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dead := m.dead[callLogID]
	for aged < len(dead) && dead[aged].DeadAt.Before(before) {
		aged++
	}
	if maxPerCall > 0 && len(dead)-aged > maxPerCall {
		over = len(dead) - aged - maxPerCall
	}
	if kept := dead[aged+over:]; len(kept) == 0 {
		delete(m.dead, callLogID)
	} else {
		m.dead[callLogID] = append([]DeadEntry(nil), kept...)
	}
	return aged, over, nil
}

func (m *Memory) DeadBefore(_ context.Context, before time.Time, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ids []string
	for id, dead := range m.dead {
		if len(ids) == limit {
			break
		}
		if len(dead) > 0 && dead[0].DeadAt.Before(before) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

var _ DeadLetters = (*Memory)(nil)
