package schemes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
)

// This file drives Digest end to end through anyauth.Transport against
// the strict verifier server.

// countingCreds counts credential look-ups.
type countingCreds struct {
	user, pass string
	n          atomic.Int64
}

func (c *countingCreds) Credentials(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	c.n.Add(1)
	return &anyauth.UserPassword{Username: c.user, Password: c.pass}, nil
}

// transportClient returns a client whose Transport answers with d, and
// the server's URL.
func transportClient(t testing.TB, v *verifier, d Digest, logger *slog.Logger) (*http.Client, *countingCreds, string) {
	srv := v.server()
	creds := &countingCreds{user: v.user, pass: v.pass}
	base := &http.Transport{}
	t.Cleanup(base.CloseIdleConnections)
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{d}, Logger: logger}
	target := srv.URL
	if v.proxy {
		pu, _ := url.Parse(srv.URL)
		base.Proxy = http.ProxyURL(pu)
		tr.ProxyCredentials = creds
		target = "http://origin.example"
	} else {
		tr.Credentials = creds
	}
	return &http.Client{Transport: tr}, creds, target
}

// fetch sends one request and returns status and body.
func fetch(t testing.TB, c *http.Client, method, u string, body []byte) (int, string, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body) // GetBody set
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestDigestTransportMatrix runs every algorithm × qop × userhash (and a
// proxy variant) end to end: 6 requests, GETs and POSTs with bodies,
// cost 7 round trips (N+1) and one credential look-up per request (the
// provider says who each request is; it is never asked twice for one).
func TestDigestTransportMatrix(t *testing.T) {
	algs, qops := digestMatrix()
	for _, proxy := range []bool{false, true} {
		for _, alg := range algs {
			for _, qop := range qops {
				if qop == "" && strings.HasSuffix(strings.ToLower(alg), "-sess") {
					continue
				}
				for _, userhash := range []bool{false, true} {
					name := fmt.Sprintf("proxy=%t/alg=%q/qop=%q/userhash=%t", proxy, alg, qop, userhash)
					t.Run(name, func(t *testing.T) {
						v := &verifier{t: t, realm: "matrix@example.org", alg: alg, qop: qop, userhash: userhash,
							user: "Mufasa", pass: "Circle of Life", opaque: "xyz", proxy: proxy, strictOrder: true, rspauth: true}
						c, creds, base := transportClient(t, v, Digest{RequireMutualAuth: !strings.Contains(qop, "auth-int")}, nil)
						for i := 0; i < 6; i++ {
							method, body := http.MethodGet, []byte(nil)
							if i%2 == 1 {
								method, body = http.MethodPost, []byte(strings.Repeat("b", 100*i))
							}
							status, got, err := fetch(t, c, method, fmt.Sprintf("%s/p/%d?a=b", base, i), body)
							if err != nil || status != 200 || got != "hello "+method {
								t.Fatalf("request %d: %d %q %v", i, status, got, err)
							}
						}
						if n := v.challenges.Load(); n != 1 {
							t.Errorf("%d challenges for 6 requests, want 1", n)
						}
						if n := creds.n.Load(); n != 6 {
							t.Errorf("%d credential look-ups, want 6 (one per request)", n)
						}
						if strings.Contains(qop, "auth-int") && v.bodies.Load() != 6 {
							t.Errorf("%d auth-int answers, want 6", v.bodies.Load())
						}
					})
				}
			}
		}
	}
}

// TestDigestTransportStale: an expired nonce gets stale=true; the
// Transport retries once with the new nonce, without asking for
// credentials again on the request and without a wrong-password round.
func TestDigestTransportStale(t *testing.T) {
	v := &verifier{t: t, realm: "r", alg: "SHA-256", qop: "auth", user: "u", pass: "p", strictOrder: true, maxUses: 2}
	c, creds, base := transportClient(t, v, Digest{}, nil)
	for i := 0; i < 7; i++ {
		if status, _, err := fetch(t, c, http.MethodGet, base+"/s", nil); err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
	}
	if v.stales.Load() != 3 || v.challenges.Load() != 4 || v.rejected.Load() != 0 {
		t.Errorf("stales=%d challenges=%d rejected=%d, want 3 4 0", v.stales.Load(), v.challenges.Load(), v.rejected.Load())
	}
	if creds.n.Load() != 7 {
		t.Errorf("%d credential look-ups, want 7 (one per request)", creds.n.Load())
	}
}

// TestDigestTransportNextnonce: every nonce is good for one request only,
// but each response names the next one: no request is challenged after
// the first.
func TestDigestTransportNextnonce(t *testing.T) {
	v := &verifier{t: t, realm: "r", alg: "SHA-512-256", qop: "auth", user: "u", pass: "p", strictOrder: true, maxUses: 1, nextnonce: true, rspauth: true}
	c, _, base := transportClient(t, v, Digest{RequireMutualAuth: true}, nil)
	for i := 0; i < 10; i++ {
		if status, _, err := fetch(t, c, http.MethodGet, base+"/n", nil); err != nil || status != 200 {
			t.Fatalf("request %d: %d %v", i, status, err)
		}
	}
	if v.challenges.Load() != 1 || v.stales.Load() != 0 {
		t.Errorf("challenges=%d stales=%d, want 1 0", v.challenges.Load(), v.stales.Load())
	}
}

// TestDigestTransportMutualAuth: a matching rspauth passes; a forged one
// fails the request with ErrMutualAuth under RequireMutualAuth, and is
// logged at Warn level (the response passing) without it.
func TestDigestTransportMutualAuth(t *testing.T) {
	for _, tc := range []struct {
		bad, require bool
	}{{false, true}, {true, true}, {true, false}, {false, false}} {
		logger, logs := captureLogger()
		v := &verifier{t: t, realm: "r", alg: "MD5", qop: "auth", user: "u", pass: "p", strictOrder: true, rspauth: true, badRspauth: tc.bad}
		c, _, base := transportClient(t, v, Digest{RequireMutualAuth: tc.require}, logger)
		status, body, err := fetch(t, c, http.MethodGet, base+"/m", nil)
		switch {
		case tc.bad && tc.require:
			if !errors.Is(err, ErrMutualAuth) {
				t.Errorf("forged rspauth, required: %d %v", status, err)
			}
		case tc.bad:
			if err != nil || status != 200 || !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("forged rspauth, not required: %d %v, logs %q", status, err, logs)
			}
		default:
			if err != nil || status != 200 || body != "hello GET" || strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("good rspauth: %d %v, logs %q", status, err, logs)
			}
		}
	}
}

// TestDigestTransportAuthIntBody: POST bodies (bytes.Reader, so GetBody
// is set; and one larger than the Transport's replay buffer) under
// auth-int: the server checks the body hash.
func TestDigestTransportAuthIntBody(t *testing.T) {
	v := &verifier{t: t, realm: "r", alg: "SHA-256", qop: "auth-int", user: "u", pass: "p", strictOrder: true}
	c, _, base := transportClient(t, v, Digest{}, nil)
	for _, size := range []int{0, 1, 4096, 3 << 20} {
		body := bytes.Repeat([]byte("0123456789"), size/10+1)[:size]
		status, got, err := fetch(t, c, http.MethodPost, base+"/upload", body)
		if err != nil || status != 200 || got != "hello POST" {
			t.Fatalf("%d-byte body: %d %q %v", size, status, got, err)
		}
	}
	if v.bodies.Load() != 4 || v.challenges.Load() != 1 {
		t.Errorf("bodies=%d challenges=%d, want 4 1", v.bodies.Load(), v.challenges.Load())
	}
}

// TestDigestTransportWrongPassword: a wrong password is tried a bounded
// number of times and the final 401 comes back to the caller.
func TestDigestTransportWrongPassword(t *testing.T) {
	v := &verifier{t: t, realm: "r", alg: "SHA-256", qop: "auth", user: "u", pass: "right", wrongPasswordOK: true}
	srvClient, creds, base := transportClient(t, v, Digest{}, nil)
	creds.pass = "wrong"
	status, body, err := fetch(t, srvClient, http.MethodGet, base+"/w", nil)
	if err != nil || status != http.StatusUnauthorized || body != "authenticate" {
		t.Fatalf("%d %q %v, want the server's 401", status, body, err)
	}
	if v.rejected.Load() != 1 || v.challenges.Load() != 2 {
		t.Errorf("rejected=%d challenges=%d, want 1 2 (one try, no loop)", v.rejected.Load(), v.challenges.Load())
	}
}

// TestDigestTransportConcurrent: 64 goroutines × 50 requests through one
// Transport in one Digest space. Every request succeeds, the server never
// sees an nc twice for a nonce (it fails the test if it does), and it
// sends at most one 401 per goroutine. Run under -race. The second run
// adds a nextnonce to every response, so the session changes nonce while
// answers are in flight.
func TestDigestTransportConcurrent(t *testing.T) {
	for _, nextnonce := range []bool{false, true} {
		t.Run(fmt.Sprintf("nextnonce=%t", nextnonce), func(t *testing.T) {
			const goroutines, requests = 64, 50
			v := &verifier{t: t, realm: "r", alg: "SHA-256", qop: "auth", user: "u", pass: "p", nextnonce: nextnonce, rspauth: true}
			c, _, base := transportClient(t, v, Digest{RequireMutualAuth: true}, nil)
			c.Transport.(*anyauth.Transport).Base.(*http.Transport).MaxIdleConnsPerHost = goroutines
			var wg sync.WaitGroup
			var failed atomic.Int64
			for g := 0; g < goroutines; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < requests; i++ {
						status, _, err := fetch(t, c, http.MethodGet, fmt.Sprintf("%s/c/%d", base, g), nil)
						if err != nil || status != 200 {
							failed.Add(1)
							t.Errorf("goroutine %d request %d: %d %v", g, i, status, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if failed.Load() > 0 {
				return
			}
			if got := v.accepted.Load(); got != goroutines*requests {
				t.Errorf("%d accepted, want %d", got, goroutines*requests)
			}
			if n := v.challenges.Load(); n > goroutines {
				t.Errorf("%d 401s, want at most %d", n, goroutines)
			}
			t.Logf("%d requests, %d 401s", goroutines*requests, v.challenges.Load())
		})
	}
}
