package anyauth_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// Tests of the Scheme contract itself: multi-leg handshakes, the
// never-preemptive trait, errors and their wrapping.

// handshakeScheme answers "Steps" challenges with a handshake of legs
// legs: the client sends "Steps leg<i>", and the server answers the first
// legs-1 of them with 401 "Steps step<i+1>".
type handshakeScheme struct {
	traits anyauth.Traits
	// failOn makes Continue fail at that step.
	failOn int
}

func (handshakeScheme) Name() string             { return "Steps" }
func (s handshakeScheme) Traits() anyauth.Traits { return s.traits }
func (handshakeScheme) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthDigest, true
}
func (s handshakeScheme) Begin(context.Context, *anyauth.Challenge, *anyauth.Attempt) (anyauth.Session, error) {
	return &handshakeSession{scheme: s}, nil
}

type handshakeSession struct {
	scheme handshakeScheme
	mu     sync.Mutex
	starts int
}

func (s *handshakeSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	s.mu.Lock()
	s.starts++
	s.mu.Unlock()
	return &handshakeLeg{s: s, step: 1}, nil
}

type handshakeLeg struct {
	s        *handshakeSession
	step     int
	finished int
}

func (l *handshakeLeg) Apply(req *http.Request) error {
	req.Header.Set("Authorization", fmt.Sprintf("Steps leg%d", l.step))
	return nil
}

func (l *handshakeLeg) Continue(_ context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if c == nil || c.Token68 != fmt.Sprintf("step%d", l.step+1) {
		return false, nil
	}
	if l.step+1 == l.s.scheme.failOn {
		return false, errors.New("steps: the server's token does not verify")
	}
	l.step++
	return true, nil
}

func (l *handshakeLeg) Finish(*http.Response) error {
	l.finished++
	return nil
}

// handshakeServer needs legs legs per request and counts round trips,
// and the first round trips of requests that already carried an answer.
func handshakeServer(t *testing.T, legs int) (*httptest.Server, *int, *int) {
	var mu sync.Mutex
	trips, preemptive := 0, 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		trips++
		auth := r.Header.Get("Authorization")
		if auth == "Steps leg1" && r.Header.Get("X-First") == "1" {
			preemptive++
		}
		mu.Unlock()
		var n int
		if _, err := fmt.Sscanf(auth, "Steps leg%d", &n); err != nil {
			w.Header().Set("WWW-Authenticate", "Steps")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if n < legs {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Steps step%d", n+1))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "through")
	}))
	t.Cleanup(srv.Close)
	return srv, &trips, &preemptive
}

func TestThreeLegHandshake(t *testing.T) {
	srv, trips, _ := handshakeServer(t, 3)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{handshakeScheme{}}}
	code, body := get(t, tr, srv.URL+"/x")
	if code != 200 || body != "through" {
		t.Fatalf("status %d %q, want 200 through", code, body)
	}
	// One challenge, then three legs.
	if *trips != 4 {
		t.Fatalf("%d round trips, want 4 (challenge + 3 legs)", *trips)
	}
}

func TestHandshakeLongerThanBudgetEnds(t *testing.T) {
	srv, trips, _ := handshakeServer(t, 10)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{handshakeScheme{}}, MaxAnswers: 3}
	code, _ := get(t, tr, srv.URL+"/x")
	if code != 401 || *trips != 4 {
		t.Fatalf("status %d after %d round trips, want 401 after 4 (1 + MaxAnswers)", code, *trips)
	}
}

func TestNeverPreemptiveSchemeIsNotCached(t *testing.T) {
	srv, trips, preemptive := handshakeServer(t, 2)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{handshakeScheme{traits: anyauth.Traits{NeverPreemptive: true}}}}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		req.Header.Set("X-First", "1") // marks every round trip; the server counts "leg1" ones
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d", i, resp.StatusCode)
		}
	}
	// Each request: challenge, leg1, leg2. Nothing cached.
	if *trips != 9 {
		t.Fatalf("%d round trips for 3 requests, want 9", *trips)
	}
	if *preemptive != 3 { // leg1 only ever answers a challenge
		t.Fatalf("leg1 sent %d times, want 3", *preemptive)
	}
	// The same scheme without the trait is cached: the next request
	// starts with leg1 at once.
	srv2, trips2, _ := handshakeServer(t, 2)
	tr2 := &anyauth.Transport{Schemes: []anyauth.Scheme{handshakeScheme{}}}
	for i := 0; i < 3; i++ {
		if code, _ := get(t, tr2, srv2.URL+"/x"); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	if *trips2 != 3+2+2 {
		t.Fatalf("preemptive: %d round trips, want 7", *trips2)
	}
}

func TestContinueErrorIsWrappedOnce(t *testing.T) {
	srv, _, _ := handshakeServer(t, 3)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{handshakeScheme{failOn: 3}}}
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	_, err := tr.RoundTrip(req)
	var ae *anyauth.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an *AuthError", err)
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "anyauth: origin http://127.0.0.1:") || strings.Count(msg, "anyauth") != 1 || !strings.HasSuffix(msg, "steps: the server's token does not verify") {
		t.Fatalf("message %q: want one anyauth prefix, the space, then the scheme's message", msg)
	}
}

func TestIsPermanent(t *testing.T) {
	if anyauth.IsPermanent(errors.New("x")) || anyauth.IsPermanent(nil) || anyauth.IsPermanent(context.Canceled) {
		t.Fatal("an ordinary error is permanent")
	}
	base := errors.New("boom")
	p := anyauth.Permanent(base)
	if !anyauth.IsPermanent(p) || !errors.Is(p, base) || p.Error() != "boom" {
		t.Fatalf("Permanent(%v) = %v", base, p)
	}
	if !anyauth.IsPermanent(fmt.Errorf("wrapped: %w", p)) || !anyauth.IsPermanent(errors.Join(base, p)) {
		t.Fatal("permanence lost through wrapping")
	}
	if !anyauth.IsPermanent(&anyauth.CleartextError{AuthScheme: "Basic", Host: "h"}) {
		t.Fatal("a cleartext refusal is not permanent")
	}
	if !anyauth.IsPermanent(schemes.ErrMutualAuth) || !anyauth.IsPermanent(schemes.ErrInvalidCredentials) {
		t.Fatal("mutual-auth failure or invalid credentials not permanent")
	}
	if anyauth.IsPermanent(&anyauth.BodyNotReplayableError{}) {
		t.Fatal("a body that a retry layer can replay is not a permanent failure")
	}
}

// TestMutualAuthFailureIsPermanentThroughTransport: a Digest server whose
// rspauth is wrong fails the request with an AuthError that a retry layer
// recognises as permanent.
func TestMutualAuthFailureIsPermanentThroughTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Digest ") {
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n1", qop="auth", algorithm=SHA-256`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Authentication-Info", `rspauth="00", qop=auth`)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Digest{RequireMutualAuth: true}},
		Credentials: anyauth.ForOrigin(srv.URL, "u", "p"),
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, schemes.ErrMutualAuth) || !errors.Is(err, anyauth.ErrMutualAuth) || !anyauth.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent ErrMutualAuth", err)
	}
	if msg := err.Error(); strings.Count(msg, "anyauth") != 1 || !strings.Contains(msg, "digest: ") {
		t.Fatalf("message %q", msg)
	}
}

func TestParseAuthParams(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string // name=value;… or "error"
	}{
		{[]string{`rspauth="abc", qop=auth, nc=00000001`}, "rspauth=abc;qop=auth;nc=00000001"},
		{[]string{`nextnonce="n2"`, `rspauth=x`}, "nextnonce=n2;rspauth=x"},
		{[]string{` , NextNonce = "a\"b" ,`}, `nextnonce=a"b`},
		{[]string{""}, ""},
		{[]string{`a=1, a=2`}, "error"},
		{[]string{`a=1`, `a=2`}, "error"},
		{[]string{`Digest a=1`}, "error"},
		{[]string{`a="unterminated`}, "error"},
		{[]string{"a=\"x\x01\""}, "error"},
		{[]string{`a`}, "error"},
	} {
		ps, err := anyauth.ParseAuthParams(tc.in...)
		got := "error"
		if err == nil {
			var parts []string
			for _, p := range ps {
				parts = append(parts, p.Name+"="+p.Value)
			}
			got = strings.Join(parts, ";")
		} else if !errors.Is(err, anyauth.ErrMalformedParams) {
			t.Errorf("%q: error %v does not wrap ErrMalformedParams", tc.in, err)
		}
		if got != tc.want {
			t.Errorf("ParseAuthParams(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAppendQuoted(t *testing.T) {
	got := string(anyauth.AppendQuoted([]byte("x="), `a"b\c`))
	if got != `x="a\"b\\c"` {
		t.Fatalf("AppendQuoted = %s", got)
	}
}

func TestOrigins(t *testing.T) {
	o := anyauth.Origins{"https://api.example.com", "http://127.0.0.1:8080", "not a url"}
	for _, tc := range []struct {
		space anyauth.ProtectionSpace
		want  bool
	}{
		{anyauth.ProtectionSpace{URLScheme: "https", Host: "api.example.com", Port: "443"}, true},
		{anyauth.ProtectionSpace{URLScheme: "http", Host: "api.example.com", Port: "80"}, false},
		{anyauth.ProtectionSpace{URLScheme: "https", Host: "api.example.com", Port: "8443"}, false},
		{anyauth.ProtectionSpace{URLScheme: "http", Host: "127.0.0.1", Port: "8080"}, true},
		{anyauth.ProtectionSpace{URLScheme: "https", Host: "api.example.com", Port: "443", Proxy: true}, false},
	} {
		if got := o.Allows(&tc.space); got != tc.want {
			t.Errorf("Allows(%s) = %t", tc.space.String(), got)
		}
	}
	if err := o.Check(); err == nil || !strings.Contains(err.Error(), "not a url") {
		t.Errorf("Check = %v", err)
	}
}

// TestNoGoroutineLeak runs the main flows and checks that the goroutine
// count comes back once idle connections are closed.
func TestNoGoroutineLeak(t *testing.T) {
	srv := newBasicServer(t)
	base := &http.Transport{}
	before := runtime.NumGoroutine()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass), MaxBodyBuffer: 8}
	for range 5 {
		get(t, tr, srv.URL+"/private/x")
		req, _ := http.NewRequest("POST", srv.URL+"/private/new", io.NopCloser(bytes.NewReader(make([]byte, 64))))
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/private/x", nil)
		tr.RoundTrip(req)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}
