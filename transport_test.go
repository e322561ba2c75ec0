package anyauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

const (
	testUser = "alice"
	testPass = "s3cret pass"
)

// basicServer is an httptest server that wants Basic credentials under
// /private/ and counts what it sees.
type basicServer struct {
	*httptest.Server
	hits, unauthorized atomic.Int64
	mu                 sync.Mutex
	auths              []string // Authorization headers seen, in order
	bodies             []string
}

func newBasicServer(t *testing.T) *basicServer {
	s := &basicServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *basicServer) serve(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.auths = append(s.auths, r.Header.Get("Authorization"))
	s.bodies = append(s.bodies, string(body))
	s.mu.Unlock()
	if !strings.HasPrefix(r.URL.Path, "/private/") {
		fmt.Fprint(w, "public")
		return
	}
	u, p, ok := r.BasicAuth()
	if !ok || u != testUser || p != testPass {
		s.unauthorized.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="private", charset="UTF-8"`)
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, "who are you?")
		return
	}
	fmt.Fprintf(w, "hello %s, you sent %d bytes", u, len(body))
}

// assertNoCredentials fails the test if s received any Authorization.
func (s *basicServer) assertNoCredentials(t *testing.T) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.auths {
		if a != "" {
			t.Fatalf("%s received credentials: %q", s.URL, a)
		}
	}
}

func basicTransport(origin string) *anyauth.Transport {
	return &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Basic{}},
		Credentials: anyauth.ForOrigin(origin, testUser, testPass),
	}
}

func get(t *testing.T, rt http.RoundTripper, rawURL string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, rawURL, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestBasicAnsweredThenPreemptive(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	const n = 5
	for i := range n {
		if code, body := get(t, tr, srv.URL+"/private/doc"); code != 200 || !strings.HasPrefix(body, "hello alice") {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	if got := srv.hits.Load(); got != n+1 {
		t.Errorf("%d requests cost %d round trips, want %d", n, got, n+1)
	}
	if got := srv.unauthorized.Load(); got != 1 {
		t.Errorf("%d 401s, want 1", got)
	}
}

// Forget drops what the Transport learned: the next request is
// challenged again (for rotated credentials, say).
func TestForgetDropsKnownSpaces(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	get(t, tr, srv.URL+"/private/x")
	get(t, tr, srv.URL+"/private/x")
	tr.Forget()
	get(t, tr, srv.URL+"/private/x")
	if got := srv.unauthorized.Load(); got != 2 {
		t.Fatalf("%d 401s, want 2: one at first, one after Forget", got)
	}
	if s := tr.String(); !strings.Contains(s, "known spaces:1") {
		t.Errorf("String() = %q", s)
	}
}

// A SelectorFunc replaces the default ranking: here Basic is preferred
// over a stronger scheme, as a user who must may choose.
func TestSelectorFuncReplacesRanking(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		if strings.HasPrefix(auth, "Basic") {
			return nil
		}
		return []string{`Strong nonce=1`, `Basic realm="r"`}
	})
	preferBasic := anyauth.SelectorFunc(func(c []anyauth.Candidate) []anyauth.Candidate {
		var out []anyauth.Candidate
		for _, x := range c {
			if x.Scheme.Name() == "Basic" {
				out = append(out, x)
			}
		}
		return out
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Strong", 250, false}}, Credentials: anyCreds(), Selector: preferBasic}
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 || len(*seen) != 2 || !strings.HasPrefix((*seen)[1], "Basic") {
		t.Fatalf("status %d, server saw %q: the custom selector was not used", code, *seen)
	}
}

// RFC 7617 §2.2: a space covers the directory of the challenged URI and
// below, nothing else.
func TestPreemptiveScopeIsThePathPrefix(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	get(t, tr, srv.URL+"/private/a/doc")
	srv.mu.Lock()
	srv.auths = nil
	srv.mu.Unlock()
	get(t, tr, srv.URL+"/private/a/b/deeper") // covered
	get(t, tr, srv.URL+"/public")             // not covered
	get(t, tr, srv.URL+"/private/other")      // not covered: challenged again
	srv.mu.Lock()
	defer srv.mu.Unlock()
	sent := []bool{}
	for _, a := range srv.auths {
		sent = append(sent, a != "")
	}
	want := []bool{true, false, false, true}
	if fmt.Sprint(sent) != fmt.Sprint(want) {
		t.Fatalf("Authorization sent per round trip %v, want %v", sent, want)
	}
}

// trackingBody records whether it was closed.
type trackingBody struct {
	io.Reader
	closed atomic.Int32
}

func (b *trackingBody) Close() error { b.closed.Add(1); return nil }

func TestRequestNotMutatedAndBodyClosed(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	body := &trackingBody{Reader: strings.NewReader("payload")}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/private/post", body)
	req.Header.Set("X-Custom", "1")
	before := req.Header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "7 bytes") {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
	if fmt.Sprint(req.Header) != fmt.Sprint(before) || req.Header.Get("Authorization") != "" {
		t.Errorf("caller's headers changed: %v -> %v", before, req.Header)
	}
	if body.closed.Load() == 0 {
		t.Error("caller's body was not closed")
	}
}

func TestBodyReplayedEveryWay(t *testing.T) {
	payload := strings.Repeat("0123456789", 10_000) // 100 kB
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte("skip:"+payload), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]func() *http.Request{
		"GetBody": func() *http.Request {
			r, _ := http.NewRequest("POST", "", bytes.NewReader([]byte(payload)))
			return r
		},
		"seekable file at an offset": func() *http.Request {
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			f.Seek(5, io.SeekStart)
			r, _ := http.NewRequest("POST", "", f)
			r.ContentLength = int64(len(payload))
			return r
		},
		"plain reader buffered": func() *http.Request {
			r, _ := http.NewRequest("POST", "", io.NopCloser(strings.NewReader(payload)))
			return r
		},
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			srv := newBasicServer(t)
			tr := basicTransport(srv.URL)
			req := mk()
			req.URL, _ = url.Parse(srv.URL + "/private/upload")
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.bodies) != 2 || srv.bodies[0] != payload || srv.bodies[1] != payload {
				lens := []int{}
				for _, b := range srv.bodies {
					lens = append(lens, len(b))
				}
				t.Fatalf("server saw bodies of lengths %v, want the %d-byte payload twice", lens, len(payload))
			}
		})
	}
}

// A transport may still read an attempt's body after returning its
// response. For a seekable body that shares one file offset, such a late
// read must fail rather than eat into the replay.
func TestLateReadOfSeekableBodyCannotCorruptReplay(t *testing.T) {
	payload := strings.Repeat("abcdefghij", 1000)
	file := filepath.Join(t.TempDir(), "body")
	os.WriteFile(file, []byte(payload), 0o600)
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	var first io.Reader
	var replayed string
	var lateErr error
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if first == nil {
			first = r.Body // not read now: "the transport is still writing"
			return fakeResponse(r, 401, "", "WWW-Authenticate", `Basic realm="r"`), nil
		}
		_, lateErr = first.Read(make([]byte, 100)) // the old attempt reads late
		b, _ := io.ReadAll(r.Body)
		replayed = string(b)
		return fakeResponse(r, 200, ""), nil
	})
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyCreds()}
	req, _ := http.NewRequest("PUT", "http://127.0.0.1:9/up", f)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if lateErr == nil {
		t.Error("a late read of the first attempt's body succeeded")
	}
	if replayed != payload {
		t.Fatalf("replay sent %d bytes, want the whole %d-byte file", len(replayed), len(payload))
	}
}

// With ExpectContinue, a body that cannot be replayed waits for the
// server's go-ahead: the 401 comes before any of it is sent, and the same
// stream goes with the answer.
func TestExpectContinueSendsStreamAfterChallenge(t *testing.T) {
	var hits, unauthorized atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
			unauthorized.Add(1) // challenged before the body is asked for
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		fmt.Fprintf(w, "got %d bytes", n)
	}))
	defer srv.Close()
	base := &http.Transport{ExpectContinueTimeout: 5 * time.Second}
	defer base.CloseIdleConnections()
	tr := basicTransport(srv.URL)
	tr.Base, tr.MaxBodyBuffer, tr.ExpectContinue = base, 1024, true
	const size = 4 << 20
	body := &trackingBody{Reader: io.MultiReader(strings.NewReader(strings.Repeat("y", size)))}
	req, _ := http.NewRequest("POST", srv.URL+"/private/stream", body)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != fmt.Sprintf("got %d bytes", size) {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	if unauthorized.Load() != 1 || hits.Load() != 2 {
		t.Fatalf("%d round trips with %d 401s, want 2 with 1", hits.Load(), unauthorized.Load())
	}
	if body.closed.Load() != 1 {
		t.Fatalf("caller's body closed %d times, want once", body.closed.Load())
	}
	// Without ExpectContinue the stream is gone after the 401: a typed error.
	tr2 := basicTransport(srv.URL)
	tr2.Base, tr2.MaxBodyBuffer = base, 1024
	req, _ = http.NewRequest("POST", srv.URL+"/other/stream", io.MultiReader(strings.NewReader(strings.Repeat("y", size))))
	if _, err := tr2.RoundTrip(req); !errors.Is(err, anyauth.ErrBodyNotReplayable) {
		t.Fatalf("without ExpectContinue: err %v, want ErrBodyNotReplayable", err)
	}
}

func TestUnreplayableBodyGivesTypedError(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	tr.MaxBodyBuffer = 1024
	body := &trackingBody{Reader: strings.NewReader(strings.Repeat("x", 4096))}
	req, _ := http.NewRequest("POST", srv.URL+"/private/upload", body)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got %d, want an error", resp.StatusCode)
	}
	var bre *anyauth.BodyNotReplayableError
	if !errors.Is(err, anyauth.ErrBodyNotReplayable) || !errors.As(err, &bre) || bre.Status != 401 {
		t.Fatalf("error %v is not a BodyNotReplayableError for a 401", err)
	}
	if !strings.Contains(err.Error(), "GetBody") || !strings.Contains(err.Error(), "MaxBodyBuffer") {
		t.Errorf("error does not say how to fix it: %v", err)
	}
	if got := srv.hits.Load(); got != 1 {
		t.Errorf("body sent %d times, want once", got)
	}
	if body.closed.Load() == 0 {
		t.Error("body not closed")
	}
	// Once the space is known the same body goes through preemptively.
	get(t, tr, srv.URL+"/private/warmup")
	body2 := &trackingBody{Reader: strings.NewReader(strings.Repeat("x", 4096))}
	req2, _ := http.NewRequest("POST", srv.URL+"/private/upload", body2)
	resp2, err := tr.RoundTrip(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != 200 {
		t.Fatalf("preemptive upload: %d", resp2.StatusCode)
	}
}

// A Transport without Schemes can answer nothing: it says so at once, as
// oauth2.Transport does without a Source, instead of handing back 401s.
func TestNoSchemesIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	body := &closeRecorder{Reader: strings.NewReader("x")}
	req, _ := http.NewRequest("POST", srv.URL, body)
	_, err := (&anyauth.Transport{}).RoundTrip(req)
	if !errors.Is(err, anyauth.ErrNoSchemes) || !strings.Contains(err.Error(), "schemes.NewTransport") || !body.closed {
		t.Fatalf("err %v (body closed %t), want ErrNoSchemes naming the short path", err, body.closed)
	}
}

func TestNothingAnswerableReturnsResponseUntouched(t *testing.T) {
	cases := map[string]struct {
		header string
		tr     *anyauth.Transport
	}{
		"unknown scheme": {`Newauth realm="apps", type=1`, &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.CredentialTable{{Host: "*", UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}}}},
		"no credentials": {`Basic realm="x"`, &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}}},
		"malformed":      {`Basic realm="unterminated`, &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.CredentialTable{{Host: "*", UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				w.Header().Set("WWW-Authenticate", c.header)
				w.Header().Set("X-Server", "kept")
				w.WriteHeader(401)
				fmt.Fprint(w, "the server's own words")
			}))
			defer srv.Close()
			code, body := get(t, c.tr, srv.URL+"/x")
			if code != 401 || body != "the server's own words" || hits.Load() != 1 {
				t.Fatalf("got %d %q after %d round trips", code, body, hits.Load())
			}
		})
	}
}

func TestWrongPasswordStopsAfterOneAnswer(t *testing.T) {
	srv := newBasicServer(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, "wrong")}
	code, body := get(t, tr, srv.URL+"/private/x")
	if code != 401 || body != "who are you?" {
		t.Fatalf("got %d %q", code, body)
	}
	if got := srv.hits.Load(); got != 2 {
		t.Fatalf("%d round trips, want 2", got)
	}
}

// A server that challenges forever with fresh realms gets the password
// once: credentials it refused are not offered to its next realm.
func TestEndlessChallengesAreBounded(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Basic realm="realm-%d"`, n))
		w.WriteHeader(401)
		fmt.Fprintf(w, "no %d", n)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, "u", "p")}
	code, body := get(t, tr, srv.URL+"/")
	if want := int32(2); hits.Load() != want {
		t.Fatalf("%d round trips, want %d", hits.Load(), want)
	}
	if code != 401 || body != fmt.Sprintf("no %d", hits.Load()) {
		t.Fatalf("last response not returned as it came: %d %q", code, body)
	}
}

func TestContextCancelled(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(401)
			return
		}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	tr := basicTransport(srv.URL)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want context.DeadlineExceeded", err)
	}
}

// fixedScheme is a custom scheme for tests: it answers "<name>
// nonce=<nonce>" with the given strength, and, when stale is set, adopts
// a stale=true challenge's nonce.
type fixedScheme struct {
	name     string
	strength anyauth.Strength
	stale    bool // Continue adopts stale=true
}

func (s fixedScheme) Name() string           { return s.name }
func (s fixedScheme) Traits() anyauth.Traits { return anyauth.Traits{} }
func (s fixedScheme) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	return s.strength, true
}
func (s fixedScheme) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if _, err := a.Credentials.Credentials(ctx, &a.Space); err != nil {
		return nil, err
	}
	return &fixedSession{scheme: s, header: a.Space.AnswerHeader(), nonce: c.Param("nonce")}, nil
}

type fixedSession struct {
	scheme fixedScheme
	header string
	mu     sync.Mutex
	nonce  string
}

func (s *fixedSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return fixedLeg{s}, nil
}

type fixedLeg struct{ s *fixedSession }

func (l fixedLeg) Apply(req *http.Request) error {
	l.s.mu.Lock()
	defer l.s.mu.Unlock()
	req.Header.Set(l.s.header, l.s.scheme.name+" nonce="+l.s.nonce)
	return nil
}
func (l fixedLeg) Continue(_ context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if !l.s.scheme.stale || c == nil || c.Param("stale") != "true" {
		return false, nil
	}
	l.s.mu.Lock()
	l.s.nonce = c.Param("nonce")
	l.s.mu.Unlock()
	return true, nil
}
func (fixedLeg) Finish(*http.Response) error { return nil }

// recordingServer answers 401 with the challenges challenge(n, auth)
// returns (none means 200) and records every Authorization.
func recordingServer(t *testing.T, challenge func(n int, auth string) []string) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		n := len(seen)
		mu.Unlock()
		chs := challenge(n, r.Header.Get("Authorization"))
		if len(chs) == 0 {
			fmt.Fprint(w, "ok")
			return
		}
		for _, c := range chs {
			w.Header().Add("WWW-Authenticate", c)
		}
		w.WriteHeader(401)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func anyCreds() anyauth.CredentialProvider {
	return anyauth.CredentialTable{{Host: "*", UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}}
}

func TestStrongestChallengeChosen(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		if auth == "Strong nonce=1" {
			return nil
		}
		return []string{`Basic realm="r", Weak nonce=1`, `Strong nonce=1`}
	})
	tr := &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Weak", 150, false}, fixedScheme{"Strong", 250, false}},
		Credentials: anyCreds(),
	}
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 {
		t.Fatalf("status %d; server saw %q", code, *seen)
	}
	if got := (*seen)[1]; got != "Strong nonce=1" {
		t.Fatalf("answered with %q, want the Strong scheme", got)
	}
}

func TestNoDowngradeAfterRejection(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		return []string{`Strong nonce=1`, `Basic realm="r"`}
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Strong", 250, false}}, Credentials: anyCreds()}
	if code, _ := get(t, tr, srv.URL+"/"); code != 401 {
		t.Fatalf("status %d", code)
	}
	if len(*seen) != 2 || strings.HasPrefix((*seen)[1], "Basic") {
		t.Fatalf("server saw %q: Basic tried after Strong was rejected", *seen)
	}
}

func TestFloorRefusesWeakChallenges(t *testing.T) {
	srv, seen := recordingServer(t, func(int, string) []string { return []string{`Basic realm="r"`} })
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyCreds(),
		Selector: anyauth.StrongestFirst{Floor: anyauth.StrengthDigest}}
	if code, _ := get(t, tr, srv.URL+"/"); code != 401 || len(*seen) != 1 {
		t.Fatalf("status %d after %d round trips; want the 401 after one", code, len(*seen))
	}
}

func TestStaleRetriedOnceWithoutRejection(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		switch auth {
		case "Strong nonce=2":
			return nil
		case "Strong nonce=1":
			return []string{`Strong nonce=2, stale=true`}
		}
		return []string{`Strong nonce=1`}
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{fixedScheme{"Strong", 250, true}}, Credentials: anyCreds()}
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 {
		t.Fatalf("status %d, server saw %q", code, *seen)
	}
	// Endless stale challenges are continued until the answer budget
	// (DefaultMaxAnswers) is spent: 1 + 4 round trips, then the last 401.
	srv2, seen2 := recordingServer(t, func(n int, auth string) []string {
		return []string{fmt.Sprintf(`Strong nonce=%d, stale=true`, n)}
	})
	if code, _ := get(t, tr, srv2.URL+"/"); code != 401 || len(*seen2) != 1+anyauth.DefaultMaxAnswers {
		t.Fatalf("endless stale: status %d after %d round trips, want 401 after %d", code, len(*seen2), 1+anyauth.DefaultMaxAnswers)
	}
}

func TestCleartextRefusedToRemoteHosts(t *testing.T) {
	srv := newBasicServer(t)
	// Reach the loopback server under a non-loopback name.
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	defer base.CloseIdleConnections()
	remote := "http://service.example:8080"
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(remote, testUser, testPass)}
	req, _ := http.NewRequest("GET", remote+"/private/x", nil)
	_, err := tr.RoundTrip(req)
	var ce *anyauth.CleartextError
	if !errors.As(err, &ce) || !errors.Is(err, anyauth.ErrCleartext) {
		t.Fatalf("err = %v, want a CleartextError", err)
	}
	for _, want := range []string{"service.example", "AllowCleartext", "CleartextHosts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	srv.assertNoCredentials(t)
	tr.CleartextHosts = []string{"service.example"}
	req, _ = http.NewRequest("GET", remote+"/private/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with CleartextHosts: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Credentials for one origin never go to another, even when the client
// follows a redirect there and it challenges.
func TestRedirectToAnotherOriginGetsNothing(t *testing.T) {
	other := newBasicServer(t)
	home := newBasicServer(t)
	home.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/private/go" {
			if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPass {
				w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
				w.WriteHeader(401)
				return
			}
			http.Redirect(w, r, other.URL+"/private/x", http.StatusFound)
			return
		}
		home.serve(w, r)
	})
	client := &http.Client{Transport: basicTransport(home.URL)}
	resp, err := client.Get(home.URL + "/private/go")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want the other origin's 401", resp.StatusCode)
	}
	other.assertNoCredentials(t)
}

func TestCookieFrom401ReachesReplay(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			http.SetCookie(w, &http.Cookie{Name: "session", Value: "abc"})
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(401)
			return
		}
		c, err := r.Cookie("session")
		if err != nil || c.Value != "abc" {
			w.WriteHeader(400)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	tr := basicTransport(srv.URL)
	tr.Jar = jar
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 {
		t.Fatalf("status %d: the cookie set on the 401 did not reach the replay", code)
	}
}

func TestConnectionReusedAfter401(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	var dials atomic.Int32
	trace := &httptrace.ClientTrace{ConnectStart: func(string, string) { dials.Add(1) }}
	for range 3 {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL+"/private/x", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if dials.Load() != 1 {
		t.Fatalf("%d dials for 4 round trips, want 1", dials.Load())
	}
}

func TestConcurrentUse(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	const goroutines, each = 32, 20
	var wg sync.WaitGroup
	var failures atomic.Int32
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				req, _ := http.NewRequest("POST", srv.URL+"/private/x", strings.NewReader("body"))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					failures.Add(1)
					continue
				}
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d requests failed", failures.Load())
	}
	if extra := srv.unauthorized.Load(); extra > goroutines {
		t.Fatalf("%d 401s for %d goroutines", extra, goroutines)
	}
}

func TestCallerAuthorizationLeftAlone(t *testing.T) {
	srv := newBasicServer(t)
	tr := basicTransport(srv.URL)
	req, _ := http.NewRequest("GET", srv.URL+"/private/x", nil)
	req.Header.Set("Authorization", "Bearer caller-owned")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || srv.hits.Load() != 1 {
		t.Fatalf("status %d after %d round trips: the caller's Authorization was overridden", resp.StatusCode, srv.hits.Load())
	}
}
