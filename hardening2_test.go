package anyauth_test

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// Hardening, round two: each test reproduces a finding of the adversarial
// review and fails without its fix.

// Finding 2: the preemptive answer of an enclosing realm, met by another
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

// digestMD5Server is a strict RFC 7616 server that hands every challenger
// the same nonce, and refuses an nc already used for it.
type digestMD5Server struct {
	*httptest.Server
	mu    sync.Mutex
	seen  map[string]bool
	trips atomic.Int32
	ok    atomic.Int32
}

func newDigestMD5Server(t *testing.T) *digestMD5Server {
	d := &digestMD5Server{seen: map[string]bool{}}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.trips.Add(1)
		cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
		if len(cs) == 1 && cs[0].Is("Digest") {
			c := &cs[0]
			ha1 := h(testUser + ":r:" + testPass)
			ha2 := h(r.Method + ":" + c.Param("uri"))
			want := h(ha1 + ":" + c.Param("nonce") + ":" + c.Param("nc") + ":" + c.Param("cnonce") + ":auth:" + ha2)
			d.mu.Lock()
			fresh := !d.seen[c.Param("nc")]
			d.seen[c.Param("nc")] = true
			d.mu.Unlock()
			if c.Param("response") == want && c.Param("nonce") == "shared" && fresh {
				d.ok.Add(1)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="shared", qop="auth"`)
		w.WriteHeader(401)
	}))
	t.Cleanup(d.Close)
	return d
}

// Finding 3: sessions given the same nonce share its nonce count.
func TestSameNonceForConcurrentChallengers(t *testing.T) {
	d := newDigestMD5Server(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(d.URL, testUser, testPass)}
	const n = 16
	var wg sync.WaitGroup
	var failed atomic.Int32
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/doc/%d", d.URL, i), nil)
			resp, err := tr.RoundTrip(req)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 || d.ok.Load() != n {
		t.Fatalf("%d of %d requests failed (%d accepted): an nc was sent twice for one nonce", failed.Load(), n, d.ok.Load())
	}
}

// Finding 7: one realm over several directories keeps an answer for each.
func TestOneRealmSeveralDirectories(t *testing.T) {
	srv := newBasicServer(t) // realm "private" on every path
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	for i := range 20 {
		dir := []string{"/private/a/", "/private/b/"}[i%2]
		if code, _ := get(t, tr, srv.URL+dir+"x"); code != 200 {
			t.Fatalf("%s: %d", dir, code)
		}
	}
	if got := srv.hits.Load(); got != 22 {
		t.Fatalf("%d round trips for 20 requests over 2 directories, want 22", got)
	}
}

// Finding 8: a server that answers every answer with a new realm gets the
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

// Finding 9: a 401 body that drips slowly does not hold the replay.
func TestSlowDrippingChallengeBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == testUser && p == testPass {
			fmt.Fprint(w, "in")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(401)
		for range 100 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	start := time.Now()
	if code, body := get(t, tr, srv.URL+"/"); code != 200 || body != "in" {
		t.Fatalf("%d %q", code, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v: the drip held the replay (it lasts 5 s)", took)
	}
}

// Finding 10: scope compares resolved paths: /a/../b/x is in /b/.
func TestPathScopeIsResolved(t *testing.T) {
	var mu sync.Mutex
	sentToB := []string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path) // as a server resolves it
		realm := "A"
		if strings.HasPrefix(p, "/b/") {
			realm = "B"
			mu.Lock()
			sentToB = append(sentToB, r.Header.Get("Authorization"))
			mu.Unlock()
		}
		if u, _, ok := r.BasicAuth(); ok && u == "user-"+realm {
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	perRealm := anyauth.CredentialFunc(func(_ context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		return &anyauth.UserPassword{Username: "user-" + s.Realm, Password: "pw-" + s.Realm}, nil
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: perRealm}
	get(t, tr, srv.URL+"/a/x") // caches realm A at /a/
	req, _ := http.NewRequest("GET", srv.URL+"/a/../b/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || len(sentToB) == 0 || sentToB[0] != "" {
		t.Fatalf("status %d; /b/ received %q first: realm A's credentials followed a textual prefix", resp.StatusCode, sentToB)
	}
}

// Finding 11: a name under .localhost is not loopback for the cleartext
// guard: Go resolves it through DNS.
func TestDotLocalhostIsNotLoopback(t *testing.T) {
	srv := newBasicServer(t)
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	defer base.CloseIdleConnections()
	origin := "http://app.localhost:8080"
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(origin, testUser, testPass)}
	req, _ := http.NewRequest("GET", origin+"/private/x", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, anyauth.ErrCleartext) {
		t.Fatalf("err = %v, want a cleartext refusal", err)
	}
}

// Finding 12: a CredentialTable entry written for a host answers its
// https origin, not http after an https→http redirect on the same host.
func TestCredentialTableNotSentAfterHTTPSToHTTPRedirect(t *testing.T) {
	var plainSaw []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainSaw = append(plainSaw, r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n", qop="auth"`)
		w.WriteHeader(401)
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://h.example/landing", http.StatusFound)
	}))
	defer secure.Close()
	base := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := plain.Listener.Addr().String()
			if strings.HasSuffix(addr, ":443") {
				target = secure.Listener.Addr().String()
			}
			return (&net.Dialer{}).DialContext(ctx, network, target)
		},
	}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}},
		Credentials: anyauth.CredentialTable{{Host: "h.example", UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}}}
	resp, err := (&http.Client{Transport: tr}).Get("https://h.example/start")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || len(plainSaw) != 1 || plainSaw[0] != "" {
		t.Fatalf("status %d; the http origin got %q", resp.StatusCode, plainSaw)
	}
}

// Finding 6: a provider that returns (nil, nil) is "no credentials", not a
// panic, for Basic as for Digest.
func TestNilCredentialsFromProvider(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Basic realm="r"`)
		w.Header().Add("WWW-Authenticate", `Digest realm="r", nonce="n", qop="auth"`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	none := anyauth.CredentialFunc(func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) { return nil, nil })
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, schemes.Digest{}}, Credentials: none}
	if code, _ := get(t, tr, srv.URL+"/"); code != 401 {
		t.Fatalf("status %d, want the 401 untouched", code)
	}
}
