package hoba

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
)

// counter counts round trips and remembers the Authorization headers
// sent.
type counter struct {
	n    atomic.Int32
	mu   sync.Mutex
	auth []string
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	c.mu.Lock()
	c.auth = append(c.auth, r.Header.Get("Authorization"))
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(r)
}

func (c *counter) sent() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.auth...)
}

// clock is a settable clock shared by a Scheme and a Server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newServer(t *testing.T) (*Server, *httptest.Server) {
	t.Helper()
	srv := NewServer()
	srv.Realm = "accounts"
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, ts
}

func p256Key(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func client(s Scheme) (*http.Client, *counter) {
	c := &counter{}
	return &http.Client{Transport: &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{s}}}, c
}

func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// The documented cost: the first request of an origin costs a 401 and a
// replay, every later one within max-age a single round trip, on any
// path of the origin. Registration goes over HTTP, through a Transport,
// with its form body replayed after the 401.
func TestRoundTrips(t *testing.T) {
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ECDSA-P256", p256Key(t)}, {"Ed25519", edPriv}, {"RSA", rsaKey}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, ts := newServer(t)
			scheme := Scheme{Key: tc.key, Origins: anyauth.Origins{ts.URL}}
			kid, err := KeyIDOf(tc.key.Public())
			if err != nil {
				t.Fatal(err)
			}

			reg, regCount := client(scheme)
			if err := scheme.Register(context.Background(), reg, ts.URL); err != nil {
				t.Fatal(err)
			}
			if n := regCount.n.Load(); n != 2 {
				t.Errorf("registration took %d round trips, want 2 (401, then the signed POST replayed)", n)
			}
			if srv.lookup(kid) == nil {
				t.Fatal("key not registered")
			}

			c, count := client(scheme)
			want := []int32{2, 3, 4, 5, 6}
			for i, path := range []string{"/a", "/b/c", "/a", "/d/e/f", "/"} {
				code, body := get(t, c, ts.URL+path)
				if code != http.StatusOK || body != "hello "+kid+"\n" {
					t.Fatalf("request %d: %d %q", i+1, code, body)
				}
				if n := count.n.Load(); n != want[i] {
					t.Fatalf("after request %d: %d round trips, want %d", i+1, n, want[i])
				}
			}
			// Every answer signed a new nonce.
			seen := map[string]bool{}
			for _, h := range count.sent() {
				if h == "" {
					continue
				}
				if seen[h] {
					t.Errorf("answer sent twice: %s", h)
				}
				seen[h] = true
			}
			if len(seen) != 5 {
				t.Errorf("%d answers, want 5", len(seen))
			}
		})
	}
}

func TestConcurrentRequests(t *testing.T) {
	srv, ts := newServer(t)
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: key, Origins: anyauth.Origins{ts.URL}})
	if code, _ := get(t, c, ts.URL+"/warm"); code != http.StatusOK {
		t.Fatal(code)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 5 {
				if code, body := get(t, c, ts.URL+"/x"); code != http.StatusOK {
					t.Errorf("%d %q", code, body)
				}
			}
		})
	}
	wg.Wait()
	if n := count.n.Load(); n != 2+40 {
		t.Errorf("%d round trips, want 42", n)
	}
}

// tamperSigner signs, then flips a bit of the signature.
type tamperSigner struct{ crypto.Signer }

func (s tamperSigner) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := s.Signer.Sign(r, digest, opts)
	if err == nil {
		sig[len(sig)/2] ^= 0x01
	}
	return sig, err
}

func TestTamperedSignatureRefused(t *testing.T) {
	srv, ts := newServer(t)
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: tamperSigner{key}, Origins: anyauth.Origins{ts.URL}})
	code, body := get(t, c, ts.URL+"/private")
	if code != http.StatusUnauthorized || !strings.Contains(body, errBadSignature.Error()) {
		t.Fatalf("got %d %q, want 401 (%s)", code, body, errBadSignature)
	}
	if n := count.n.Load(); n != 2 {
		t.Errorf("%d round trips, want 2 (challenge, refused answer)", n)
	}
}

func TestUnregisteredKeyRefused(t *testing.T) {
	_, ts := newServer(t)
	c, count := client(Scheme{Key: p256Key(t), Origins: anyauth.Origins{ts.URL}})
	code, body := get(t, c, ts.URL+"/private")
	if code != http.StatusUnauthorized || !strings.Contains(body, errUnknownKey.Error()) {
		t.Fatalf("got %d %q, want 401 (%s)", code, body, errUnknownKey)
	}
	if n := count.n.Load(); n != 2 {
		t.Errorf("%d round trips, want 2", n)
	}
}

// Registration proves possession: a form naming one key, signed by
// another, registers nothing.
func TestRegistrationNeedsTheKey(t *testing.T) {
	srv, ts := newServer(t)
	signer, other := p256Key(t), p256Key(t)
	otherKid, _ := KeyIDOf(other.Public())
	// The scheme signs with signer but claims other's kid and sends
	// other's public key.
	s := Scheme{Key: keyWithPublic{signer, other.Public()}, KeyID: otherKid, Origins: anyauth.Origins{ts.URL}}
	c, _ := client(s)
	if err := s.Register(context.Background(), c, ts.URL); err == nil {
		t.Fatal("registered a key whose private half the client does not hold")
	}
	if srv.lookup(otherKid) != nil {
		t.Fatal("key registered")
	}
}

// keyWithPublic signs with one key and shows the public half of another.
type keyWithPublic struct {
	crypto.Signer
	pub crypto.PublicKey
}

func (k keyWithPublic) Public() crypto.PublicKey { return k.pub }

// The key goes only to Origins: another origin's 401 comes back
// untouched, after one round trip, and nothing was signed for it.
func TestNotSentOutsideOrigins(t *testing.T) {
	srv, ts := newServer(t)
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: key, Origins: anyauth.Origins{"https://elsewhere.example"}})
	resp, err := c.Get(ts.URL + "/private")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "HOBA ") {
		t.Fatalf("got %d %q, want the server's 401", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if n := count.n.Load(); n != 1 {
		t.Errorf("%d round trips, want 1", n)
	}
	for _, h := range count.sent() {
		if h != "" {
			t.Errorf("sent Authorization %q", h)
		}
	}
}

// When max-age has passed on both sides, the Session stops answering: the
// request goes bare, and its 401's challenge is answered (2 round trips),
// without a refused signature.
func TestChallengeExpires(t *testing.T) {
	srv, ts := newServer(t)
	clk := newClock()
	srv.now = clk.now
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: key, Origins: anyauth.Origins{ts.URL}, now: clk.now})
	for range 3 {
		if code, body := get(t, c, ts.URL+"/p"); code != http.StatusOK {
			t.Fatal(code, body)
		}
	}
	if n := count.n.Load(); n != 4 {
		t.Fatalf("%d round trips, want 4", n)
	}
	clk.advance(srv.MaxAge - time.Second) // inside the client's margin
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK {
		t.Fatal(code)
	}
	if n := count.n.Load(); n != 6 {
		t.Fatalf("%d round trips, want 6 (a bare request, then an answer)", n)
	}
	sent := count.sent()
	if sent[4] != "" {
		t.Errorf("an expired challenge was signed: %q", sent[4])
	}
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK || count.n.Load() != 7 {
		t.Fatalf("after renewal: %d, %d round trips, want 7", code, count.n.Load())
	}
}

// A server that forgets its challenges early (a restart, a clock ahead of
// the client's) refuses the preemptive answer; the Transport drops the
// Session and answers the new challenge: 2 round trips (the refused
// answer, the new one), once.
func TestServerForgotChallenge(t *testing.T) {
	srv, ts := newServer(t)
	clk := newClock()
	srv.now = clk.now
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: key, Origins: anyauth.Origins{ts.URL}}) // real clock
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK {
		t.Fatal(code)
	}
	clk.advance(time.Hour)
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK {
		t.Fatal(code)
	}
	if n := count.n.Load(); n != 4 {
		t.Fatalf("%d round trips, want 2+2", n)
	}
	if sent := count.sent(); sent[2] == "" || sent[3] == "" || sent[2] == sent[3] {
		t.Errorf("want the refused preemptive answer, then a new one: %q", sent[2:])
	}
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK || count.n.Load() != 5 {
		t.Fatalf("after renewal: %d, %d round trips, want 5", code, count.n.Load())
	}
}

// An answer seen on the wire cannot be replayed: the server refuses a
// nonce it accepted before.
func TestReplayRefused(t *testing.T) {
	srv, ts := newServer(t)
	key := p256Key(t)
	kid, _ := KeyIDOf(key.Public())
	if err := srv.RegisterKey(kid, key.Public()); err != nil {
		t.Fatal(err)
	}
	c, count := client(Scheme{Key: key, Origins: anyauth.Origins{ts.URL}})
	if code, _ := get(t, c, ts.URL+"/p"); code != http.StatusOK {
		t.Fatal(code)
	}
	captured := count.sent()[1]
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/p", nil)
	req.Header.Set("Authorization", captured)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), errReplay.Error()) {
		t.Fatalf("replay got %d %q", resp.StatusCode, body)
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://example.com:443":      "https://example.com:443",
		"https://example.com":          "https://example.com:443",
		"https://Example.COM/path?q=1": "https://example.com:443",
		"http://example.com":           "http://example.com:80",
		"http://example.com:80":        "http://example.com:80",
		"http://127.0.0.1:8080":        "http://127.0.0.1:8080",
		"https://[::1]:8443/":          "https://[::1]:8443",
		"HTTPS://example.com:8080":     "https://example.com:8080",
	} {
		got, err := Origin(in)
		if err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ftp://example.com", "example.com", "https://"} {
		if got, err := Origin(bad); err == nil {
			t.Errorf("Origin(%q) = %q, want an error", bad, got)
		}
	}
}

// The blob of RFC 7486 §2: nonce, alg, origin, realm, kid, challenge,
// each length-prefixed; an absent realm is "0:". The Session signs with
// the origin of the protection space, which always names the port.
func TestToBeSigned(t *testing.T) {
	got := string(ToBeSigned("bm9uY2U", "98", "https://example.com:443", "", "a2lk", "Y2hhbGxlbmdl"))
	want := "7:bm9uY2U2:9823:https://example.com:4430:4:a2lk12:Y2hhbGxlbmdl"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	got = string(ToBeSigned("n", "0", "http://127.0.0.1:8080", "my realm", "k", "c"))
	want = "1:n1:021:http://127.0.0.1:80808:my realm1:k1:c"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	space := anyauth.ProtectionSpace{URLScheme: "https", Host: "example.com", Port: "443"}
	if o, _ := Origin("https://example.com"); space.Origin() != o {
		t.Errorf("space origin %q, Origin %q: the client and the server would sign different blobs", space.Origin(), o)
	}
}

func TestStrength(t *testing.T) {
	var s Scheme
	for h, ok := range map[string]bool{
		`HOBA max-age="180", challenge="abc_-9"`:      true,
		`HOBA challenge="abc", max-age=0, realm="r"`:  true,
		`HOBA challenge="abc"`:                        false, // no max-age
		`HOBA max-age="180"`:                          false, // no challenge
		`HOBA max-age="x", challenge="abc"`:           false,
		`HOBA max-age="180", challenge="not base64!"`: false,
	} {
		cs := anyauth.ParseChallenges(h)
		if len(cs) != 1 {
			t.Fatalf("%s: %d challenges", h, len(cs))
		}
		st, got := s.Strength(&cs[0])
		if got != ok || (ok && st != Strength) {
			t.Errorf("%s: %d, %v; want %v", h, st, got, ok)
		}
	}
	if Strength <= anyauth.StrengthDigest+76 || Strength >= anyauth.StrengthNTLM {
		t.Errorf("Strength %d is not between Digest's strongest and NTLM", Strength)
	}
}
