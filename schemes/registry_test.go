package schemes_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// registryWorld is a registry that wants tokens from a token server, on
// httptest: a token is "t|<account>|<scope>+<scope>…"; /v2/<repo>/… needs
// pull for GET and push for PUT; the token server gives alice (password
// "pw") every scope asked for and anonymous callers pull on public/.
type registryWorld struct {
	reg, auth *httptest.Server
	realm     string
	trips     atomic.Int64
	mu        sync.Mutex
	asked     []string // account and scope of every token request
}

func newRegistryWorld(t *testing.T) *registryWorld {
	w := &registryWorld{}
	w.auth = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		q := r.URL.Query()
		w.mu.Lock()
		w.asked = append(w.asked, user+" "+strings.Join(q["scope"], " "))
		w.mu.Unlock()
		if ok && (user != "alice" || pass != "pw") || q.Get("service") != "reg" {
			rw.WriteHeader(401)
			return
		}
		var granted []string
		for _, s := range q["scope"] {
			if ok || strings.HasPrefix(s, "repository:public/") && strings.HasSuffix(s, ":pull") {
				granted = append(granted, s)
			}
		}
		json.NewEncoder(rw).Encode(map[string]any{"token": "t|" + user + "|" + strings.Join(granted, "+"), "expires_in": 300})
	}))
	w.realm = w.auth.URL + "/token"
	w.reg = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.trips.Add(1)
		parts := strings.SplitN(strings.TrimPrefix(r.URL.Path, "/v2/"), "/", 3)
		repo := parts[0] + "/" + parts[1]
		action := "pull"
		if r.Method == http.MethodPut {
			action = "pull,push"
		}
		need := "repository:" + repo + ":" + action
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		fields := strings.SplitN(tok, "|", 3)
		if len(fields) != 3 {
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="reg",scope=%q`, w.realm, need))
			rw.WriteHeader(401)
			return
		}
		granted := strings.Split(fields[2], "+")
		if !slices.Contains(granted, need) && !(action == "pull" && slices.Contains(granted, "repository:"+repo+":pull,push")) {
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="reg",scope=%q,error="insufficient_scope"`, w.realm, need))
			rw.WriteHeader(401)
			return
		}
		fmt.Fprint(rw, "ok "+fields[1])
	}))
	t.Cleanup(w.reg.Close)
	t.Cleanup(w.auth.Close)
	return w
}

func (w *registryWorld) transport(r *schemes.Registry, creds anyauth.CredentialProvider) *anyauth.Transport {
	if r == nil {
		r = &schemes.Registry{Realms: anyauth.Origins{w.auth.URL}}
	}
	return &anyauth.Transport{Schemes: []anyauth.Scheme{r}, Credentials: creds}
}

func (w *registryWorld) tokenRequests() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.asked)
}

func (w *registryWorld) do(t *testing.T, tr *anyauth.Transport, method, path string) (int, int64) {
	t.Helper()
	before := w.trips.Load()
	req, _ := http.NewRequest(method, w.reg.URL+path, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode, w.trips.Load() - before
}

// TestRegistryPullThenPush: a pull gets a pull token (2 round trips); a
// push meets insufficient_scope and gets a pull,push token (2 round
// trips); the next push and pull of the repository go in one round trip
// each, with no more token requests; another repository gets its own
// token.
func TestRegistryPullThenPush(t *testing.T) {
	w := newRegistryWorld(t)
	tr := w.transport(nil, anyauth.ForOrigin(w.reg.URL, "alice", "pw"))
	for _, tc := range []struct {
		method, path string
		status       int
		trips        int64
		tokens       int
	}{
		{"GET", "/v2/team/app/manifests/1", 200, 2, 1},
		{"PUT", "/v2/team/app/manifests/2", 200, 2, 2},
		{"PUT", "/v2/team/app/manifests/3", 200, 1, 2},
		{"GET", "/v2/team/app/manifests/4", 200, 1, 2},
		{"GET", "/v2/team/other/manifests/1", 200, 2, 3},
	} {
		st, trips := w.do(t, tr, tc.method, tc.path)
		t.Logf("%s %s: %d in %d round trips; token requests %q", tc.method, tc.path, st, trips, w.tokenRequests())
		if st != tc.status || trips != tc.trips || len(w.tokenRequests()) != tc.tokens {
			t.Errorf("%s %s: %d in %d round trips, %d token requests; want %d in %d, %d", tc.method, tc.path, st, trips, len(w.tokenRequests()), tc.status, tc.trips, tc.tokens)
		}
	}
	if got := w.tokenRequests(); got[1] != "alice repository:team/app:pull,push" {
		t.Errorf("the push's token request %q", got[1])
	}
}

// TestRegistryAnonymous: without credentials, a public pull gets an
// anonymous token; a private pull gets an empty one, is refused once more
// and its 401 returned, with no loop.
func TestRegistryAnonymous(t *testing.T) {
	w := newRegistryWorld(t)
	tr := w.transport(nil, nil)
	if st, trips := w.do(t, tr, "GET", "/v2/public/x/manifests/1"); st != 200 || trips != 2 {
		t.Errorf("public pull: %d in %d round trips, want 200 in 2", st, trips)
	}
	if st, trips := w.do(t, tr, "GET", "/v2/team/app/manifests/1"); st != 401 || trips != 2 {
		t.Errorf("private pull: %d in %d round trips, want the registry's 401 in 2", st, trips)
	}
	for _, r := range w.tokenRequests() {
		if !strings.HasPrefix(r, " ") {
			t.Errorf("token request %q carried an account", r)
		}
	}
}

// TestRegistryRealmRules: the registry's password goes to no token server
// that is not on the registry's origin or in Realms, nor over plain http
// to a remote host; the registry's 401 comes back and the token server is
// never asked.
func TestRegistryRealmRules(t *testing.T) {
	for _, tc := range []struct {
		name  string
		realm func(w *registryWorld) string
		reg   *schemes.Registry
	}{
		{"realm not listed", func(w *registryWorld) string { return w.realm }, &schemes.Registry{}},
		{"plain http to a remote host", func(w *registryWorld) string { return "http://auth.example.com/token" }, &schemes.Registry{Realms: anyauth.Origins{"http://auth.example.com"}}},
		{"not a URL", func(w *registryWorld) string { return "token" }, &schemes.Registry{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newRegistryWorld(t)
			w.realm = tc.realm(w)
			d := &anyauth.Diagnosis{}
			tr := w.transport(tc.reg, anyauth.ForOrigin(w.reg.URL, "alice", "pw"))
			req, _ := http.NewRequestWithContext(anyauth.WithDiagnosis(t.Context(), d), "GET", w.reg.URL+"/v2/team/app/manifests/1", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			t.Logf("%s: %d; skipped: %v", tc.name, resp.StatusCode, d.Err())
			if resp.StatusCode != 401 || len(w.tokenRequests()) != 0 || !errors.Is(d.Err(), anyauth.ErrNoCredentials) {
				t.Errorf("%d, %d token requests, %v; want the 401, none, ErrNoCredentials", resp.StatusCode, len(w.tokenRequests()), d.Err())
			}
		})
	}
}

// TestRegistryWrongPassword: the token server's refusal is a
// *RegistryTokenError that names no secret.
func TestRegistryWrongPassword(t *testing.T) {
	w := newRegistryWorld(t)
	tr := w.transport(nil, anyauth.ForOrigin(w.reg.URL, "alice", "SECRET-wrong"))
	req, _ := http.NewRequest("GET", w.reg.URL+"/v2/team/app/manifests/1", nil)
	_, err := tr.RoundTrip(req)
	var te *schemes.RegistryTokenError
	if !errors.As(err, &te) || te.StatusCode != 401 || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("err %v, want a RegistryTokenError 401 without the password", err)
	}
	u, _ := url.Parse(w.realm)
	if !strings.Contains(err.Error(), u.Host) {
		t.Errorf("err %v does not name the token server", err)
	}
}

// TestRegistryTokenServerRefusalsAndLimits: a token server that refuses
// the password is asked once for 5 requests (a refusal is held for
// MinRefreshInterval), each request getting the RegistryTokenError; one
// that answers 429 with Retry-After: 1 is asked again after a second, and
// the request succeeds.
func TestRegistryTokenServerRefusalsAndLimits(t *testing.T) {
	w := newRegistryWorld(t)
	tr := w.transport(nil, anyauth.ForOrigin(w.reg.URL, "alice", "SECRET-wrong"))
	for range 5 {
		req, _ := http.NewRequest("GET", w.reg.URL+"/v2/team/app/manifests/1", nil)
		_, err := tr.RoundTrip(req)
		var te *schemes.RegistryTokenError
		if !errors.As(err, &te) || !anyauth.IsPermanent(err) {
			t.Fatalf("err %v, want a permanent RegistryTokenError", err)
		}
	}
	if n := len(w.tokenRequests()); n != 1 {
		t.Errorf("%d token requests for 5 refused requests, want 1", n)
	}

	var limited atomic.Int64
	auth := w.auth.Config.Handler
	w.auth.Config.Handler = http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if limited.Add(1) == 1 {
			rw.Header().Set("Retry-After", "1")
			rw.WriteHeader(http.StatusTooManyRequests)
			return
		}
		auth.ServeHTTP(rw, r)
	})
	tr = w.transport(nil, anyauth.ForOrigin(w.reg.URL, "alice", "pw"))
	start := time.Now()
	if st, trips := w.do(t, tr, "GET", "/v2/team/app/manifests/1"); st != 200 || trips != 2 {
		t.Errorf("after a 429: %d in %d round trips, want 200 in 2", st, trips)
	}
	if took := time.Since(start); limited.Load() != 2 || took < time.Second {
		t.Errorf("%d token requests in %v, want 2, the second after Retry-After (1 s)", limited.Load(), took)
	}
}

// TestRegistriesSharingATokenServer: two registries whose challenges name
// one token server and service each get their own token, and each its
// own answer: nothing cached for one answers the other.
func TestRegistriesSharingATokenServer(t *testing.T) {
	w1, w2 := newRegistryWorld(t), newRegistryWorld(t)
	w2.realm = w1.realm
	creds := anyauth.Chain{anyauth.ForOrigin(w1.reg.URL, "alice", "pw"), anyauth.ForOrigin(w2.reg.URL, "alice", "pw")}
	tr := w1.transport(nil, creds)
	if st, _ := w1.do(t, tr, "GET", "/v2/team/app/manifests/1"); st != 200 {
		t.Fatalf("first registry: %d", st)
	}
	if st, trips := w2.do(t, tr, "GET", "/v2/team/app/manifests/1"); st != 200 || trips != 2 {
		t.Errorf("second registry: %d in %d round trips, want 200 in 2", st, trips)
	}
	if n := len(w1.tokenRequests()); n != 2 {
		t.Errorf("%d token requests for two registries, want 2", n)
	}
}
