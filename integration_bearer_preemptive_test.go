package anyauth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// Bearer with Preemptive sends its token from the first request: against
// mod_auth_openidc, N requests cost N round trips; and the token goes to
// no origin but the listed ones.
func TestBearerPreemptiveAgainstOpenIDC(t *testing.T) {
	srv := openidc(t)
	path := testserver.PathBearer + "whoami"
	valid := testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": time.Now().Add(time.Hour).Unix()})
	b := schemes.NewStaticBearer(valid, srv.URL)
	b.Preemptive = true
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			elsewhere.Add(1)
		}
		w.WriteHeader(http.StatusUnauthorized) // no WWW-Authenticate at all
	}))
	defer other.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{b}}
	before, _ := srv.Hits(path)
	const n = 5
	for range n {
		if body := mustGet(t, tr, srv.URL+path, 200); strings.TrimSpace(body) != testserver.User {
			t.Fatalf("REMOTE_USER %q", body)
		}
	}
	total := 0
	for i := 0; i < 20 && total-before != n; i++ {
		time.Sleep(50 * time.Millisecond) // Apache logs after responding
		total, _ = srv.Hits(path)
	}
	if total-before != n {
		t.Fatalf("%d round trips for %d requests, want %d", total-before, n, n)
	}
	mustGet(t, tr, other.URL+"/x", 401)
	if elsewhere.Load() != 0 {
		t.Fatalf("the token went to an origin not listed")
	}
}
