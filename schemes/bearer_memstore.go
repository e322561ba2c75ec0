package schemes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"golang.org/x/oauth2"
)

// MemoryTokenStore is a TokenStore in this process's memory: Bearers of
// one process that share it fetch one token between them. It is also the
// model of the contract, and the base of a store that persists (see the
// TokenStore example). The zero value is ready to use.
type MemoryTokenStore struct {
	mu      sync.Mutex
	entries map[string]*oauth2.Token
	leases  map[string]memLease
	changed chan struct{} // closed and replaced on every change
}

type memLease struct {
	owner string
	until time.Time
}

var _ TokenStore = (*MemoryTokenStore)(nil)

// changedLocked returns the channel closed at the next change. s.mu is
// held.
func (s *MemoryTokenStore) changedLocked() chan struct{} {
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

// wakeLocked wakes the Waits. s.mu is held.
func (s *MemoryTokenStore) wakeLocked() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Get returns the token stored under key, nil when there is none. A token
// without a refresh token is gone at its Expiry.
func (s *MemoryTokenStore) Get(_ context.Context, key string) (*oauth2.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.entries[key]
	if t != nil && t.RefreshToken == "" && !t.Expiry.IsZero() && time.Now().After(t.Expiry) {
		delete(s.entries, key)
		return nil, nil
	}
	return t, nil
}

// Put stores tok under key, unless the stored token has an access token
// that expires later.
func (s *MemoryTokenStore) Put(_ context.Context, key string, tok *oauth2.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.entries[key]; old != nil && !Newer(tok, old) {
		return nil
	}
	if s.entries == nil {
		s.entries = map[string]*oauth2.Token{}
	}
	s.entries[key] = tok
	s.wakeLocked()
	return nil
}

// Newer reports whether a TokenStore should replace stored with tok: it
// should unless stored has an access token that expires later than
// tok's. Stores use it in Put.
func Newer(tok, stored *oauth2.Token) bool {
	if stored == nil || stored.AccessToken == "" {
		return true
	}
	if stored.Expiry.IsZero() || tok.Expiry.IsZero() {
		return true
	}
	return !stored.Expiry.After(tok.Expiry)
}

// Lease takes key's lease for ttl, or returns ErrLeaseHeld.
func (s *MemoryTokenStore) Lease(_ context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	var id [16]byte
	rand.Read(id[:])
	owner := hex.EncodeToString(id[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.leases[key]; ok && time.Now().Before(l.until) {
		return nil, ErrLeaseHeld
	}
	if s.leases == nil {
		s.leases = map[string]memLease{}
	}
	s.leases[key] = memLease{owner: owner, until: time.Now().Add(ttl)}
	return func(context.Context) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.leases[key].owner == owner {
			delete(s.leases, key)
			s.wakeLocked()
		}
		return nil
	}, nil
}

// Wait returns at the next change of any key, when key's lease runs out,
// or when ctx ends.
func (s *MemoryTokenStore) Wait(ctx context.Context, key string) error {
	s.mu.Lock()
	ch := s.changedLocked()
	l, held := s.leases[key]
	s.mu.Unlock()
	if !held {
		return nil
	}
	timer := time.NewTimer(time.Until(l.until))
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Invalidate drops the access token of key's entry if it is accessToken,
// keeping its refresh token.
func (s *MemoryTokenStore) Invalidate(_ context.Context, key, accessToken string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.entries[key]
	if t == nil || t.AccessToken != accessToken {
		return false, nil
	}
	if t.RefreshToken == "" {
		delete(s.entries, key)
	} else {
		s.entries[key] = &oauth2.Token{RefreshToken: t.RefreshToken}
	}
	s.wakeLocked()
	return true, nil
}
