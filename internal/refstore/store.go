// Package refstore is the reference call store of docs/operations.md#the-reference-call-store: an in-memory
// implementation of the call-store HTTP API of docs/operations.md#call-store-api for development,
// demos and tests. It is a plain net/http handler; a Caddy module wraps it.
//
// It is what a platform team holds its own call store against, so it
// follows operations#call-store-api to the letter: X-Account-Id scoping (partner-api#accounts), 409 {"state":
// "live"} for a call in progress, 422 for values a store would refuse, and
// exact lookup of path-escaped ids. It is never a substitute for the real
// call store in production.
package refstore

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"
)

// Options configure a Store.
type Options struct {
	// Seed are the calls the store starts with, e.g. from LoadFile. A
	// call with no state is live; of two calls with one id, the later wins.
	Seed []Call
	// Notify, when set, is told of every call completed through
	// POST /v1/calls/{id}/complete.
	Notify *NotifyConfig
}

// PatchRecord is one PATCH /v1/calls/{id} as the store received it,
// whatever its outcome.
type PatchRecord struct {
	// CallLogID is the id after path-unescaping.
	CallLogID string
	// AccountID, RequestID and Webhook are the X-Account-Id, X-Request-Id
	// and X-Postback-Webhook headers; "" when absent.
	AccountID string
	RequestID string
	Webhook   string
	// Body is the request body as received.
	Body []byte
	// Status is the status the store answered.
	Status int
}

// Store is the in-memory reference call store. It is an http.Handler and
// safe for concurrent use.
type Store struct {
	notify *NotifyConfig

	mu      sync.Mutex
	calls   map[string]*entry
	seq     uint64
	patches []PatchRecord
}

// entry is a stored call with its insertion order, which breaks ties
// between calls that started at the same instant.
type entry struct {
	call Call
	seq  uint64
}

// Errors of the store operations, mapped to statuses in routes.go.
var (
	errNotFound = errors.New("call not found")
	errLive     = errors.New("call is live")
	errExists   = errors.New("call already exists")
)

// New returns a store holding opts.Seed.
func New(opts Options) *Store {
	s := &Store{notify: opts.Notify, calls: make(map[string]*entry, len(opts.Seed))}
	for _, c := range opts.Seed {
		if c.State == "" {
			c.State = StateLive
		}
		s.put(c.clone())
	}
	return s
}

// Call returns a copy of the call with the given id, ignoring accounts.
func (s *Store) Call(id string) (Call, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.calls[id]
	if !ok {
		return Call{}, false
	}
	return e.call.clone(), true
}

// Patches returns every PATCH received so far, oldest first.
func (s *Store) Patches() []PatchRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PatchRecord, len(s.patches))
	for i, p := range s.patches {
		p.Body = slices.Clone(p.Body)
		out[i] = p
	}
	return out
}

// scope is the X-Account-Id of a request. An unscoped request (no header)
// sees every call; a scoped one sees only the calls of its account, so a
// call with no account is invisible to it.
type scope struct {
	account string
	set     bool
}

func (sc scope) allows(c *Call) bool {
	return !sc.set || c.Account == sc.account
}

// put stores c; the caller holds mu or owns s exclusively.
func (s *Store) put(c Call) {
	s.seq++
	s.calls[c.CallLogID] = &entry{call: c, seq: s.seq}
}

// lookup finds a call visible to sc; the caller holds mu.
func (s *Store) lookup(id string, sc scope) (*entry, error) {
	e, ok := s.calls[id]
	if !ok || !sc.allows(&e.call) {
		// Another account's call is reported exactly like a missing one,
		// so its existence does not leak (docs/partner-api.md#accounts).
		return nil, errNotFound
	}
	return e, nil
}

func (s *Store) get(id string, sc scope) (Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(id, sc)
	if err != nil {
		return Call{}, err
	}
	return e.call.clone(), nil
}

// patch applies u to a completed call; a live call is left untouched.
func (s *Store) patch(id string, sc scope, u update) (Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(id, sc)
	if err != nil {
		return Call{}, err
	}
	if e.call.State == StateLive {
		return Call{}, errLive
	}
	u.apply(&e.call)
	return e.call.clone(), nil
}

// create adds c, generating an id when it has none.
func (s *Store) create(c Call) (Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.CallLogID == "" {
		for c.CallLogID == "" || s.calls[c.CallLogID] != nil {
			c.CallLogID = newID()
		}
	} else if _, ok := s.calls[c.CallLogID]; ok {
		// Checked across accounts: ids are global in the store's URL space.
		return Call{}, errExists
	}
	s.put(c.clone())
	return c.clone(), nil
}

// complete ends a call; completing a completed call changes nothing.
func (s *Store) complete(id string, sc scope) (Call, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, err := s.lookup(id, sc)
	if err != nil {
		return Call{}, err
	}
	e.call.State = StateCompleted
	return e.call.clone(), nil
}

// find returns the calls visible to sc, of phone when it is not "", newest
// first; at most limit when limit > 0.
func (s *Store) find(sc scope, phone string, limit int) []Call {
	s.mu.Lock()
	var found []*entry
	for _, e := range s.calls {
		if sc.allows(&e.call) && (phone == "" || e.call.PhoneNumber == phone) {
			found = append(found, e)
		}
	}
	slices.SortFunc(found, func(a, b *entry) int {
		if c := b.call.StartedAt.Compare(a.call.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.seq, a.seq)
	})
	if limit > 0 && len(found) > limit {
		found = found[:limit]
	}
	out := make([]Call, len(found))
	for i, e := range found {
		out[i] = e.call.clone()
	}
	s.mu.Unlock()
	return out
}

func (s *Store) record(p PatchRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.patches = append(s.patches, p)
}

// newID makes an id for a call created without one.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "call-" + hex.EncodeToString(b[:])
}

// now is the start of a call created without started_at; whole seconds
// keep the JSON short.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }
