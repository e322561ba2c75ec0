package anyauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

func TestAllowDowngradeOptIn(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		if strings.HasPrefix(auth, "Basic") {
			return nil
		}
		return []string{`Strong nonce=1`, `Basic realm="r"`}
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Strong", 250, false}}, Credentials: anyCreds(), AllowDowngrade: true}
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 || len(*seen) != 3 {
		t.Fatalf("status %d after %d round trips; with AllowDowngrade Basic follows the rejected Strong", code, len(*seen))
	}
}

// Hardening, round two: each test reproduces a finding of the adversarial
// review and fails without its fix.

// the preemptive answer of an enclosing realm, met by another
// realm's challenge, is not a rejection and sets no floor.
func TestEnclosingRealmDoesNotRaiseFloor(t *testing.T) {
	var trips atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trips.Add(1)
		auth := r.Header.Get("Authorization")
		if strings.HasPrefix(r.URL.Path, "/sub/") {
			if u, p, ok := r.BasicAuth(); ok && u == testUser && p == testPass {
				return
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="sub"`)
			w.WriteHeader(401)
			return
		}
		if auth == "Strong nonce=1" {
			return
		}
		w.Header().Set("WWW-Authenticate", `Strong realm="top", nonce=1`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Strong", 250, false}}, Credentials: anyCreds()}
	creds := anyauth.CredentialFunc(func(ctx context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		return &anyauth.UserPassword{Username: testUser, Password: testPass}, nil
	})
	tr.Credentials = creds
	if code, _ := get(t, tr, srv.URL+"/index"); code != 200 {
		t.Fatalf("/index: %d", code)
	}
	var codes []int
	for range 6 {
		code, _ := get(t, tr, srv.URL+"/sub/x")
		codes = append(codes, code)
	}
	if fmt.Sprint(codes) != "[200 200 200 200 200 200]" {
		t.Fatalf("/sub/x statuses %v, want all 200", codes)
	}
	// /index: 2; first /sub/x: Strong preemptive, Basic asked, Basic: 2;
	// then /sub/ is known: 1 each.
	if got := trips.Load(); got != 2+2+5 {
		t.Fatalf("%d round trips, want 9", got)
	}
}

// a server that answers every answer with a new realm gets the
// password once per request; the provider is asked at most twice.
func TestRealmHoppingServer(t *testing.T) {
	var trips, n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trips.Add(1)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="realm-%d"`, n.Add(1)))
		w.WriteHeader(401)
	}))
	defer srv.Close()
	var calls atomic.Int32
	prompt := anyauth.CredentialFunc(func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		calls.Add(1)
		return &anyauth.UserPassword{Username: "u", Password: "p"}, nil
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: prompt}
	for range 10 {
		if code, _ := get(t, tr, srv.URL+"/"); code != 401 {
			t.Fatalf("status %d", code)
		}
	}
	if trips.Load() != 20 || calls.Load() != 20 {
		t.Fatalf("%d round trips and %d provider calls for 10 requests, want 20 and 20", trips.Load(), calls.Load())
	}
}
