package anyauth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Bearer against real resource servers: Apache mod_auth_openidc, which
// validates the HS256 JWTs minted here, and go-httpbin's /bearer.

func openidc(t *testing.T) *testserver.Server {
	return realServer(t, "apache-openidc", testserver.StartOpenIDC)
}

// jwtIssuer is an in-process token endpoint (client credentials) that
// mints JWTs for mod_auth_openidc. The first `expired` tokens it issues
// have an exp in the past, as if the server's clock ran ahead of the
// token's lifetime; the client cannot tell, since expires_in says an hour.
type jwtIssuer struct {
	*httptest.Server
	fetches atomic.Int64
	expired int64
}

func newJWTIssuer(t *testing.T, expired int64) *jwtIssuer {
	j := &jwtIssuer{expired: expired}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, _ := r.BasicAuth(); id != "fetch" || secret != "fetch-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n := j.fetches.Add(1)
		exp := time.Now().Add(time.Hour)
		if n <= j.expired {
			exp = time.Now().Add(-time.Minute)
		}
		tok := testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": exp.Unix(), "n": n})
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwtIssuer) config() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "fetch", ClientSecret: "fetch-secret", TokenURL: j.URL, AuthStyle: oauth2.AuthStyleInHeader}
}

func TestOpenIDCBearerValidToken(t *testing.T) {
	srv := openidc(t)
	path := testserver.PathBearer + "whoami"
	valid := testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": time.Now().Add(time.Hour).Unix()})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.NewStaticBearer(valid, srv.URL), schemes.Basic{}}}
	before, _ := srv.Hits(path)
	for range 3 {
		if body := mustGet(t, tr, srv.URL+path, 200); strings.TrimSpace(body) != testserver.User {
			t.Fatalf("REMOTE_USER %q, want %q", body, testserver.User)
		}
	}
	// One challenge (invalid_request: no token), then the token on every
	// request: 3 requests, 4 round trips.
	// Apache writes its log lines after the response: wait for the count
	// to settle.
	total := 0
	for i := 0; i < 20 && total-before != 4; i++ {
		time.Sleep(50 * time.Millisecond)
		total, _ = srv.Hits(path)
	}
	if total-before != 4 {
		t.Fatalf("%d round trips for 3 requests, want 4", total-before)
	}
}

func TestOpenIDCBearerExpiredTokenRefreshedOnce(t *testing.T) {
	srv := openidc(t)
	path := testserver.PathBearer + "whoami"
	issuer := newJWTIssuer(t, 1)
	b := schemes.NewBearer(issuer.config().Token, srv.URL)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{b}}
	before, before401 := srv.Hits(path)
	resp, body := doGet(t, tr, srv.URL+path)
	if resp.StatusCode != 200 || strings.TrimSpace(body) != testserver.User {
		t.Fatalf("status %d %q", resp.StatusCode, body)
	}
	// No token: 401 invalid_request. Expired token: 401 invalid_token,
	// one refresh. Fresh token: 200.
	total, unauth := srv.Hits(path)
	for i := 0; i < 20 && (total-before != 3 || unauth-before401 != 2); i++ {
		time.Sleep(50 * time.Millisecond) // Apache logs after responding
		total, unauth = srv.Hits(path)
	}
	if total-before != 3 || unauth-before401 != 2 || issuer.fetches.Load() != 2 {
		t.Fatalf("%d round trips (%d refused), %d token fetches; want 3 (2), 2", total-before, unauth-before401, issuer.fetches.Load())
	}
	// The space is known: the next request carries the fresh token at once.
	mustGet(t, tr, srv.URL+path, 200)
	total2, _ := srv.Hits(path)
	for i := 0; i < 20 && total2-total != 1; i++ {
		time.Sleep(50 * time.Millisecond)
		total2, _ = srv.Hits(path)
	}
	if total2-total != 1 || issuer.fetches.Load() != 2 {
		t.Fatalf("cached request: %d round trips, %d fetches; want 1, 2", total2-total, issuer.fetches.Load())
	}
}

func TestOpenIDCBearerTokenAlwaysRefused(t *testing.T) {
	srv := openidc(t)
	path := testserver.PathBearer + "whoami"
	issuer := newJWTIssuer(t, 1<<30) // every token expired
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.NewBearer(issuer.config().Token, srv.URL)}}
	resp, _ := doGet(t, tr, srv.URL+path)
	be := schemes.BearerErrorOf(resp)
	if resp.StatusCode != 401 || be == nil || be.ErrorCode != "invalid_token" || be.Realm != testserver.RealmBearer {
		t.Fatalf("status %d, Bearer error %+v; want 401 invalid_token", resp.StatusCode, be)
	}
	if issuer.fetches.Load() != 2 {
		t.Fatalf("%d token fetches, want 2 (the first, and one refresh)", issuer.fetches.Load())
	}
}

func TestHTTPBinBearer(t *testing.T) {
	srv := httptest.NewServer(httpbin.New())
	defer srv.Close()
	rec := &authRecorder{base: http.DefaultTransport}
	tr := &anyauth.Transport{Base: rec, Schemes: []anyauth.Scheme{schemes.NewStaticBearer("httpbin-token", srv.URL), schemes.Digest{}}}
	for range 3 {
		if body := mustGet(t, tr, srv.URL+"/bearer", 200); !strings.Contains(body, `"authenticated": true`) || !strings.Contains(body, "httpbin-token") {
			t.Fatalf("body %s", body)
		}
	}
	if got := strings.Join(rec.sent(), ","); got != ",Bearer,Bearer,Bearer" {
		t.Fatalf("answers sent %q, want one challenge then Bearer", got)
	}
}

func doGet(t *testing.T, rt http.RoundTripper, url string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}
