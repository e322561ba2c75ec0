package schemes_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// scopeWorld is a resource server whose locations need scopes, and its
// authorization server, on httptest. The token is "tok:" and its scopes;
// /read/ needs read, /write/ needs write, /never/ refuses every token
// with insufficient_scope for write. The first challenge asks for read.
type scopeWorld struct {
	rs, as      *httptest.Server
	trips       atomic.Int64
	mu          sync.Mutex
	tokenScopes []string // the scope parameter of each token request
}

func newScopeWorld(t *testing.T) *scopeWorld {
	w := &scopeWorld{}
	w.as = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			json.NewEncoder(rw).Encode(map[string]any{"issuer": w.as.URL, "token_endpoint": w.as.URL + "/token"})
		case "/token":
			r.ParseForm()
			scope := r.Form.Get("scope")
			w.mu.Lock()
			w.tokenScopes = append(w.tokenScopes, scope)
			w.mu.Unlock()
			json.NewEncoder(rw).Encode(map[string]any{"access_token": "tok:" + strings.ReplaceAll(scope, " ", ","), "token_type": "Bearer", "expires_in": 3600})
		default:
			http.NotFound(rw, r)
		}
	}))
	w.rs = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-protected-resource" {
			json.NewEncoder(rw).Encode(map[string]any{"resource": w.rs.URL, "authorization_servers": []string{w.as.URL}, "scopes_supported": []string{"read", "write", "admin"}})
			return
		}
		w.trips.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer tok:")
		if !ok {
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata="%s/.well-known/oauth-protected-resource", scope="read"`, w.rs.URL))
			rw.WriteHeader(401)
			return
		}
		held := strings.Split(tok, ",")
		need := strings.Trim(strings.SplitN(r.URL.Path, "/", 3)[1], "/")
		if need == "never" || !slices.Contains(held, need) {
			want := need
			if need == "never" {
				want = "write"
			}
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="api", error="insufficient_scope", error_description="Insufficient Scope", scope=%q`, want))
			rw.WriteHeader(403)
			return
		}
		fmt.Fprint(rw, "ok "+tok)
	}))
	t.Cleanup(w.rs.Close)
	t.Cleanup(w.as.Close)
	return w
}

func (w *scopeWorld) transport(d *schemes.Discovery) *anyauth.Transport {
	d.ClientID, d.ClientSecret, d.Issuers = "cid", "SECRET-cs", []string{w.as.URL}
	return &anyauth.Transport{Schemes: []anyauth.Scheme{d}}
}

func (w *scopeWorld) tokens() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.tokenScopes)
}

// step is one request of a scope test and what it should cost.
type step struct {
	path   string
	status int
	trips  int64    // round trips to the resource
	tokens []string // the scope parameters of every token request so far
}

func (w *scopeWorld) run(t *testing.T, tr *anyauth.Transport, steps []step) {
	t.Helper()
	for _, s := range steps {
		before := w.trips.Load()
		st := getStatus(t, tr, w.rs.URL+s.path)
		trips := w.trips.Load() - before
		t.Logf("%s: %d in %d round trips; token requests so far: %q", s.path, st, trips, w.tokens())
		if st != s.status || trips != s.trips || !slices.Equal(w.tokens(), s.tokens) {
			t.Errorf("%s: %d in %d round trips, token requests %q; want %d in %d, %q", s.path, st, trips, w.tokens(), s.status, s.trips, s.tokens)
		}
	}
}

// TestDiscoveryScopeStepUp: the first token asks for the challenge's
// scope (read), not every scope the resource supports; a 403
// insufficient_scope for write gets one token for read and write and the
// request succeeds on its replay (after the 401 of a directory the
// Transport has not seen answered); later requests need no step-up.
func TestDiscoveryScopeStepUp(t *testing.T) {
	w := newScopeWorld(t)
	tr := w.transport(&schemes.Discovery{})
	w.run(t, tr, []step{
		{"/read/a", 200, 2, []string{"read"}},
		{"/write/a", 200, 3, []string{"read", "read write"}}, // 401, 403, 200
		{"/write/b", 200, 1, []string{"read", "read write"}},
		{"/read/b", 200, 1, []string{"read", "read write"}},
	})
}

// TestDiscoveryScopeStepUpOncePerRequest: a resource that refuses even the
// scopes it asked for gets one step-up, and its 403 back; the next request
// asks for nothing new and is not sent again.
func TestDiscoveryScopeStepUpOncePerRequest(t *testing.T) {
	w := newScopeWorld(t)
	tr := w.transport(&schemes.Discovery{})
	w.run(t, tr, []step{
		{"/never/a", 403, 3, []string{"read", "read write"}}, // 401, 403, 403
		{"/never/b", 403, 1, []string{"read", "read write"}},
	})
}

// TestDiscoveryNoStepUp: with NoStepUp the 403 is returned as it is.
// Explicit Scopes are asked for first, whatever the challenge says.
func TestDiscoveryNoStepUp(t *testing.T) {
	w := newScopeWorld(t)
	tr := w.transport(&schemes.Discovery{NoStepUp: true, Scopes: []string{"admin", "read"}})
	w.run(t, tr, []step{
		{"/read/a", 200, 2, []string{"admin read"}},
		{"/write/a", 403, 2, []string{"admin read"}}, // 401, 403
	})
}

// TestDiscoveryScopeStepUpConcurrent: 16 goroutines that start on /write/
// all get their 200, with one token for the challenge's scope and one for
// the step-up.
func TestDiscoveryScopeStepUpConcurrent(t *testing.T) {
	w := newScopeWorld(t)
	tr := w.transport(&schemes.Discovery{})
	failed := concurrentGets(tr, 16, 5, func(i int) string { return fmt.Sprintf("%s/write/%d", w.rs.URL, i) })
	t.Logf("16 x 5 requests: %d failed, %d round trips, token requests %q", failed, w.trips.Load(), w.tokens())
	if failed != 0 || !slices.Equal(w.tokens(), []string{"read", "read write"}) {
		t.Errorf("%d failed, token requests %q; want 0 and [read, read write]", failed, w.tokens())
	}
}
