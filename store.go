package anyauth

import "sync"

// maxStoreEntries bounds a Store: past it, the oldest entries are
// forgotten.
const maxStoreEntries = 8192

// A Store holds what the schemes of one Transport share across protection
// spaces, sessions and requests: Digest keeps the nonce count of every
// nonce there, so that two sessions given the same nonce never send the
// same nc. It is bounded: past 8192 entries the oldest are forgotten.
// Keys should be of a type private to the scheme, as with context keys.
// A Store is safe for concurrent use; the zero value is ready.
type Store struct {
	mu    sync.Mutex
	m     map[any]any
	order []any // oldest first
}

// Get returns the value of key, first storing create() when there is
// none.
func (s *Store) Get(key any, create func() any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v
	}
	if s.m == nil {
		s.m = make(map[any]any)
	}
	if len(s.order) >= maxStoreEntries {
		delete(s.m, s.order[0])
		s.order = s.order[1:]
	}
	v := create()
	s.m[key] = v
	s.order = append(s.order, key)
	return v
}

// reset forgets every entry.
func (s *Store) reset() {
	s.mu.Lock()
	s.m, s.order = nil, nil
	s.mu.Unlock()
}
