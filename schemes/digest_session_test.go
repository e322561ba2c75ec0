package schemes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
)

// This file drives Digest Sessions directly against the strict verifier
// server, doing by hand what the Transport does: get the challenge, Begin,
// Start a Leg per request, Continue on a 401, Finish every 200.

// sessionClient plays the Transport for one protection space.
type sessionClient struct {
	t   testing.TB
	v   *verifier
	srv *httptest.Server
	d   Digest
	rt  http.RoundTripper
	s   anyauth.Session
	// base is the URL requests go to: the server's, or for a proxy a
	// made-up origin reached through the server.
	base string

	// user and pass are the client's credentials (the server's by
	// default).
	user, pass string

	round401 int // 401s this client met
}

func newSessionClient(t testing.TB, v *verifier, d Digest) *sessionClient {
	srv := v.server()
	c := &sessionClient{t: t, v: v, srv: srv, d: d, base: srv.URL, user: v.user, pass: v.pass}
	tr := &http.Transport{}
	if v.proxy {
		pu, _ := url.Parse(srv.URL)
		tr.Proxy = http.ProxyURL(pu)
		c.base = "http://origin.example"
	}
	t.Cleanup(tr.CloseIdleConnections)
	c.rt = tr
	return c
}

func (c *sessionClient) newRequest(method, path string, body []byte) *http.Request {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body) // sets GetBody
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	return req
}

// do sends one request, answering challenges as a Transport would, and
// returns the final response's body, or the error of Finish.
func (c *sessionClient) do(method, path string, body []byte) (string, error) {
	_, _, _, status := c.v.names()
	chName, _, _, _ := c.v.names()
	ctx := context.Background()
	var leg anyauth.Leg
	defer func() {
		if e, ok := leg.(anyauth.EndingLeg); ok {
			e.End()
		}
	}()
	for attempt := 0; attempt < 4; attempt++ {
		req := c.newRequest(method, path, body)
		if c.s != nil && leg == nil {
			var err error
			if leg, err = c.s.Start(ctx, req); err != nil {
				return "", err
			}
		}
		if leg != nil {
			if err := leg.Apply(req); err != nil {
				return "", err
			}
		}
		resp, err := c.rt.RoundTrip(req)
		if err != nil {
			c.t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != status {
			if resp.StatusCode != http.StatusOK {
				c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
			}
			if err := leg.Finish(resp); err != nil {
				return "", err
			}
			return string(b), nil
		}
		c.round401++
		cs := anyauth.ParseChallenges(resp.Header.Values(chName)...)
		if len(cs) != 1 {
			c.t.Fatalf("want one challenge, got %q", resp.Header.Values(chName))
		}
		if leg != nil {
			retry, err := leg.Continue(ctx, resp, &cs[0])
			if err != nil {
				return "", err
			}
			if retry {
				continue
			}
			return "", fmt.Errorf("answer rejected: %d", resp.StatusCode)
		}
		a := &anyauth.Attempt{
			Request:     req,
			Space:       anyauth.ProtectionSpace{Proxy: c.v.proxy, AuthScheme: "Digest", Realm: cs[0].Realm()},
			Credentials: userPass(c.user, c.pass),
			Logger:      testLogger(c.t),
		}
		s, err := c.d.Begin(ctx, &cs[0], a)
		if err != nil {
			return "", err
		}
		c.s = s
	}
	return "", errors.New("too many round trips")
}

// digestMatrix is every algorithm spelling × qop × userhash the strict
// server is driven with.
func digestMatrix() (algs, qops []string) {
	algs = []string{"", "MD5", "md5-sess", "SHA-256", "SHA-256-sess", "SHA-512", "sha-512-SESS", "SHA-512-256", "SHA-512-256-sess"}
	qops = []string{"auth", "auth-int", "auth, auth-int", ""}
	return
}

// TestDigestSessionVerifier drives one Session per algorithm × qop ×
// userhash × origin/proxy through the strict server: GETs and a POST
// with a body, nonces that go stale every third use, a nextnonce in every
// Authentication-Info, and rspauth checked with RequireMutualAuth. The
// server checks every field; the client must need exactly one 401 for
// the first request plus one per stale nonce.
func TestDigestSessionVerifier(t *testing.T) {
	algs, qops := digestMatrix()
	for _, proxy := range []bool{false, true} {
		for _, alg := range algs {
			for _, qop := range qops {
				if qop == "" && strings.HasSuffix(strings.ToLower(alg), "-sess") {
					continue // -sess needs a cnonce, which only qop carries
				}
				for _, userhash := range []bool{false, true} {
					name := fmt.Sprintf("proxy=%t/alg=%q/qop=%q/userhash=%t", proxy, alg, qop, userhash)
					t.Run(name, func(t *testing.T) {
						for _, nextnonce := range []bool{false, true} {
							v := &verifier{
								t: t, realm: "test@example.org", alg: alg, qop: qop, userhash: userhash,
								user: "Mufasa", pass: "Circle of Life", opaque: "op\"aque", proxy: proxy,
								strictOrder: true, maxUses: 3, nextnonce: nextnonce, rspauth: true,
							}
							// auth-int rspauth cannot be checked (and
							// RequireMutualAuth prefers auth), so mutual
							// authentication is required only without it.
							d := Digest{RequireMutualAuth: !strings.Contains(qop, "auth-int")}
							c := newSessionClient(t, v, d)
							for i := 0; i < 7; i++ {
								var body []byte
								method := http.MethodGet
								if i%2 == 1 {
									method, body = http.MethodPost, []byte(strings.Repeat("payload ", i*1000))
								}
								got, err := c.do(method, fmt.Sprintf("/dir/%d?q=a%%20b", i), body)
								if err != nil {
									t.Fatalf("request %d: %v", i, err)
								}
								if got != "hello "+method {
									t.Fatalf("request %d: body %q", i, got)
								}
							}
							stales := v.stales.Load()
							if nextnonce {
								// every response brings a fresh nonce: none goes stale
								if stales != 0 {
									t.Errorf("nextnonce: %d stale challenges, want 0 (nextnonce not adopted?)", stales)
								}
							} else if stales != 2 {
								t.Errorf("%d stale challenges, want 2 (7 requests, 3 uses per nonce)", stales)
							}
							if want := 1 + stales; v.challenges.Load() != want {
								t.Errorf("server sent %d challenges, want %d", v.challenges.Load(), want)
							}
							if v.accepted.Load() != 7 {
								t.Errorf("%d accepted, want 7", v.accepted.Load())
							}
							if strings.Contains(qop, "auth-int") && v.bodies.Load() == 0 {
								t.Errorf("auth-int offered but never used")
							}
						}
					})
				}
			}
		}
	}
}

// TestDigestSessionUsernameStar sends a user name that needs RFC 8187
// encoding (non-ASCII, a quote, a backslash, a control character) to the
// strict server, as username* and hashed, and one with quotes and
// backslashes as an escaped quoted-string.
func TestDigestSessionUsernameStar(t *testing.T) {
	for _, user := range []string{"Jäsøn Doe", "a\"b\\c\x01d", `q"uo\te`} {
		for _, userhash := range []bool{false, true} {
			v := &verifier{t: t, realm: `re"al\m`, alg: "SHA-256", qop: "auth", userhash: userhash,
				user: user, pass: "pässword", opaque: "", strictOrder: true}
			c := newSessionClient(t, v, Digest{})
			for i := 0; i < 3; i++ {
				if _, err := c.do(http.MethodGet, "/x", nil); err != nil {
					t.Fatalf("user %q userhash=%t: %v", user, userhash, err)
				}
			}
		}
	}
}

// TestDigestSessionWrongPassword: a rejected answer is not refreshed, and
// the session reports rejection instead of looping.
func TestDigestSessionWrongPassword(t *testing.T) {
	v := &verifier{t: t, realm: "r", alg: "SHA-256", qop: "auth", user: "u", pass: "right", wrongPasswordOK: true}
	c := newSessionClient(t, v, Digest{})
	c.pass = "wrong"
	_, err := c.do(http.MethodGet, "/", nil)
	if err == nil {
		t.Fatal("wrong password accepted")
	}
	if v.challenges.Load() != 2 || v.rejected.Load() != 1 || v.accepted.Load() != 0 {
		t.Errorf("challenges=%d rejected=%d accepted=%d, want 2 1 0", v.challenges.Load(), v.rejected.Load(), v.accepted.Load())
	}
}
