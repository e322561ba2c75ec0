package schemes_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// memStore is a schemes.MemoryTokenStore that counts its calls and can
// be made to fail.
type memStore struct {
	schemes.MemoryTokenStore
	calls atomic.Int64
	down  atomic.Bool
}

func newMemStore() *memStore { return &memStore{} }

var errStoreDown = errors.New("memstore: down")

func (s *memStore) op() error {
	s.calls.Add(1)
	if s.down.Load() {
		return errStoreDown
	}
	return nil
}

func (s *memStore) Get(ctx context.Context, key string) (*oauth2.Token, error) {
	if err := s.op(); err != nil {
		return nil, err
	}
	return s.MemoryTokenStore.Get(ctx, key)
}

func (s *memStore) Put(ctx context.Context, key string, t *oauth2.Token) error {
	if err := s.op(); err != nil {
		return err
	}
	return s.MemoryTokenStore.Put(ctx, key, t)
}

func (s *memStore) Lease(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	if err := s.op(); err != nil {
		return nil, err
	}
	return s.MemoryTokenStore.Lease(ctx, key, ttl)
}

func (s *memStore) Wait(ctx context.Context, key string) error {
	if err := s.op(); err != nil {
		return err
	}
	return s.MemoryTokenStore.Wait(ctx, key)
}

func (s *memStore) Invalidate(ctx context.Context, key, access string) (bool, error) {
	if err := s.op(); err != nil {
		return false, err
	}
	return s.MemoryTokenStore.Invalidate(ctx, key, access)
}

// levelCounter counts records per level.
type levelCounter struct {
	mu sync.Mutex
	n  map[slog.Level]int
}

func (c *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *levelCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *levelCounter) WithGroup(string) slog.Handler            { return c }
func (c *levelCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[slog.Level]int{}
	}
	c.n[r.Level]++
	return nil
}

func (c *levelCounter) count(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[l]
}

// TestBearerStoreSharesAndStaysLocal: two Bearers on one store fetch one
// token between them, and requests served from a Bearer's own cache do
// not touch the store.
func TestBearerStoreSharesAndStaysLocal(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	store := newMemStore()
	var trs []*anyauth.Transport
	for i := 0; i < 2; i++ {
		b := schemes.NewBearer(as.config().Token, rs.URL)
		b.Store, b.StoreKey = store, schemes.TokenKey{TokenURL: as.URL, ClientID: "client"}
		trs = append(trs, bearerTransport(b))
	}
	for _, tr := range trs {
		if resp, _ := do(t, tr, "GET", rs.URL+"/x", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	calls := store.calls.Load()
	for i := 0; i < 20; i++ {
		do(t, trs[i%2], "GET", rs.URL+"/x", nil)
	}
	t.Logf("token endpoint hits %d; store calls %d for the first requests, %d for 20 more", as.fetches.Load(), calls, store.calls.Load()-calls)
	if h := as.fetches.Load(); h != 1 {
		t.Errorf("%d token fetches, want 1", h)
	}
	if c := store.calls.Load() - calls; c != 0 {
		t.Errorf("%d store calls for requests served from the Bearer's cache, want 0", c)
	}
}

// TestBearerStoreDown: a store that fails costs no request: the Bearer
// fetches on its own, logs one Warn for the outage, and does not try the
// store again for a while.
func TestBearerStoreDown(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	store := newMemStore()
	store.down.Store(true)
	logs := &levelCounter{}
	b := schemes.NewBearer(as.config().Token, rs.URL)
	b.Store, b.StoreKey = store, schemes.TokenKey{TokenURL: "any name"}
	tr := bearerTransport(b)
	tr.Logger = slog.New(logs)
	for i := 0; i < 5; i++ {
		if resp, _ := do(t, tr, "GET", rs.URL+"/x", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		rs.expire(int(as.fetches.Load()))
	}
	t.Logf("token endpoint hits %d, store calls %d", as.fetches.Load(), store.calls.Load())
	if w := logs.count(slog.LevelWarn); w != 1 {
		t.Errorf("%d Warn records during the outage, want 1", w)
	}
	if h := as.fetches.Load(); h != 5 {
		t.Errorf("%d fetches, want 5", h)
	}
	if c := store.calls.Load(); c != 1 {
		t.Errorf("%d store calls, want 1: the failed store is not tried again at once", c)
	}
}

// TestBearerStoreNeedsKey: a Store without StoreKey is refused.
func TestBearerStoreNeedsKey(t *testing.T) {
	rs := newResourceServer(t)
	b := schemes.NewStaticBearer("tok-static", rs.URL)
	b.Store = newMemStore()
	req, _ := http.NewRequest("GET", rs.URL+"/x", nil)
	resp, err := bearerTransport(b).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("no error for a Store without StoreKey")
	}
	if !strings.Contains(err.Error(), "StoreKey") {
		t.Errorf("error %v does not name StoreKey", err)
	}
}
