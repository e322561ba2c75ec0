package anyauth_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// Regression tests for the findings on per-request identity, uncomparable
// sessions, huge challenges, encoded slashes and token68 Basic
// challenges. Each fails without its fix.

// identityKey is the context key under which a request names its user.
type identityKey struct{}

// identityPasswords are the users the identity servers know.
var identityPasswords = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

func withIdentity(ctx context.Context, user string) context.Context {
	return context.WithValue(ctx, identityKey{}, user)
}

// identityCredentials answers every space with the user the request's
// context names.
var identityCredentials = anyauth.CredentialFunc(func(ctx context.Context, _ *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	user, _ := ctx.Value(identityKey{}).(string)
	pw, ok := identityPasswords[user]
	if !ok {
		return nil, fmt.Errorf("%w: no user in the context", anyauth.ErrNoCredentials)
	}
	return &anyauth.UserPassword{Username: user, Password: pw}, nil
})

// identityLog records, per request id (X-Request-Id), the user a server
// served the request as, and counts round trips.
type identityLog struct {
	mu     sync.Mutex
	trips  int
	served map[string]string
}

func newIdentityLog() *identityLog { return &identityLog{served: map[string]string{}} }

func (l *identityLog) trip() {
	l.mu.Lock()
	l.trips++
	l.mu.Unlock()
}

func (l *identityLog) serve(w http.ResponseWriter, r *http.Request, user string) {
	l.mu.Lock()
	l.served[r.Header.Get("X-Request-Id")] = user
	l.mu.Unlock()
	fmt.Fprint(w, "hello "+user)
}

func (l *identityLog) servedAs(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.served[id]
	return u, ok
}

func (l *identityLog) roundTrips() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.trips
}

// newIdentityBasicServer verifies Basic credentials of alice or bob.
func newIdentityBasicServer(t *testing.T, log *identityLog) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.trip()
		if u, p, ok := r.BasicAuth(); ok && p != "" && identityPasswords[u] == p {
			log.serve(w, r, u)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="people"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// newIdentityDigestServer is a strict RFC 7616 MD5 qop=auth server for
// alice and bob: it hands out a fresh nonce with every challenge, checks
// the response hash, and refuses an nc already used with a nonce.
func newIdentityDigestServer(t *testing.T, log *identityLog) *httptest.Server {
	const realm = "people"
	var mu sync.Mutex
	nonces := map[string]map[string]bool{} // nonce issued → nc values seen
	n := 0
	verify := func(r *http.Request) (string, bool) {
		cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
		if len(cs) != 1 || !cs[0].Is("Digest") {
			return "", false
		}
		c := &cs[0]
		user := c.Param("username")
		pw, ok := identityPasswords[user]
		if !ok || c.Param("realm") != realm || c.Param("qop") != "auth" || c.Param("uri") != r.RequestURI {
			return "", false
		}
		nonce, nc, cnonce := c.Param("nonce"), c.Param("nc"), c.Param("cnonce")
		ha1 := md5hex(user + ":" + realm + ":" + pw)
		ha2 := md5hex(r.Method + ":" + c.Param("uri"))
		if c.Param("response") != md5hex(ha1+":"+nonce+":"+nc+":"+cnonce+":auth:"+ha2) {
			return "", false
		}
		mu.Lock()
		defer mu.Unlock()
		seen, issued := nonces[nonce]
		if !issued || seen[nc] {
			return "", false // unknown nonce, or nc replayed
		}
		seen[nc] = true
		return user, true
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.trip()
		if user, ok := verify(r); ok {
			log.serve(w, r, user)
			return
		}
		mu.Lock()
		n++
		nonce := fmt.Sprintf("nonce-%d-%x", n, rand.Uint64())
		nonces[nonce] = map[string]bool{}
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Digest realm="`+realm+`", nonce="`+nonce+`", qop="auth"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// newIdentityProxy is a plain-http proxy that wants Basic
// Proxy-Authorization of alice or bob, and then answers every request
// itself (it does not forward).
func newIdentityProxy(t *testing.T, log *identityLog) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.trip()
		asAuth := &http.Request{Header: http.Header{"Authorization": {r.Header.Get("Proxy-Authorization")}}}
		if u, p, ok := asAuth.BasicAuth(); ok && p != "" && identityPasswords[u] == p {
			log.serve(w, r, u)
			return
		}
		w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// identitySetup makes a server and a Transport for one sub-test, and
// returns the URL to request.
type identitySetup func(t *testing.T, log *identityLog) (*anyauth.Transport, string)

// sendAs sends GET target as user, with request id id, and returns the
// status.
func sendAs(tr *anyauth.Transport, target, user, id string) (int, error) {
	req, err := http.NewRequestWithContext(withIdentity(context.Background(), user), http.MethodGet, target, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Request-Id", id)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// firstFew joins the first ten of s, saying how many more there are.
func firstFew(s []string) string {
	if len(s) <= 10 {
		return strings.Join(s, ", ")
	}
	return strings.Join(s[:10], ", ") + fmt.Sprintf(" and %d more", len(s)-10)
}

// the cache of protection spaces ignores who is asking. A
// CredentialFunc that answers with the user of the request's context
// must see each request served as its own user, but once one user's
// answer is cached every later request of the space goes out (and is
// served) as that user, for Basic, Digest and a proxy alike.
func TestPerRequestIdentity(t *testing.T) {
	setups := []struct {
		name       string
		setup      identitySetup
		boundTrips bool
	}{
		{"Basic", func(t *testing.T, log *identityLog) (*anyauth.Transport, string) {
			srv := newIdentityBasicServer(t, log)
			base := &http.Transport{}
			t.Cleanup(base.CloseIdleConnections)
			return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: identityCredentials}, srv.URL + "/private/doc"
		}, true},
		{"Digest", func(t *testing.T, log *identityLog) (*anyauth.Transport, string) {
			srv := newIdentityDigestServer(t, log)
			base := &http.Transport{}
			t.Cleanup(base.CloseIdleConnections)
			return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: identityCredentials}, srv.URL + "/private/doc"
		}, true},
		{"Proxy", func(t *testing.T, log *identityLog) (*anyauth.Transport, string) {
			p := newIdentityProxy(t, log)
			proxyURL, _ := url.Parse(p.URL)
			base := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
			t.Cleanup(base.CloseIdleConnections)
			tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, ProxyCredentials: identityCredentials}
			t.Cleanup(tr.CloseIdleConnections)
			return tr, "http://example.invalid/x" // the proxy answers it
		}, false},
	}
	for _, s := range setups {
		t.Run(s.name+"/Alternating", func(t *testing.T) {
			log := newIdentityLog()
			tr, target := s.setup(t, log)
			const n = 20
			var wrong []string
			for i := range n {
				user := []string{"alice", "bob"}[i%2]
				id := fmt.Sprint(i)
				code, err := sendAs(tr, target, user, id)
				if err != nil {
					t.Fatalf("request %d as %s: %v", i, user, err)
				}
				if code != http.StatusOK {
					t.Fatalf("request %d as %s: status %d", i, user, code)
				}
				if got, _ := log.servedAs(id); got != user {
					wrong = append(wrong, fmt.Sprintf("#%d %s→%s", i, user, got))
				}
			}
			trips := log.roundTrips()
			t.Logf("%d round trips for %d alternating requests", trips, n)
			if len(wrong) > 0 {
				t.Errorf("%d of %d requests served as another user (want→served): %s", len(wrong), n, firstFew(wrong))
			}
			if s.boundTrips && trips > n+2 {
				t.Errorf("%d round trips for %d requests of 2 users, want at most %d (one challenge per identity)", trips, n, n+2)
			}
		})
		t.Run(s.name+"/Concurrent", func(t *testing.T) {
			log := newIdentityLog()
			tr, target := s.setup(t, log)
			const workers, each = 4, 25
			type result struct {
				id, user string
				code     int
				err      error
			}
			var mu sync.Mutex
			var results []result
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					for i := range each {
						user := []string{"alice", "bob"}[rand.IntN(2)]
						id := fmt.Sprintf("%d-%d", g, i)
						code, err := sendAs(tr, target, user, id)
						mu.Lock()
						results = append(results, result{id, user, code, err})
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			var wrong, failed []string
			for _, r := range results {
				if r.err != nil || r.code != http.StatusOK {
					failed = append(failed, fmt.Sprintf("#%s %s: %d %v", r.id, r.user, r.code, r.err))
					continue
				}
				if got, _ := log.servedAs(r.id); got != r.user {
					wrong = append(wrong, fmt.Sprintf("#%s %s→%s", r.id, r.user, got))
				}
			}
			t.Logf("%d round trips for %d concurrent requests", log.roundTrips(), workers*each)
			if len(failed) > 0 {
				t.Errorf("%d of %d requests failed: %s", len(failed), workers*each, firstFew(failed))
			}
			if len(wrong) > 0 {
				t.Errorf("%d of %d requests served as another user (want→served): %s", len(wrong), workers*each, firstFew(wrong))
			}
		})
	}
}

// sliceScheme is a user-written scheme whose Session is a struct value
// holding a slice: comparing two such sessions with == panics.
type sliceScheme struct{}

func (sliceScheme) Name() string           { return "Slice" }
func (sliceScheme) Traits() anyauth.Traits { return anyauth.Traits{} }

func (sliceScheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthDigest, c.Param("gen") != ""
}

func (sliceScheme) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	if up == nil {
		return nil, anyauth.ErrNoCredentials
	}
	return sliceSession{user: up.Username, gens: []string{c.Param("gen")}}, nil
}

// sliceSession is deliberately a value, not a pointer, and uncomparable.
type sliceSession struct {
	user string
	gens []string
}

func (s sliceSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return sliceLeg{s}, nil
}

type sliceLeg struct{ s sliceSession }

func (l sliceLeg) Apply(req *http.Request) error {
	req.Header.Set("Authorization", "Slice user="+l.s.user+", gen="+l.s.gens[0])
	return nil
}

func (sliceLeg) Continue(context.Context, *http.Response, *anyauth.Challenge) (bool, error) {
	return false, nil
}

func (sliceLeg) Finish(*http.Response) error { return nil }

// the cache removes a refused entry by comparing sessions with
// ==, which panics ("comparing uncomparable type") for a Session that is
// a struct value holding a slice. Sequence: one realm answered in /a/ and
// in /b/ (the cache then holds a trimmed copy of /a/'s entry, then /b/'s),
// the server changes its generation, and the preemptive answer in /b/ is
// refused: remove compares /a/'s session with /b/'s.
func TestUncomparableSessionNoPanic(t *testing.T) {
	var gen atomic.Int32
	gen.Store(1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := fmt.Sprint(gen.Load())
		if r.Header.Get("Authorization") == "Slice user="+testUser+", gen="+g {
			fmt.Fprint(w, "in")
			return
		}
		w.Header().Set("WWW-Authenticate", `Slice realm="r", gen="`+g+`"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{sliceScheme{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	roundTrip := func(p string) (code int) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Fatalf("GET %s panicked: %v", p, r)
			}
		}()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	var codes []int
	codes = append(codes, roundTrip("/a/x"), roundTrip("/b/x")) // both cached, one realm
	gen.Store(2)                                                // every cached answer is now refused
	codes = append(codes, roundTrip("/b/x"), roundTrip("/a/x"), roundTrip("/b/x"))
	if fmt.Sprint(codes) != "[200 200 200 200 200]" {
		t.Fatalf("statuses %v, want all 200", codes)
	}
}

// a cached protection space keeps the server's challenge line
// alive (realm and parameters are substrings of it, and Digest sessions
// stay in the Transport's Store), so a server that sends huge challenges
// for fresh realms pins memory without bound. 256 spaces, each challenged
// with a 1 MiB line, must not leave 16 MiB behind.
func TestHugeChallengesDoNotPinMemory(t *testing.T) {
	pad := strings.Repeat("a", 1<<20)
	variants := []struct {
		name      string
		challenge func(i int) string
	}{
		{"DigestParam", func(i int) string {
			return fmt.Sprintf(`Digest realm="realm-%d", nonce="nonce-%d-%x", qop="auth", x="%s"`, i, i, rand.Uint64(), pad)
		}},
		{"BasicRealm", func(i int) string {
			return fmt.Sprintf(`Basic realm="%d%s"`, i, pad)
		}},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "" {
					return // any answer is accepted, so the space is cached
				}
				w.Header().Set("WWW-Authenticate", v.challenge(int(n.Add(1))))
				w.WriteHeader(http.StatusUnauthorized)
			}))
			defer srv.Close()
			base := &http.Transport{MaxResponseHeaderBytes: 4 << 20}
			defer base.CloseIdleConnections()
			tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}, schemes.Digest{}},
				Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&before)
			const spaces = 256
			for i := range spaces {
				u := fmt.Sprintf("%s/d%d/x", srv.URL, i)
				if code, _ := get(t, tr, u); code != http.StatusOK {
					t.Fatalf("GET %s: status %d", u, code)
				}
			}
			base.CloseIdleConnections()
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(tr)
			growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("heap held after %d spaces with 1 MiB challenges: %+.1f MiB (HeapAlloc %.1f → %.1f MiB)",
				spaces, float64(growth)/(1<<20), float64(before.HeapAlloc)/(1<<20), float64(after.HeapAlloc)/(1<<20))
			if growth >= 16<<20 {
				t.Errorf("the Transport holds %.1f MiB after %d huge challenges, want less than 16 MiB", float64(growth)/(1<<20), spaces)
			}
		})
	}
}

// the space of a challenged path is its directory as the server
// resolves it, but "%2F" is not taken as "/": /a%2Fx, which a decoding
// server serves as /a/x, gets the space "/" instead of "/a/", so its
// answer goes preemptively to /a/../b/x (that is, /b/x).
func TestEncodedSlashNarrowsTheSpace(t *testing.T) {
	var mu sync.Mutex
	var sentToB []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path) // %2F decoded, dot segments resolved
		if strings.HasPrefix(p, "/b/") {
			mu.Lock()
			sentToB = append(sentToB, r.Header.Get("Authorization"))
			mu.Unlock()
		}
		if u, pw, ok := r.BasicAuth(); ok && u == testUser && pw == testPass {
			fmt.Fprint(w, "in")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	if code, _ := get(t, tr, srv.URL+"/a%2Fx"); code != http.StatusOK {
		t.Fatalf("/a%%2Fx: status %d", code)
	}
	code, _ := get(t, tr, srv.URL+"/a/../b/x")
	mu.Lock()
	defer mu.Unlock()
	if len(sentToB) == 0 || sentToB[0] != "" {
		t.Fatalf("/b/x first received Authorization %q (all: %q): the answer for /a%%2Fx was sent beyond /a/", firstOrNone(sentToB), sentToB)
	}
	if code != http.StatusOK {
		t.Fatalf("/a/../b/x: status %d", code)
	}
}

func firstOrNone(s []string) string {
	if len(s) == 0 {
		return "<no request>"
	}
	return s[0]
}

// Basic answers a challenge that parses as token68
// ("Basic realm=, charset=..." gives Token68 "realm="), sending the
// password to a realm it never named. It must leave it unanswered.
func TestBasicIgnoresToken68Challenge(t *testing.T) {
	const challenge = `Basic realm=, charset="UTF-8"`
	cs := anyauth.ParseChallenges(challenge)
	if len(cs) == 0 || !cs[0].Is("Basic") || cs[0].Token68 == "" {
		t.Fatalf("precondition: %q parsed as %+v, want a Basic challenge with a Token68", challenge, cs)
	}
	t.Logf("%q parses as %d challenge(s); the first is Basic with Token68 %q and realm %q", challenge, len(cs), cs[0].Token68, cs[0].Realm())
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auths = append(auths, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", challenge)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	base := &http.Transport{}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	code, _ := get(t, tr, srv.URL+"/")
	mu.Lock()
	defer mu.Unlock()
	if code != http.StatusUnauthorized || len(auths) != 1 || auths[0] != "" {
		t.Fatalf("status %d; the server saw %d request(s) with Authorization %q: a token68 Basic challenge was answered", code, len(auths), auths)
	}
}
