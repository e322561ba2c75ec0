package schemes_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// OAuth1 against a verifier none of us wrote: oauthlib's ResourceEndpoint
// (Debian's python3-oauthlib), started once per test binary. Under
// CI=true a missing python3-oauthlib fails these tests; elsewhere they
// skip, saying why.

var oauth1Shared struct {
	sync.Once
	v   *testserver.OAuth1Verifier
	err error
}

func TestMain(m *testing.M) {
	code := m.Run()
	oauth1Shared.v.Close()
	os.Exit(code)
}

// oauth1Verifier starts (once) and returns the shared verifier, and how
// many requests it had recorded before this test.
func oauth1Verifier(t *testing.T) (*testserver.OAuth1Verifier, int) {
	t.Helper()
	oauth1Shared.Do(func() { oauth1Shared.v, oauth1Shared.err = testserver.StartOAuth1Verifier() })
	if err := oauth1Shared.err; err != nil {
		if errors.Is(err, testserver.ErrNotInstalled) && !testserver.InCI() {
			t.Skipf("the OAuth 1.0 verifier is not available (make test installs it): %v", err)
		}
		t.Fatalf("oauth1 verifier: %v", err)
	}
	v := oauth1Shared.v
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("verifier events of this test: %+v", v.EventsSince(0))
		}
	})
	return v, len(v.Events())
}

// verifierOAuth1 returns an OAuth1 with the verifier's credentials for
// origin, signing with method.
func verifierOAuth1(v *testserver.OAuth1Verifier, method schemes.OAuth1Method, origin string) *schemes.OAuth1 {
	o := schemes.NewOAuth1(testserver.OAuth1ConsumerKey, testserver.OAuth1ConsumerSecret, testserver.OAuth1Token, testserver.OAuth1TokenSecret, origin)
	o.Method = method
	if method == schemes.OAuth1RSASHA1 || method == schemes.OAuth1RSASHA256 {
		o.PrivateKey = v.RSAKey
	}
	return o
}

// send makes one request through tr and returns the status and body.
func send(t *testing.T, tr http.RoundTripper, method, u, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func reply(t *testing.T, body []byte) testserver.OAuth1Reply {
	t.Helper()
	var r testserver.OAuth1Reply
	if err := json.Unmarshal(body, &r); err != nil || !r.Verified {
		t.Fatalf("not a verified reply: %s (%v)", body, err)
	}
	return r
}

// Every signature method, on a GET with a query, a POST with a form body
// and a POST with a JSON body and oauth_body_hash: oauthlib verifies each.
// The first request of each Transport is challenged and answered (2
// round trips); the two after it are signed from the start (1 each).
func TestOAuth1OAuthlibEveryMethod(t *testing.T) {
	v, _ := oauth1Verifier(t)
	for _, c := range []struct {
		method schemes.OAuth1Method
		tls    bool
	}{
		{schemes.OAuth1HMACSHA1, false},
		{schemes.OAuth1HMACSHA256, false},
		{schemes.OAuth1RSASHA1, false},
		{schemes.OAuth1RSASHA256, false},
		{schemes.OAuth1Plaintext, true},  // over https, as RFC 5849 wants
		{schemes.OAuth1Plaintext, false}, // loopback http: the Transport's cleartext rules allow it
		{schemes.OAuth1HMACSHA1, true},
	} {
		base := v.URL
		var rt http.RoundTripper = &http.Transport{}
		if c.tls {
			base = v.TLSURL
			rt = &http.Transport{TLSClientConfig: v.TLSClientConfig()}
		}
		t.Run(fmt.Sprintf("%s_%s", c.method, base[:strings.Index(base, ":")]), func(t *testing.T) {
			_, before := oauth1Verifier(t)
			o := verifierOAuth1(v, c.method, base)
			o.BodyHash = true
			tr := &anyauth.Transport{Base: rt, Schemes: []anyauth.Scheme{o}}

			status, body := send(t, tr, "GET", base+"/api/items?b=2&a=1&a=%2B0&sp=x+y&t=%7E", "", nil)
			if status != 200 {
				t.Fatalf("GET: %d %s", status, body)
			}
			r := reply(t, body)
			if r.SignatureMethod != string(c.method) || r.ClientKey != testserver.OAuth1ConsumerKey || r.Token != testserver.OAuth1Token || r.Realm != testserver.OAuth1Realm {
				t.Fatalf("GET verified as %+v", r)
			}
			if got := fmt.Sprint(r.Params); got != "[[a +0] [a 1] [b 2] [sp x y] [t ~]]" {
				t.Fatalf("GET params %s", got)
			}
			wantHash := "verified"
			if c.method == schemes.OAuth1Plaintext {
				wantHash = "absent" // not sent with PLAINTEXT
			}
			if r.BodyHash != wantHash {
				t.Fatalf("GET body hash %q, want %q", r.BodyHash, wantHash)
			}

			form := "name=J%C3%BCrgen+Smith&tags=a&tags=b&note=100%25+%26+more"
			status, body = send(t, tr, "POST", base+"/api/items?x=1", "application/x-www-form-urlencoded", strings.NewReader(form))
			if status != 200 {
				t.Fatalf("POST form: %d %s", status, body)
			}
			r = reply(t, body)
			if got := fmt.Sprint(r.Params); got != "[[name Jürgen Smith] [note 100% & more] [tags a] [tags b] [x 1]]" || r.BodyHash != "absent" {
				t.Fatalf("POST form verified as %+v", r)
			}

			path := testserver.OAuth1PathBodyHash + "items"
			js := []byte(`{"name":"J\u00fcrgen","tags":["a","b"],"n":100}`)
			status, body = send(t, tr, "POST", base+path, "application/json", bytes.NewReader(js))
			if c.method == schemes.OAuth1Plaintext {
				// No body hash with PLAINTEXT: the path that requires one
				// refuses, and the refusal is returned, not retried.
				if status != 401 || !strings.Contains(string(body), "oauth_body_hash required") {
					t.Fatalf("PLAINTEXT JSON under %s: %d %s", path, status, body)
				}
			} else {
				if status != 200 {
					t.Fatalf("POST JSON: %d %s", status, body)
				}
				if r = reply(t, body); r.BodyHash != "verified" || r.BodyLength != len(js) {
					t.Fatalf("POST JSON verified as %+v", r)
				}
			}

			ev := v.EventsSince(before)
			if len(ev) != 4 {
				t.Fatalf("%d round trips for 3 requests, want 4 (the first challenged): %+v", len(ev), ev)
			}
			if ev[0].Authorization || ev[0].Status != 401 {
				t.Fatalf("first round trip: %+v", ev[0])
			}
			t.Logf("%s over %s: 3 requests, %d round trips, oauthlib: %s", c.method, base[:strings.Index(base, ":")], len(ev), verdicts(ev))
		})
	}
}

// verdicts summarizes what the verifier said of each round trip.
func verdicts(ev []testserver.OAuth1Event) string {
	var out []string
	for _, e := range ev {
		if e.Verified {
			out = append(out, fmt.Sprintf("%s %s ok", e.Method, e.Path))
		} else {
			out = append(out, fmt.Sprintf("%s %s 401 (%s)", e.Method, e.Path, e.Reason))
		}
	}
	return strings.Join(out, "; ")
}

// A challenge answered, not preemptive: the first request costs 2 round
// trips (unsigned, then signed with realm="test"); the next 9 to the
// origin, on any path, 1 each: 10 requests, 11 round trips. With
// Preemptive, 10 requests cost 10.
func TestOAuth1OAuthlibRoundTrips(t *testing.T) {
	v, _ := oauth1Verifier(t)
	for _, preemptive := range []bool{false, true} {
		_, before := oauth1Verifier(t)
		o := verifierOAuth1(v, schemes.OAuth1HMACSHA256, v.URL)
		o.Preemptive = preemptive
		tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
		for i := range 10 {
			if status, body := send(t, tr, "GET", fmt.Sprintf("%s/dir%d/item?i=%d", v.URL, i%3, i), "", nil); status != 200 {
				t.Fatalf("request %d: %d %s", i, status, body)
			}
		}
		ev := v.EventsSince(before)
		want := 11
		if preemptive {
			want = 10
		}
		if len(ev) != want {
			t.Fatalf("preemptive=%v: %d round trips for 10 requests, want %d: %s", preemptive, len(ev), want, verdicts(ev))
		}
		if !preemptive && (ev[0].Authorization || ev[1].Realm != testserver.OAuth1Realm) {
			t.Fatalf("the challenge was not answered with its realm: %+v", ev[:2])
		}
		t.Logf("preemptive=%v: 10 requests, %d round trips", preemptive, len(ev))
	}
}

// A body-carrying POST replayed after the challenge (its body a stream,
// replayed from the Transport's copy) is signed with a nonce of its own,
// and so is every request: oauthlib, which refuses a nonce it has seen,
// accepts them all. The same signed request sent again as it was is
// refused for its nonce: the check is live.
func TestOAuth1OAuthlibReplayFreshNonce(t *testing.T) {
	v, before := oauth1Verifier(t)
	var mu sync.Mutex
	var sent []*http.Request
	rec := roundTripper(func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		sent = append(sent, r.Clone(context.Background()))
		mu.Unlock()
		return http.DefaultTransport.RoundTrip(r)
	})
	o := verifierOAuth1(v, schemes.OAuth1HMACSHA1, v.URL)
	tr := &anyauth.Transport{Base: rec, Schemes: []anyauth.Scheme{o}}
	form := "a=1&b=two+words"
	status, body := send(t, tr, "POST", v.URL+"/upload", "application/x-www-form-urlencoded", io.MultiReader(strings.NewReader(form)))
	if status != 200 {
		t.Fatalf("POST: %d %s", status, body)
	}
	if r := reply(t, body); fmt.Sprint(r.Params) != "[[a 1] [b two words]]" {
		t.Fatalf("replayed form body verified as %+v", r)
	}
	for i := range 5 {
		if status, body := send(t, tr, "PUT", v.URL+"/upload", "application/x-www-form-urlencoded", strings.NewReader(fmt.Sprintf("i=%d", i))); status != 200 {
			t.Fatalf("PUT %d: %d %s", i, status, body)
		}
	}
	ev := v.EventsSince(before)
	seen := map[string]bool{}
	for _, e := range ev[1:] {
		if !e.Verified || seen[e.Nonce] || len(e.Nonce) != 24 {
			t.Fatalf("round trip %+v (nonce seen before: %v)", e, seen[e.Nonce])
		}
		seen[e.Nonce] = true
	}
	if len(ev) != 7 {
		t.Fatalf("%d round trips for 6 requests, want 7: %s", len(ev), verdicts(ev))
	}
	// Send the last signed request again, verbatim.
	mu.Lock()
	last := sent[len(sent)-1]
	mu.Unlock()
	again, _ := http.NewRequest(last.Method, last.URL.String(), strings.NewReader("i=4"))
	again.Header = last.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(again)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ev = v.EventsSince(before)
	if e := ev[len(ev)-1]; resp.StatusCode != 401 || !strings.HasPrefix(e.Reason, "nonce reused") {
		t.Fatalf("a replayed nonce: %d, %+v", resp.StatusCode, e)
	}
	t.Logf("6 requests, 7 round trips, 6 distinct nonces accepted; the verbatim resend: 401 (%s)", ev[len(ev)-1].Reason)
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A wrong consumer secret, and a wrong token secret, are refused without
// a loop: the server's 401 is returned after 2 round trips (1 with
// Preemptive), and again on the next request.
func TestOAuth1OAuthlibWrongSecret(t *testing.T) {
	v, _ := oauth1Verifier(t)
	for _, c := range []struct {
		name       string
		mutate     func(*schemes.OAuth1)
		preemptive bool
		trips      int
	}{
		{"consumer secret", func(o *schemes.OAuth1) { o.ConsumerSecret += "x" }, false, 2},
		{"token secret", func(o *schemes.OAuth1) { o.TokenSecret = "nope" }, false, 2},
		{"consumer secret, preemptive", func(o *schemes.OAuth1) { o.ConsumerSecret = "" }, true, 1},
		{"RSA key of another client", func(o *schemes.OAuth1) {
			o.Method, o.PrivateKey = schemes.OAuth1RSASHA256, otherRSAKey(t)
		}, false, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, before := oauth1Verifier(t)
			o := verifierOAuth1(v, schemes.OAuth1HMACSHA1, v.URL)
			c.mutate(o)
			o.Preemptive = c.preemptive
			tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
			for i := range 2 {
				req, _ := http.NewRequest("GET", v.URL+"/x", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("request %d: %v (a refusal is a response, not an error)", i, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `realm="test"`) {
					t.Fatalf("request %d: %s %s", i, resp.Status, body)
				}
			}
			ev := v.EventsSince(before)
			if len(ev) != 2*c.trips {
				t.Fatalf("%d round trips for 2 requests, want %d: %s", len(ev), 2*c.trips, verdicts(ev))
			}
			if e := ev[c.trips-1]; !strings.Contains(e.Reason, "signature") {
				t.Fatalf("refused for %q, want the signature", e.Reason)
			}
			t.Logf("%d round trips per request; oauthlib: %s", c.trips, verdicts(ev))
		})
	}
}

// PLAINTEXT over plain http to a host that is not loopback (the
// verifier, reached under another name) is refused before anything with
// the secrets is sent: a permanent *anyauth.CleartextError naming the
// host and the options; the verifier saw only the unsigned request.
func TestOAuth1OAuthlibPlaintextRefusedOverHTTP(t *testing.T) {
	v, _ := oauth1Verifier(t)
	u, _ := url.Parse(v.URL)
	remote := "http://oauth1.invalid:" + u.Port()
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, u.Host)
	}}
	for _, preemptive := range []bool{false, true} {
		_, before := oauth1Verifier(t)
		o := verifierOAuth1(v, schemes.OAuth1Plaintext, remote)
		o.Preemptive = preemptive
		tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{o}}
		req, _ := http.NewRequest("GET", remote+"/x", nil)
		resp, err := tr.RoundTrip(req)
		if resp != nil {
			resp.Body.Close()
		}
		var ce *anyauth.CleartextError
		if !errors.As(err, &ce) || !anyauth.IsPermanent(err) || !strings.Contains(err.Error(), "OAuth") || !strings.Contains(err.Error(), "CleartextHosts") {
			t.Fatalf("preemptive=%v: %v", preemptive, err)
		}
		if strings.Contains(err.Error(), testserver.OAuth1ConsumerSecret) {
			t.Fatalf("the error shows the secret: %v", err)
		}
		ev := v.EventsSince(before)
		if len(ev) != 1 || ev[0].Authorization || ev[0].SignatureMethod != "" {
			t.Fatalf("preemptive=%v: the verifier saw %+v", preemptive, ev)
		}
		t.Logf("preemptive=%v: %v (1 unsigned round trip)", preemptive, err)
	}
}

var otherKey struct {
	sync.Once
	k *rsa.PrivateKey
}

// otherRSAKey is an RSA key the verifier does not know.
func otherRSAKey(t *testing.T) *rsa.PrivateKey {
	otherKey.Do(func() {
		var err error
		if otherKey.k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return otherKey.k
}
