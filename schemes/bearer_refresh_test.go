package schemes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// rotatingServer is a token endpoint whose refresh tokens rotate on every
// use: a refresh token redeemed a second time gets invalid_grant, as
// oidc-provider and Auth0 answer (and the grant is gone).
type rotatingServer struct {
	*httptest.Server
	expiresIn    int
	mu           sync.Mutex
	current      string // the one refresh token that is valid
	n            int
	refreshes    atomic.Int64
	invalidGrant atomic.Int64
}

func newRotatingServer(t *testing.T, expiresIn int) *rotatingServer {
	s := &rotatingServer{expiresIn: expiresIn, current: "rt-0"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.Form.Get("grant_type") != "refresh_token" || r.Form.Get("refresh_token") != s.current {
			s.invalidGrant.Add(1)
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		s.refreshes.Add(1)
		s.n++
		s.current = fmt.Sprintf("rt-%d", s.n)
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", s.n), "token_type": "Bearer",
			"expires_in": s.expiresIn, "refresh_token": s.current})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *rotatingServer) config() *oauth2.Config {
	return &oauth2.Config{ClientID: "client", ClientSecret: "client-secret", Endpoint: oauth2.Endpoint{TokenURL: s.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}}
}

// TestRefreshBearerRotationSharedStore: four Bearers (the replicas of a
// fleet) seeded with one login's refresh token share a store: each
// rotation is redeemed by one of them, and no refresh token is redeemed
// twice. Without the store, the same four lose the grant at the first
// expiry.
func TestRefreshBearerRotationSharedStore(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("store=%v", shared), func(t *testing.T) {
			as, rs := newRotatingServer(t, 2), newResourceServer(t)
			seed := &oauth2.Token{RefreshToken: "rt-0"}
			store := &schemes.MemoryTokenStore{}
			var trs []*anyauth.Transport
			for i := 0; i < 4; i++ {
				b := schemes.NewRefreshBearer(as.config(), seed, rs.URL)
				if shared {
					b.Store = store
					b.StoreKey.Subject = "alice"
				}
				trs = append(trs, bearerTransport(b))
			}
			run := 5 * time.Second
			if !shared {
				run = 2 * time.Second
			}
			deadline := time.Now().Add(run)
			var ok, failed atomic.Int64
			var wg sync.WaitGroup
			for _, tr := range trs {
				for g := 0; g < 4; g++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for time.Now().Before(deadline) {
							req, _ := http.NewRequest("GET", rs.URL+"/x", nil)
							resp, err := tr.RoundTrip(req)
							if err == nil && resp.StatusCode == 200 {
								ok.Add(1)
							} else {
								failed.Add(1)
							}
							if err == nil {
								resp.Body.Close()
							}
							time.Sleep(10 * time.Millisecond)
						}
					}()
				}
			}
			wg.Wait()
			t.Logf("4 Bearers x 4 goroutines, %v, 2 s tokens, shared store %v: %d ok, %d failed; refreshes %d, invalid_grant %d",
				run, shared, ok.Load(), failed.Load(), as.refreshes.Load(), as.invalidGrant.Load())
			if shared {
				if g := as.invalidGrant.Load(); g != 0 || failed.Load() != 0 {
					t.Errorf("%d invalid_grant, %d failed requests; want 0 and 0", g, failed.Load())
				}
				// 2 s tokens used for 1.6 s (refreshed ahead): about 4 in 5 s.
				if r := as.refreshes.Load(); r < 3 || r > 6 {
					t.Errorf("%d refreshes in 5 s, want 3..6 (one per expiry)", r)
				}
			} else {
				if as.invalidGrant.Load() == 0 {
					t.Errorf("no invalid_grant without a store: the test does not show what the store prevents")
				}
				// A refused grant is not asked for again within
				// MinRefreshInterval (5 s): one invalid_grant per Bearer.
				if g := as.invalidGrant.Load(); g > 4 {
					t.Errorf("%d invalid_grant from 4 Bearers in 2 s: a refused grant was asked for again", g)
				}
			}
		})
	}
}

// TestBearerRefreshesAhead: with a slow token endpoint, requests go on
// with the held token while one fetch replaces it ahead of its expiry;
// none waits for a fetch after the first.
func TestBearerRefreshesAhead(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	as.expiresIn = 2
	as.delay = 300 * time.Millisecond
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	do(t, tr, "GET", rs.URL+"/x", nil)
	var slowest time.Duration
	deadline := time.Now().Add(4 * time.Second)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		start := time.Now()
		if resp, _ := do(t, tr, "GET", rs.URL+"/x", nil); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("%d requests over 4 s with 2 s tokens and a 300 ms token endpoint: %d fetches, slowest request %v", n, as.fetches.Load(), slowest)
	if slowest >= as.delay {
		t.Errorf("a request waited %v: the refresh ahead did not keep requests off the fetch", slowest)
	}
	if f := as.fetches.Load(); f < 3 || f > 5 {
		t.Errorf("%d fetches in 4 s of 2 s tokens (plus the first), want 3..5", f)
	}
}

// TestTokenKey: every field tells keys apart, lists in any order are
// equal, and the secret is never printed.
func TestTokenKey(t *testing.T) {
	base := schemes.TokenKey{TokenURL: "https://as/token", ClientID: "c", ClientSecret: "SECRET-1", Scopes: []string{"a", "b"}, Audience: []string{"https://api"}, Subject: "alice"}
	same := base
	same.Scopes = []string{"b", "a"}
	if base.Sum() != same.Sum() {
		t.Error("scope order changes the key")
	}
	variants := map[string]func(*schemes.TokenKey){
		"token URL": func(k *schemes.TokenKey) { k.TokenURL += "2" },
		"client":    func(k *schemes.TokenKey) { k.ClientID = "d" },
		"secret":    func(k *schemes.TokenKey) { k.ClientSecret = "SECRET-2" },
		"scopes":    func(k *schemes.TokenKey) { k.Scopes = []string{"a"} },
		"audience":  func(k *schemes.TokenKey) { k.Audience = []string{"https://other"} },
		"subject":   func(k *schemes.TokenKey) { k.Subject = "bob" },
		"list edge": func(k *schemes.TokenKey) { k.Scopes, k.Audience = []string{"a", "b", "https://api"}, nil },
	}
	for name, change := range variants {
		k := base
		change(&k)
		if k.Sum() == base.Sum() {
			t.Errorf("a different %s gives the same key", name)
		}
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(verb, base); strings.Contains(out, "SECRET") {
			t.Errorf("%s shows the client secret: %s", verb, out)
		}
	}
	if strings.Contains(base.Sum(), "SECRET") || len(base.Sum()) != 64 {
		t.Errorf("Sum = %q, want 64 hex digits", base.Sum())
	}
}

// TestRefreshBearerStoreNeedsSubject: a refresh-token Bearer with a store
// and no subject is refused, so no user's grant answers for another.
func TestRefreshBearerStoreNeedsSubject(t *testing.T) {
	as, rs := newRotatingServer(t, 60), newResourceServer(t)
	b := schemes.NewRefreshBearer(as.config(), &oauth2.Token{RefreshToken: "rt-0"}, rs.URL)
	b.Store = &schemes.MemoryTokenStore{}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", rs.URL+"/x", nil)
	resp, err := bearerTransport(b).RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("no error for a refresh-token Bearer with a Store and no Subject")
	}
	if !strings.Contains(err.Error(), "Subject") {
		t.Errorf("error %v does not name StoreKey.Subject", err)
	}
	if as.refreshes.Load() != 0 {
		t.Errorf("the refresh token was redeemed")
	}
}
