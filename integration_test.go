package anyauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// Integration tests: the Transport against real servers. go-httpbin runs
// in process; Apache httpd and lighttpd are started from their Debian
// packages by internal/testserver, once per test binary. Under CI=true a
// missing server fails the test; elsewhere it skips, saying why.

var (
	serversMu sync.Mutex
	servers   = map[string]*testserver.Server{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	benchRedis.r.Close()
	closeDPoPStack()
	closeRegistry()
	closeSquid()
	closeAD()
	serversMu.Lock()
	for _, s := range servers {
		s.Close()
	}
	serversMu.Unlock()
	os.Exit(code)
}

// realServer starts (once) and returns the named server.
func realServer(t *testing.T, name string, start func() (*testserver.Server, error)) *testserver.Server {
	t.Helper()
	serversMu.Lock()
	defer serversMu.Unlock()
	if s := servers[name]; s != nil {
		return s
	}
	s, err := start()
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("%s: %v", name, err)
		}
		t.Skipf("%s not installed (run make test, which installs it): %v", name, err)
	}
	servers[name] = s
	return s
}

func apache(t *testing.T) *testserver.Server { return realServer(t, "apache", testserver.StartApache) }
func lighttpd(t *testing.T) *testserver.Server {
	return realServer(t, "lighttpd", testserver.StartLighttpd)
}

// authRecorder is a Base that records the scheme of every Authorization it
// sends, so a test sees what was chosen.
type authRecorder struct {
	mu      sync.Mutex
	base    http.RoundTripper
	schemes []string
}

func (a *authRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	scheme := ""
	if cs := anyauth.ParseChallenges(r.Header.Get("Authorization")); len(cs) == 1 {
		scheme = cs[0].Scheme
		if alg := cs[0].Param("algorithm"); alg != "" {
			scheme += " " + alg
		}
		if cs[0].Param("userhash") == "true" {
			scheme += " userhash"
		}
	}
	a.mu.Lock()
	a.schemes = append(a.schemes, scheme)
	a.mu.Unlock()
	return a.base.RoundTrip(r)
}

func (a *authRecorder) sent() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.schemes...)
}

func newRecordingTransport(origin, user, pass string) (*anyauth.Transport, *authRecorder) {
	rec := &authRecorder{base: &http.Transport{}}
	return &anyauth.Transport{
		Base:        rec,
		Schemes:     []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		Credentials: anyauth.ForOrigin(origin, user, pass),
	}, rec
}

func mustGet(t *testing.T, rt http.RoundTripper, url string, want int) string {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %s %q, want %d", url, resp.Status, b, want)
	}
	return string(b)
}

func TestHTTPBin(t *testing.T) {
	srv := httptest.NewServer(httpbin.New())
	defer srv.Close()
	cases := []struct{ path, scheme string }{
		{"/basic-auth/alice/s3cret", "Basic"},
		{"/digest-auth/auth/alice/s3cret/MD5", "Digest MD5"},
		{"/digest-auth/auth/alice/s3cret/SHA-256", "Digest SHA-256"},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			tr, rec := newRecordingTransport(srv.URL, "alice", "s3cret")
			for range 3 {
				if body := mustGet(t, tr, srv.URL+c.path, 200); !strings.Contains(body, `"authenticated": true`) {
					t.Fatalf("body %s", body)
				}
			}
			want := []string{"", c.scheme, c.scheme, c.scheme} // 3 requests, 4 round trips
			if got := rec.sent(); strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("sent %q, want %q", got, want)
			}
			wrong, _ := newRecordingTransport(srv.URL, "alice", "wrong")
			mustGet(t, wrong, srv.URL+c.path, 401)
		})
	}
}

// expectHits starts counting the round trips the server logs for prefix;
// the function it returns checks how many there were since, and how many
// were 401s. (Servers live for the whole test binary, so counts are
// deltas: -count=N stays correct.)
func expectHits(t *testing.T, s *testserver.Server, prefix string) func(total, unauthorized int) {
	t.Helper()
	total0, unauth0 := s.Hits(prefix)
	return func(total, unauthorized int) {
		t.Helper()
		// The servers' worker threads write their log lines after the
		// response, in any order: read until the count settles.
		var gotTotal, gotUnauth int
		for i := 0; i < 20; i++ {
			gotTotal, gotUnauth = s.Hits(prefix)
			gotTotal, gotUnauth = gotTotal-total0, gotUnauth-unauth0
			if gotTotal == total && gotUnauth == unauthorized {
				time.Sleep(100 * time.Millisecond) // and stays
				gotTotal, gotUnauth = s.Hits(prefix)
				gotTotal, gotUnauth = gotTotal-total0, gotUnauth-unauth0
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if gotTotal != total || gotUnauth != unauthorized {
			t.Errorf("%s %s: %d round trips with %d 401s, want %d with %d\n%s", s.Name, prefix, gotTotal, gotUnauth, total, unauthorized, s.AccessLog())
		}
	}
}

func TestApacheBasic(t *testing.T) {
	s := apache(t)
	tr, rec := newRecordingTransport(s.URL, testserver.User, testserver.Password)
	url := s.URL + testserver.PathBasic + "index.txt"
	check := expectHits(t, s, testserver.PathBasic+"index.txt")
	for range 5 {
		if body := mustGet(t, tr, url, 200); body != testserver.IndexContent(testserver.PathBasic) {
			t.Fatalf("body %q", body)
		}
	}
	check(6, 1)
	if got := strings.Join(rec.sent(), ","); got != ",Basic,Basic,Basic,Basic,Basic" {
		t.Errorf("sent %s", got)
	}
}

// Apache mod_auth_digest: MD5, qop=auth, AuthDigestNcCheck On, and an
// Authentication-Info rspauth on every 200, verified (RequireMutualAuth).
func TestApacheDigest(t *testing.T) {
	s := apache(t)
	tr, rec := newRecordingTransport(s.URL, testserver.User, testserver.Password)
	tr.Schemes = []anyauth.Scheme{schemes.Digest{RequireMutualAuth: true}}
	url := s.URL + testserver.PathDigest + "index.txt"
	check := expectHits(t, s, testserver.PathDigest+"index.txt")
	checkDir := expectHits(t, s, testserver.PathDigest)
	for range 5 {
		if body := mustGet(t, tr, url, 200); body != testserver.IndexContent(testserver.PathDigest) {
			t.Fatalf("body %q", body)
		}
	}
	check(6, 1)
	if got := strings.Join(rec.sent(), ","); got != ",Digest MD5,Digest MD5,Digest MD5,Digest MD5,Digest MD5" {
		t.Errorf("sent %s", got)
	}
	// The domain parameter (/digest/) covers the whole directory.
	mustGet(t, tr, s.URL+testserver.PathDigest, 200)
	checkDir(7, 1)
}

// A POST body replayed after Apache's 401, from each kind of body.
func TestApacheDigestPostReplay(t *testing.T) {
	s := apache(t)
	payload := bytes.Repeat([]byte("anyauth replay "), 8000) // 120 kB
	file := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	bodies := map[string]func() io.Reader{
		"bytes.Reader (GetBody)": func() io.Reader { return bytes.NewReader(payload) },
		"*os.File (seek)": func() io.Reader {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			return f
		},
		"plain reader (buffered)": func() io.Reader { return io.MultiReader(bytes.NewReader(payload)) },
	}
	for name, mk := range bodies {
		for _, path := range []string{testserver.PathDigest, testserver.PathBasic} {
			t.Run(name+path, func(t *testing.T) {
				tr, _ := newRecordingTransport(s.URL, testserver.User, testserver.Password)
				req, _ := http.NewRequest("POST", s.URL+path+"echo", mk())
				req.ContentLength = int64(len(payload))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(got) != testserver.EchoReply(payload) {
					t.Fatalf("%s: %q, want %q", resp.Status, got, testserver.EchoReply(payload))
				}
			})
		}
	}
}

// A stream that cannot be replayed (no GetBody, not seekable, larger than
// the buffer) reaches Apache's echo after its 401 thanks to
// "Expect: 100-continue": Apache challenges before asking for the body.
func TestApacheExpectContinueStream(t *testing.T) {
	s := apache(t)
	payload := bytes.Repeat([]byte("stream "), 300_000) // 2.1 MB
	for _, path := range []string{testserver.PathDigest, testserver.PathBasic} {
		tr, _ := newRecordingTransport(s.URL, testserver.User, testserver.Password)
		tr.Base = &http.Transport{ExpectContinueTimeout: 5 * time.Second}
		tr.MaxBodyBuffer, tr.ExpectContinue = 64<<10, true
		req, _ := http.NewRequest("POST", s.URL+path+"echo", io.MultiReader(bytes.NewReader(payload)))
		req.ContentLength = int64(len(payload))
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != testserver.EchoReply(payload) {
			t.Fatalf("%s: %s %q", path, resp.Status, got)
		}
	}
}

// Apache's /multi/ sends a Basic line and a Digest line: Digest is chosen.
func TestApacheTwoChallengeLinesDigestChosen(t *testing.T) {
	s := apache(t)
	tr, rec := newRecordingTransport(s.URL, testserver.User, testserver.Password)
	mustGet(t, tr, s.URL+testserver.PathMulti+"index.txt", 200)
	if got := strings.Join(rec.sent(), ","); got != ",Digest MD5" {
		t.Fatalf("sent %s, want Digest after the 401", got)
	}
}

// Apache's /digest-stale/ nonces live 2 s: after that the cached answer
// meets stale=true and is retried once with the new nonce, without asking
// for credentials again: the provider is asked once per request (to know
// who the request is), never once more for the stale retry.
func TestApacheDigestStaleNonce(t *testing.T) {
	s := apache(t)
	var asked atomic.Int32
	tr, _ := newRecordingTransport(s.URL, "", "")
	tr.Credentials = anyauth.CredentialFunc(func(ctx context.Context, sp *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		asked.Add(1)
		return &anyauth.UserPassword{Username: testserver.User, Password: testserver.Password}, nil
	})
	name := fmt.Sprintf("stale-%d.txt", time.Now().UnixNano()) // absent: 404 once authenticated
	url := s.URL + testserver.PathDigestStale + name
	mustGet(t, tr, url, 404)
	time.Sleep(testserver.StaleNonceWait)
	mustGet(t, tr, url, 404)
	if asked.Load() != 2 {
		t.Errorf("credentials asked for %d times in 2 requests, want once per request", asked.Load())
	}
	var statuses []int
	for i := 0; i < 20 && len(statuses) < 4; i++ { // log lines may lag
		statuses = statuses[:0]
		for _, h := range s.Requests(testserver.PathDigestStale + name) {
			statuses = append(statuses, h.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fmt.Sprint(statuses) != "[401 404 401 404]" {
		t.Fatalf("statuses %v, want [401 404 401 404]: one 401 at first, one stale 401 later", statuses)
	}
}

// A wrong password costs one answer. On /multi/ (Basic and Digest
// offered) the rejected Digest is not followed by Basic: no downgrade.
func TestApacheWrongPassword(t *testing.T) {
	s := apache(t)
	for _, path := range []string{testserver.PathBasic, testserver.PathDigest, testserver.PathMulti} {
		tr, _ := newRecordingTransport(s.URL, testserver.User, "wrong")
		check := expectHits(t, s, path+"wrong.txt")
		mustGet(t, tr, s.URL+path+"wrong.txt", 401)
		check(2, 2) // one answer, refused; no second scheme tried
	}
}

// Concurrent requests on one Digest space of Apache whose nonces go stale
// every 2 s: every request succeeds. (Apache's /digest/ has
// AuthDigestNcCheck On, which refuses an nc that arrives after a higher
// one of the same client: concurrent requests on several connections
// cannot keep that order, so that location is tested sequentially.)
func TestApacheDigestConcurrent(t *testing.T) {
	s := apache(t)
	tr, _ := newRecordingTransport(s.URL, testserver.User, testserver.Password)
	name := fmt.Sprintf("concurrent-%d.txt", time.Now().UnixNano())
	url := s.URL + testserver.PathDigestStale + name
	const goroutines, each = 8, 12
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				req, _ := http.NewRequest("GET", url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 404 { // authenticated: the file does not exist
					failed.Add(1)
				}
				time.Sleep(250 * time.Millisecond) // 3 s in all: nonces go stale on the way
			}
		}()
	}
	wg.Wait()
	total, unauth := s.Hits(testserver.PathDigestStale + name)
	t.Logf("%d concurrent requests: %d round trips, %d 401s", goroutines*each, total, unauth)
	if failed.Load() > 0 {
		t.Fatalf("%d of %d requests failed", failed.Load(), goroutines*each)
	}
	// One 401 per goroutine at the start, and at most one per goroutine
	// each time the nonce goes stale (twice in 3 s).
	if unauth > 3*goroutines {
		t.Fatalf("%d 401s for %d goroutines", unauth, goroutines)
	}
}

// lighttpd: the RFC 7616 algorithms Apache lacks.
func TestLighttpdDigestAlgorithms(t *testing.T) {
	s := lighttpd(t)
	cases := []struct{ path, want string }{
		{testserver.PathMD5, "Digest MD5"},
		{testserver.PathSHA256, "Digest SHA-256"},
		{testserver.PathSHA512_256, "Digest SHA-512-256"},
		{testserver.PathMulti, "Digest SHA-256"},             // SHA-256 and MD5 offered
		{testserver.PathUserhash, "Digest SHA-256 userhash"}, // userhash=true
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			tr, rec := newRecordingTransport(s.URL, testserver.User, testserver.Password)
			check := expectHits(t, s, c.path+"index.txt")
			for range 3 {
				if body := mustGet(t, tr, s.URL+c.path+"index.txt", 200); body != testserver.IndexContent(c.path) {
					t.Fatalf("body %q", body)
				}
			}
			if got, want := strings.Join(rec.sent(), ","), ","+strings.Repeat(c.want+",", 3); got+"," != want {
				t.Errorf("sent %s, want %s", got, strings.TrimSuffix(want, ","))
			}
			check(4, 1)
		})
	}
}

func TestLighttpdPostReplay(t *testing.T) {
	s := lighttpd(t)
	payload := bytes.Repeat([]byte("x"), 70_000)
	tr, _ := newRecordingTransport(s.URL, testserver.User, testserver.Password)
	req, _ := http.NewRequest("PUT", s.URL+testserver.PathSHA512_256+"echo", bytes.NewReader(payload))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(got) != testserver.EchoReply(payload) {
		t.Fatalf("%s %q", resp.Status, got)
	}
}

// A floor of Digest SHA-256 refuses Apache's MD5 on the first challenge
// and answers lighttpd's SHA-256.
func TestFloorAgainstRealServers(t *testing.T) {
	a, l := apache(t), lighttpd(t)
	for _, c := range []struct {
		url  string
		want int
	}{
		{a.URL + testserver.PathDigest + "index.txt", 401},
		{a.URL + testserver.PathBasic + "index.txt", 401},
		{l.URL + testserver.PathSHA256 + "index.txt", 200},
	} {
		tr, rec := newRecordingTransport(c.url[:strings.Index(c.url[7:], "/")+7], testserver.User, testserver.Password)
		tr.Selector = anyauth.StrongestFirst{Floor: schemes.StrengthDigestSHA256}
		mustGet(t, tr, c.url, c.want)
		if c.want == 401 && len(rec.sent()) != 1 {
			t.Errorf("%s: %d round trips, want 1 (nothing answered below the floor)", c.url, len(rec.sent()))
		}
	}
}

// lighttpd: one realm over directories with different algorithms (/shared-md5/
// beside /shared-sha256/, and beside /shared-sha512-256/). Each directory's
// challenge gets a session of its own: alternating between them, 20
// requests all succeed in 22 round trips (one 401 per directory), and no
// answer carries the other directory's nonce or algorithm.
func TestLighttpdOneRealmTwoAlgorithms(t *testing.T) {
	s := lighttpd(t)
	for _, other := range []string{testserver.PathSharedSHA256, testserver.PathSharedSHA512_256} {
		t.Run(strings.Trim(other, "/"), func(t *testing.T) {
			tr, rec := newRecordingTransport(s.URL, testserver.User, testserver.Password)
			dirs := []string{testserver.PathSharedMD5, other}
			checks := []func(int, int){expectHits(t, s, dirs[0]), expectHits(t, s, dirs[1])}
			for i := range 20 {
				dir := dirs[i%2]
				if body := mustGet(t, tr, s.URL+dir+"index.txt", 200); body != testserver.IndexContent(dir) {
					t.Fatalf("request %d to %s: body %q", i, dir, body)
				}
			}
			alg := map[string]string{testserver.PathSharedMD5: "Digest MD5", testserver.PathSharedSHA256: "Digest SHA-256", testserver.PathSharedSHA512_256: "Digest SHA-512-256"}
			// One 401 per directory, then every answer preemptive, each
			// with its own directory's algorithm.
			want := []string{"", alg[dirs[0]], "", alg[dirs[1]]}
			for i := 2; i < 20; i++ {
				want = append(want, alg[dirs[i%2]])
			}
			if got := rec.sent(); !slices.Equal(got, want) {
				t.Errorf("answers sent %q, want %q", got, want)
			}
			checks[0](11, 1)
			checks[1](11, 1)
		})
	}
}

// The short path (schemes.NewTransport) against real servers: Apache's
// Basic and Digest, lighttpd's Digest SHA-256; credentials given as curl's
// host:port too.
func TestShortPathAgainstRealServers(t *testing.T) {
	a, l := apache(t), lighttpd(t)
	for _, c := range []struct{ origin, url string }{
		{a.URL, a.URL + testserver.PathBasic + "index.txt"},
		{a.URL, a.URL + testserver.PathDigest + "index.txt"},
		{strings.TrimPrefix(l.URL, "http://"), l.URL + testserver.PathSHA256 + "index.txt"},
	} {
		client := &http.Client{Transport: schemes.NewTransport(c.origin, testserver.User, testserver.Password)}
		for range 2 {
			resp, err := client.Get(c.url)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("%s with schemes.NewTransport(%q): %s", c.url, c.origin, resp.Status)
			}
		}
	}
}
