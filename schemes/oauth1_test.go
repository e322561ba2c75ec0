package schemes

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
)

// The request of RFC 5849 §3.4.1.1, and the credentials of §3.1.
const (
	rfcConsumerKey    = "9djdj82h48djs9d2"
	rfcConsumerSecret = "j49sk3j29djd"
	rfcToken          = "kkk9d7dh3k39sjv7"
	rfcTokenSecret    = "dh893hdasih9"
	// rfcBaseString is §3.4.1.1's signature base string, without its
	// display line breaks.
	rfcBaseString = "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q" +
		"%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26c2%3D%26oauth_consumer_" +
		"key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_m" +
		"ethod%3DHMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk" +
		"9d7dh3k39sjv7"
	// rfcSignature is that base string's HMAC-SHA1 with §3.1's secrets.
	// The RFC prints bYT5CMsGcbgUdFHObYMEfcx6bsw=, which no stated key
	// gives (RFC Errata 2550); r6/TJjbCOr97/+UU0NsvSne7s5g= is the value
	// every implementation agrees on (and `openssl dgst -sha1 -hmac`).
	rfcSignature = "r6/TJjbCOr97/+UU0NsvSne7s5g="
)

// rfcRequest is §3.4.1.1's request, as a client would make it.
func rfcRequest(t *testing.T) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b", strings.NewReader("c2&a3=2+q"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return req
}

// RFC 5849 §3.4.1.1: the base string of the example request, built from
// the request itself (base string URI, query, form body through GetBody),
// and its HMAC-SHA1 signature.
func TestOAuth1RFC5849BaseStringVector(t *testing.T) {
	req := rfcRequest(t)
	params, err := oauth1RequestParams(req)
	if err != nil {
		t.Fatal(err)
	}
	params = append(params,
		oauth1Param{"oauth_consumer_key", rfcConsumerKey},
		oauth1Param{"oauth_token", rfcToken},
		oauth1Param{"oauth_signature_method", "HMAC-SHA1"},
		oauth1Param{"oauth_timestamp", "137131201"},
		oauth1Param{"oauth_nonce", "7d8f3e4a"},
	)
	if got := oauth1BaseURI(req); got != "http://example.com/request" {
		t.Fatalf("base string URI %q", got)
	}
	base := oauth1BaseString(req.Method, oauth1BaseURI(req), params)
	if base != rfcBaseString {
		t.Fatalf("base string\n got %s\nwant %s", base, rfcBaseString)
	}
	sig, err := oauth1Signature(OAuth1HMACSHA1, rfcConsumerSecret, rfcTokenSecret, nil, base)
	if err != nil || sig != rfcSignature {
		t.Fatalf("signature %q, %v; want %q", sig, err, rfcSignature)
	}
	// The body is still there to be sent.
	if b, _ := io.ReadAll(req.Body); string(b) != "c2&a3=2+q" {
		t.Fatalf("body consumed: %q", b)
	}
}

// RFC 5849 §1.2's last request (photos.example.net), signed through the
// whole scheme with its nonce and timestamp, gives the RFC's signature,
// here with the oauth_version the scheme adds (the RFC's example has
// none): the signature without it is checked on the base string.
func TestOAuth1RFC5849PhotosVector(t *testing.T) {
	const base = "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
	req, _ := http.NewRequest("GET", "http://photos.example.net/photos?file=vacation.jpg&size=original", nil)
	params, _ := oauth1RequestParams(req)
	params = append(params,
		oauth1Param{"oauth_consumer_key", "dpf43f3p2l4k3l03"}, oauth1Param{"oauth_token", "nnch734d00sl2jdk"},
		oauth1Param{"oauth_signature_method", "HMAC-SHA1"}, oauth1Param{"oauth_timestamp", "137131202"},
		oauth1Param{"oauth_nonce", "chapoH"})
	if got := oauth1BaseString("GET", oauth1BaseURI(req), params); got != base {
		t.Fatalf("base string\n got %s\nwant %s", got, base)
	}
	sig, _ := oauth1Signature(OAuth1HMACSHA1, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00", nil, base)
	if sig != "MdpQcU8iPSUjWoN/UDMsK2sui9I=" { // §1.2: oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D"
		t.Fatalf("signature %q", sig)
	}

	o := OAuth1{Origins: anyauth.Origins{"http://photos.example.net"}, ConsumerKey: "dpf43f3p2l4k3l03", ConsumerSecret: "kd94hf93k423kf44",
		Token: "nnch734d00sl2jdk", TokenSecret: "pfkkdhi9sl3r4s00",
		now: func() time.Time { return time.Unix(137131202, 0) }, nonce: func() (string, error) { return "chapoH", nil }}
	h := applyOnce(t, o, "Photos", req)
	p := headerParams(t, h)
	if p["realm"] != "Photos" || p["oauth_version"] != "1.0" || p["oauth_nonce"] != "chapoH" || p["oauth_timestamp"] != "137131202" {
		t.Fatalf("header %s", h)
	}
	// oauth_version sorts after oauth_token and before size.
	withVersion := strings.Replace(base, "%26size%3Doriginal", "%26oauth_version%3D1.0%26size%3Doriginal", 1)
	want, _ := oauth1Signature(OAuth1HMACSHA1, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00", nil, withVersion)
	if p["oauth_signature"] != want {
		t.Fatalf("signature %q, want %q", p["oauth_signature"], want)
	}
}

// applyOnce begins o for realm on req's origin and applies one leg.
func applyOnce(t *testing.T, o OAuth1, realm string, req *http.Request) string {
	t.Helper()
	space := anyauth.ProtectionSpace{AuthScheme: "OAuth", URLScheme: req.URL.Scheme, Host: req.URL.Hostname(), Port: portOf(req.URL), Realm: realm, Path: "/"}
	c := &anyauth.Challenge{Scheme: "OAuth"}
	if realm != "" {
		c.Params = []anyauth.Param{{Name: "realm", Value: realm}}
	}
	s, err := o.Begin(context.Background(), c, &anyauth.Attempt{Request: req, Space: space, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	leg, err := s.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := req.Clone(context.Background())
	if err := leg.Apply(out); err != nil {
		t.Fatal(err)
	}
	return out.Header.Get("Authorization")
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "https" {
		return "443"
	}
	return "80"
}

// headerParams parses an OAuth Authorization header, values decoded.
func headerParams(t *testing.T, h string) map[string]string {
	t.Helper()
	cs := anyauth.ParseChallenges(h)
	if len(cs) != 1 || !cs[0].Is("OAuth") {
		t.Fatalf("not one OAuth header: %q", h)
	}
	m := map[string]string{}
	for _, p := range cs[0].Params {
		v, err := url.PathUnescape(p.Value)
		if err != nil {
			t.Fatalf("%s=%q: %v", p.Name, p.Value, err)
		}
		if p.Name == "realm" {
			v = p.Value
		}
		if _, dup := m[p.Name]; dup {
			t.Fatalf("%s twice in %q", p.Name, h)
		}
		m[p.Name] = v
	}
	return m
}

// §3.6: only unreserved characters pass; UTF-8 bytes are escaped with
// upper-case hex.
func TestOAuth1PercentEncoding(t *testing.T) {
	for in, want := range map[string]string{
		"abcXYZ019-._~": "abcXYZ019-._~",
		" ":             "%20",
		"+":             "%2B",
		"*":             "%2A",
		"/?#[]@!$&'()=": "%2F%3F%23%5B%5D%40%21%24%26%27%28%29%3D",
		"é":             "%C3%A9",
		"%":             "%25",
		"\n":            "%0A",
		"":              "",
	} {
		if got := oauth1Encode(in); got != want {
			t.Errorf("encode(%q) = %q, want %q", in, got, want)
		}
	}
}

// §3.4.1.2: scheme and host lower-cased, default ports dropped, others
// kept, the Host header's authority used, path at least "/".
func TestOAuth1BaseURI(t *testing.T) {
	for _, c := range []struct{ url, host, want string }{
		{"HTTP://EXAMPLE.COM:80/r%20v/X?id=123", "", "http://example.com/r%20v/X"},
		{"https://www.example.net:8080/?q=1", "", "https://www.example.net:8080/"},
		{"https://example.com:443", "", "https://example.com/"},
		{"http://example.com:443/a", "", "http://example.com:443/a"},
		{"http://[::1]:80/a#frag", "", "http://[::1]/a"},
		{"http://[::1]:8080/a", "", "http://[::1]:8080/a"},
		{"http://127.0.0.1:9000/a", "api.example.com", "http://api.example.com/a"},
		{"http://127.0.0.1:9000/a", "API.example.com:80", "http://api.example.com/a"},
	} {
		req, err := http.NewRequest("GET", c.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.host != "" {
			req.Host = c.host
		}
		if got := oauth1BaseURI(req); got != c.want {
			t.Errorf("%s (Host %q): %q, want %q", c.url, c.host, got, c.want)
		}
	}
}

// §3.4.1.3: repeated names all count, sorted by value; "+" is a space;
// an empty value and a name alone both give "name="; a form body with a
// charset still counts; oauth_signature in the query is left out.
func TestOAuth1ParameterCollection(t *testing.T) {
	req, _ := http.NewRequest("POST", "http://h/p?b=2&a=z&a=y&empty=&alone&sp=a+b&pct=%2B%zz&oauth_signature=x", strings.NewReader("f=1&a=x"))
	req.Header.Set("Content-Type", "Application/X-WWW-Form-URLEncoded; charset=utf-8")
	params, err := oauth1RequestParams(req)
	if err != nil {
		t.Fatal(err)
	}
	params = slicesDeleteSig(params)
	got := oauth1NormalizedParams(params)
	want := "a=x&a=y&a=z&alone=&b=2&empty=&f=1&pct=%2B%25zz&sp=a%20b"
	if got != want {
		t.Fatalf("normalized\n got %s\nwant %s", got, want)
	}
	// A JSON body is not collected.
	req, _ = http.NewRequest("POST", "http://h/p?q=1", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	if params, _ := oauth1RequestParams(req); oauth1NormalizedParams(params) != "q=1" {
		t.Fatalf("JSON body collected: %v", params)
	}
}

func slicesDeleteSig(p []oauth1Param) []oauth1Param {
	var out []oauth1Param
	for _, x := range p {
		if x.name != "oauth_signature" {
			out = append(out, x)
		}
	}
	return out
}

// A server that checks OAuth 1.0 signatures itself (HMAC-SHA1 and
// PLAINTEXT, with the same base string code path the client does not
// share: url.ParseQuery and a sort of its own), refuses reused nonces,
// and counts round trips.
type oauth1TestServer struct {
	*httptest.Server
	mu       sync.Mutex
	nonces   map[string]bool
	trips    atomic.Int32
	accepted atomic.Int32
	signed   atomic.Int32 // requests that carried an OAuth header
	secret   string       // the consumer secret it checks with
	// challenge is the WWW-Authenticate it sends; "" for none.
	challenge string
	lastAuth  atomic.Value
	lastBody  atomic.Value
}

func newOAuth1TestServer(t *testing.T, challenge string) *oauth1TestServer {
	s := &oauth1TestServer{nonces: map[string]bool{}, secret: "cs", challenge: challenge}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *oauth1TestServer) serve(w http.ResponseWriter, r *http.Request) {
	s.trips.Add(1)
	body, _ := io.ReadAll(r.Body)
	s.lastBody.Store(string(body))
	h := r.Header.Get("Authorization")
	s.lastAuth.Store(h)
	if h != "" {
		s.signed.Add(1)
	}
	if err := s.verify(r, h, body); err != nil {
		if s.challenge != "" {
			w.Header().Set("WWW-Authenticate", s.challenge)
		}
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintln(w, err)
		return
	}
	s.accepted.Add(1)
	fmt.Fprintln(w, "ok")
}

// verify checks h independently of the client's code: it rebuilds the
// base string from the request as the server received it.
func (s *oauth1TestServer) verify(r *http.Request, h string, body []byte) error {
	cs := anyauth.ParseChallenges(h)
	if len(cs) != 1 || !cs[0].Is("OAuth") {
		return errors.New("no OAuth header")
	}
	p := map[string]string{}
	var pairs []string
	for _, x := range cs[0].Params {
		v, _ := url.PathUnescape(x.Value)
		p[x.Name] = v
		if x.Name != "realm" && x.Name != "oauth_signature" {
			pairs = append(pairs, x.Name+"="+v)
		}
	}
	s.mu.Lock()
	reused := s.nonces[p["oauth_nonce"]]
	s.nonces[p["oauth_nonce"]] = true
	s.mu.Unlock()
	if reused {
		return errors.New("nonce reused")
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, k+"="+v)
		}
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		f, _ := url.ParseQuery(string(body))
		for k, vs := range f {
			for _, v := range vs {
				pairs = append(pairs, k+"="+v)
			}
		}
	}
	var enc []string
	for _, pair := range pairs {
		k, v, _ := strings.Cut(pair, "=")
		enc = append(enc, url.QueryEscape(k)+"="+url.QueryEscape(v))
	}
	for i := range enc { // QueryEscape writes " " as "+" and keeps "~" : make it §3.6
		enc[i] = strings.NewReplacer("+", "%20", "%7E", "~").Replace(enc[i])
	}
	sortStrings(enc)
	base := strings.ToUpper(r.Method) + "&" + url.QueryEscape("http://"+strings.ToLower(r.Host)+r.URL.EscapedPath()) + "&" + strings.NewReplacer("+", "%20", "%7E", "~").Replace(url.QueryEscape(strings.Join(enc, "&")))
	key := url.QueryEscape(s.secret) + "&" + url.QueryEscape("ts")
	switch p["oauth_signature_method"] {
	case "HMAC-SHA1":
		want, _ := oauth1Signature(OAuth1HMACSHA1, s.secret, "ts", nil, base)
		if p["oauth_signature"] != want {
			return errors.New("bad signature")
		}
	case "PLAINTEXT":
		if p["oauth_signature"] != key {
			return errors.New("bad PLAINTEXT signature")
		}
	default:
		return errors.New("method not served")
	}
	if bh, ok := p["oauth_body_hash"]; ok {
		sum := sha1.Sum(body)
		if bh != base64.StdEncoding.EncodeToString(sum[:]) {
			return errors.New("bad body hash")
		}
	}
	return nil
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func newTestOAuth1(origin string) *OAuth1 {
	return NewOAuth1("ck", "cs", "tok", "ts", origin)
}

func roundTrip(t *testing.T, tr http.RoundTripper, method, u, contentType string, body io.Reader) (*http.Response, string) {
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
	return resp, string(b)
}

// A challenge answered: 2 round trips for the first request, then 1 per
// request (the whole origin is signed from the start), each with a nonce
// of its own; a POST with a form body is replayed signed over its body.
func TestOAuth1AnswersChallengeThenPreemptive(t *testing.T) {
	srv := newOAuth1TestServer(t, `OAuth realm="test"`)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{newTestOAuth1(srv.URL)}}
	if resp, body := roundTrip(t, tr, "GET", srv.URL+"/a/x?q=1&q=0", "", nil); resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	if n := srv.trips.Load(); n != 2 {
		t.Fatalf("%d round trips for the first request, want 2", n)
	}
	if p := headerParams(t, srv.lastAuth.Load().(string)); p["realm"] != "test" {
		t.Fatalf("realm not echoed: %v", p)
	}
	if resp, body := roundTrip(t, tr, "POST", srv.URL+"/b/y", "application/x-www-form-urlencoded", strings.NewReader("a=1&b=%20+x")); resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	if n := srv.trips.Load(); n != 3 {
		t.Fatalf("%d round trips after 2 requests, want 3", n)
	}
	if got := srv.lastBody.Load(); got != "a=1&b=%20+x" {
		t.Fatalf("body %q", got)
	}
}

// A request replayed with the signature leg it started is signed again:
// behind a proxy that answers 407 first, the origin's preemptive
// signature goes twice, with two nonces, and the form body (a stream,
// replayed from the Transport's copy) is read again for the second.
func TestOAuth1ReplayGetsFreshNonce(t *testing.T) {
	origin := newOAuth1TestServer(t, `OAuth realm="test"`)
	var mu sync.Mutex
	var proxyNonces []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if h := r.Header.Get("Authorization"); h != "" {
			proxyNonces = append(proxyNonces, headerParams(t, h)["oauth_nonce"])
		}
		mu.Unlock()
		if r.Header.Get("Proxy-Authorization") == "" {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		out, _ := http.NewRequest(r.Method, r.URL.String(), r.Body)
		out.Header = r.Header.Clone()
		out.Header.Del("Proxy-Authorization")
		resp, err := (&http.Transport{}).RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	o := newTestOAuth1(origin.URL)
	o.Preemptive = true
	tr := &anyauth.Transport{
		Base:             &http.Transport{Proxy: http.ProxyURL(pu)},
		Schemes:          []anyauth.Scheme{o, Basic{}},
		ProxyCredentials: anyauth.ForOrigin(proxy.URL, "u", "p"),
	}
	body := &onlyReader{r: strings.NewReader("k=v&k=w")}
	if resp, b := roundTrip(t, tr, "POST", origin.URL+"/p", "application/x-www-form-urlencoded", body); resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, b)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(proxyNonces) != 2 || proxyNonces[0] == proxyNonces[1] || len(proxyNonces[0]) != 24 {
		t.Fatalf("nonces through the proxy %q", proxyNonces)
	}
	if got := headerParams(t, origin.lastAuth.Load().(string))["oauth_nonce"]; got != proxyNonces[1] {
		t.Fatalf("the origin got nonce %q, the replay carried %q", got, proxyNonces[1])
	}
	if origin.lastBody.Load() != "k=v&k=w" {
		t.Fatalf("body %q", origin.lastBody.Load())
	}
}

type onlyReader struct{ r io.Reader }

func (o *onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// Every Apply signs anew: a leg applied twice (the Transport's replay)
// gives two nonces and two signatures.
func TestOAuth1EveryApplySignsAnew(t *testing.T) {
	o := *newTestOAuth1("http://h")
	req, _ := http.NewRequest("GET", "http://h/x", nil)
	s, err := o.Begin(context.Background(), &anyauth.Challenge{Scheme: "OAuth"}, &anyauth.Attempt{Request: req, Space: anyauth.ProtectionSpace{URLScheme: "http", Host: "h", Port: "80", AuthScheme: "OAuth"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	leg, _ := s.Start(context.Background(), req)
	seen := map[string]bool{}
	for range 50 {
		out := req.Clone(context.Background())
		if err := leg.Apply(out); err != nil {
			t.Fatal(err)
		}
		p := headerParams(t, out.Header.Get("Authorization"))
		if seen[p["oauth_nonce"]] || seen[p["oauth_signature"]] {
			t.Fatalf("nonce or signature repeated: %v", p)
		}
		seen[p["oauth_nonce"]], seen[p["oauth_signature"]] = true, true
	}
}

// A wrong secret is refused once: 2 round trips, and the server's 401 is
// returned as it came, with no error. With Preemptive: 1 round trip,
// even though the refusal names a realm the preemptive answer did not
// know.
func TestOAuth1WrongSecretNoLoop(t *testing.T) {
	for _, preemptive := range []bool{false, true} {
		t.Run(fmt.Sprint("preemptive=", preemptive), func(t *testing.T) {
			srv := newOAuth1TestServer(t, `OAuth realm="test"`)
			o := NewOAuth1("ck", "wrong", "tok", "ts", srv.URL)
			o.Preemptive = preemptive
			tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
			resp, body := roundTrip(t, tr, "GET", srv.URL+"/x", "", nil)
			if resp.StatusCode != 401 || !strings.Contains(body, "bad signature") {
				t.Fatalf("%s %q", resp.Status, body)
			}
			want := int32(2)
			if preemptive {
				want = 1
			}
			if n := srv.trips.Load(); n != want {
				t.Fatalf("%d round trips, want %d", n, want)
			}
			// And again: the refused answer is not kept.
			srv.trips.Store(0)
			roundTrip(t, tr, "GET", srv.URL+"/x", "", nil)
			if n := srv.trips.Load(); n != want {
				t.Fatalf("second request: %d round trips, want %d", n, want)
			}
		})
	}
}

// OAuth 2.0's "OAuth" challenges (the drafts' error codes, a token68,
// Facebook's malformed one) are not answered, and nothing is signed.
func TestOAuth1IgnoresOAuth2Challenges(t *testing.T) {
	for _, ch := range []string{
		`OAuth realm="api", error="invalid_token", error_description="The access token expired"`,
		`OAuth error="invalid_request"`,
		`OAuth realm="x", scope="read"`,
		`OAuth error_uri="https://example.com/e"`,
		`OAuth abc123==`,
		`OAuth "Facebook Platform" "invalid_token" "Error validating access token"`,
	} {
		srv := newOAuth1TestServer(t, ch)
		tr := &anyauth.Transport{Schemes: []anyauth.Scheme{newTestOAuth1(srv.URL)}}
		resp, _ := roundTrip(t, tr, "GET", srv.URL+"/x", "", nil)
		if resp.StatusCode != 401 || srv.trips.Load() != 1 || srv.signed.Load() != 0 {
			t.Errorf("%s: %s after %d round trips, %d signed", ch, resp.Status, srv.trips.Load(), srv.signed.Load())
		}
	}
	// The rule itself.
	o := OAuth1{}
	for ch, want := range map[string]bool{
		`OAuth realm="test"`: true,
		`OAuth`:              true,
		`OAuth realm="Photos", oauth_problem="signature_invalid"`: true,
		`OAuth realm="x", error="invalid_token"`:                  false,
		`OAuth Error_Description="x"`:                             false,
		`OAuth abc==`:                                             false,
	} {
		cs := anyauth.ParseChallenges(ch)
		if len(cs) != 1 {
			t.Fatalf("%s: %d challenges", ch, len(cs))
		}
		if _, ok := o.Strength(&cs[0]); ok != want {
			t.Errorf("Strength(%s) answers %v, want %v", ch, ok, want)
		}
	}
}

// Only Origins are signed for: another origin's OAuth challenge, and a
// proxy's, go unanswered; Preemptive volunteers to Origins only.
func TestOAuth1OnlyOnItsOrigins(t *testing.T) {
	mine := newOAuth1TestServer(t, `OAuth realm="test"`)
	other := newOAuth1TestServer(t, `OAuth realm="test"`)
	o := newTestOAuth1(mine.URL)
	o.Preemptive = true
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
	if resp, _ := roundTrip(t, tr, "GET", mine.URL+"/x", "", nil); resp.StatusCode != 200 || mine.trips.Load() != 1 {
		t.Fatalf("own origin: %s in %d round trips", resp.Status, mine.trips.Load())
	}
	if resp, _ := roundTrip(t, tr, "GET", other.URL+"/x", "", nil); resp.StatusCode != 401 || other.signed.Load() != 0 {
		t.Fatalf("other origin: %s, %d signed", resp.Status, other.signed.Load())
	}
	u, _ := url.Parse(other.URL)
	if o.Volunteers(u) {
		t.Fatal("volunteers to another origin")
	}
	space := anyauth.ProtectionSpace{Proxy: true, AuthScheme: "OAuth", URLScheme: "http", Host: u.Hostname(), Port: u.Port()}
	mu, _ := url.Parse(mine.URL)
	space.Host, space.Port = mu.Hostname(), mu.Port()
	if _, err := o.Begin(context.Background(), &anyauth.Challenge{Scheme: "OAuth"}, &anyauth.Attempt{Space: space}); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Fatalf("a proxy's challenge on the same host: %v", err)
	}
}

// PLAINTEXT reveals the secrets: refused over plain http to a host that
// is not loopback (a permanent CleartextError, nothing sent signed),
// allowed to loopback and with AllowCleartext, as the Transport's
// cleartext rules say; and the secrets are the signature.
func TestOAuth1PlaintextCleartextGuard(t *testing.T) {
	srv := newOAuth1TestServer(t, `OAuth realm="test"`)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	remote := "http://oauth1.invalid:" + port // resolved to the test server by the dialer below
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	for _, preemptive := range []bool{false, true} {
		srv.signed.Store(0)
		o := NewOAuth1("ck", "cs", "tok", "ts", remote)
		o.Method, o.Preemptive = OAuth1Plaintext, preemptive
		tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{o}}
		req, _ := http.NewRequest("GET", remote+"/x", nil)
		resp, err := tr.RoundTrip(req)
		var ce *anyauth.CleartextError
		if resp != nil {
			resp.Body.Close()
		}
		if !errors.As(err, &ce) || !anyauth.IsPermanent(err) || ce.Host != "oauth1.invalid" {
			t.Fatalf("preemptive=%v: %v, %v", preemptive, resp, err)
		}
		if n := srv.signed.Load(); n != 0 {
			t.Fatalf("preemptive=%v: %d requests carried the secrets", preemptive, n)
		}
		if strings.Contains(err.Error(), "cs&ts") {
			t.Fatalf("error shows the secrets: %v", err)
		}
		// With AllowCleartext the user consented.
		tr = &anyauth.Transport{Base: base, AllowCleartext: true, Schemes: []anyauth.Scheme{o}}
		if resp, body := roundTrip(t, tr, "GET", remote+"/x", "", nil); resp.StatusCode != 200 {
			t.Fatalf("AllowCleartext: %s %s", resp.Status, body)
		}
	}
	// Loopback is allowed by the Transport's rules.
	o := newTestOAuth1(srv.URL)
	o.Method = OAuth1Plaintext
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
	if resp, body := roundTrip(t, tr, "GET", srv.URL+"/x", "", nil); resp.StatusCode != 200 {
		t.Fatalf("loopback: %s %s", resp.Status, body)
	}
	if p := headerParams(t, srv.lastAuth.Load().(string)); p["oauth_signature"] != "cs&ts" || p["oauth_signature_method"] != "PLAINTEXT" {
		t.Fatalf("PLAINTEXT header %v", p)
	}
	if !o.Traits().RevealsSecret || newTestOAuth1("http://h").Traits().RevealsSecret {
		t.Fatal("Traits")
	}
}

// BodyHash: a JSON body's SHA-1 (HMAC-SHA1) goes as oauth_body_hash, a
// GET's is the empty string's, a form body gets none; a body that
// cannot be read before it is sent fails clearly.
func TestOAuth1BodyHash(t *testing.T) {
	srv := newOAuth1TestServer(t, `OAuth realm="test"`)
	o := newTestOAuth1(srv.URL)
	o.BodyHash, o.Preemptive = true, true
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{o}}
	js := `{"a":[1,2,3]}`
	if resp, body := roundTrip(t, tr, "POST", srv.URL+"/j", "application/json", strings.NewReader(js)); resp.StatusCode != 200 {
		t.Fatalf("%s %s", resp.Status, body)
	}
	sum := sha1.Sum([]byte(js))
	if p := headerParams(t, srv.lastAuth.Load().(string)); p["oauth_body_hash"] != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("body hash %q", p["oauth_body_hash"])
	}
	roundTrip(t, tr, "GET", srv.URL+"/g", "", nil)
	if p := headerParams(t, srv.lastAuth.Load().(string)); p["oauth_body_hash"] != "2jmj7l5rSw0yVb/vlWAYkK/YBwk=" { // SHA-1("")
		t.Fatalf("GET body hash %q", p["oauth_body_hash"])
	}
	roundTrip(t, tr, "POST", srv.URL+"/f", "application/x-www-form-urlencoded", strings.NewReader("a=b"))
	if p := headerParams(t, srv.lastAuth.Load().(string)); p["oauth_body_hash"] != "" {
		t.Fatalf("form body got a body hash %q", p["oauth_body_hash"])
	}
	// SHA-256 for HMAC-SHA256.
	o256 := *o
	o256.Method = OAuth1HMACSHA256
	req, _ := http.NewRequest("PUT", srv.URL+"/j", strings.NewReader(js))
	h := applyOnce(t, o256, "", req)
	sum256 := sha256.Sum256([]byte(js))
	if p := headerParams(t, h); p["oauth_body_hash"] != base64.StdEncoding.EncodeToString(sum256[:]) {
		t.Fatalf("SHA-256 body hash %q", p["oauth_body_hash"])
	}
	// No GetBody: an error, not a signature without the body.
	req, _ = http.NewRequest("PUT", srv.URL+"/j", &onlyReader{strings.NewReader(js)})
	req.GetBody = nil
	sess, err := o.Begin(context.Background(), &anyauth.Challenge{Scheme: "OAuth"}, &anyauth.Attempt{Request: req, Space: spaceOf(req.URL), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	leg, _ := sess.Start(context.Background(), req)
	if err := leg.Apply(req); !errors.Is(err, anyauth.ErrBodyNotReplayable) || !strings.HasPrefix(err.Error(), "oauth1: ") {
		t.Fatalf("Apply without GetBody: %v", err)
	}
}

func ecdsaKey(t *testing.T) crypto.Signer {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func spaceOf(u *url.URL) anyauth.ProtectionSpace {
	return anyauth.ProtectionSpace{AuthScheme: "OAuth", URLScheme: u.Scheme, Host: u.Hostname(), Port: portOf(u), Path: "/"}
}

// RSA-SHA1 and RSA-SHA256 verify with the public key, from an
// *rsa.PrivateKey or any crypto.Signer of one.
func TestOAuth1RSA(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", "https://api.example.com/r?x=1", nil)
	for _, m := range []OAuth1Method{OAuth1RSASHA1, OAuth1RSASHA256} {
		for _, signer := range []crypto.Signer{key, opaqueSigner{key}} {
			o := OAuth1{Origins: anyauth.Origins{"https://api.example.com"}, ConsumerKey: "ck", Token: "tok", Method: m, PrivateKey: signer}
			p := headerParams(t, applyOnce(t, o, "", req))
			params, _ := oauth1RequestParams(req)
			for k, v := range p {
				if k != "oauth_signature" && k != "realm" {
					params = append(params, oauth1Param{k, v})
				}
			}
			h := newHash(m.hash())
			io.WriteString(h, oauth1BaseString("GET", oauth1BaseURI(req), params))
			sig, _ := base64.StdEncoding.DecodeString(p["oauth_signature"])
			if err := rsa.VerifyPKCS1v15(&key.PublicKey, m.hash(), h.Sum(nil), sig); err != nil {
				t.Fatalf("%s with %T: %v", m, signer, err)
			}
		}
	}
}

type opaqueSigner struct{ k *rsa.PrivateKey }

func (s opaqueSigner) Public() crypto.PublicKey { return s.k.Public() }
func (s opaqueSigner) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	return s.k.Sign(r, d, o)
}

// A configuration that cannot sign fails Begin with a permanent error
// that says what is missing.
func TestOAuth1ConfigErrors(t *testing.T) {
	good := OAuth1{Origins: anyauth.Origins{"https://a.example"}, ConsumerKey: "ck"}
	for name, c := range map[string]struct {
		mutate func(*OAuth1)
		want   string
	}{
		"no origins":   {func(o *OAuth1) { o.Origins = nil }, "Origins is empty"},
		"bad origin":   {func(o *OAuth1) { o.Origins = anyauth.Origins{"a.example"} }, "not of the form"},
		"no key":       {func(o *OAuth1) { o.ConsumerKey = "" }, "ConsumerKey is empty"},
		"bad method":   {func(o *OAuth1) { o.Method = "HMAC-MD5" }, "unknown signature method"},
		"rsa no key":   {func(o *OAuth1) { o.Method = OAuth1RSASHA256 }, "needs OAuth1.PrivateKey"},
		"rsa not rsa":  {func(o *OAuth1) { o.Method, o.PrivateKey = OAuth1RSASHA1, ecdsaKey(t) }, "needs an RSA key"},
		"hmac is fine": {func(o *OAuth1) {}, ""},
	} {
		o := good
		c.mutate(&o)
		_, err := o.Begin(context.Background(), &anyauth.Challenge{Scheme: "OAuth"}, &anyauth.Attempt{Space: anyauth.ProtectionSpace{URLScheme: "https", Host: "a.example", Port: "443"}, Logger: slog.New(slog.DiscardHandler)})
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !anyauth.IsPermanent(err) || !strings.HasPrefix(err.Error(), "oauth1: ")):
			t.Errorf("%s: %v, want a permanent error saying %q", name, err, c.want)
		}
	}
}

// No secret or key in the printed forms of an OAuth1, its session and
// leg, whatever the verb, nor in its errors.
func TestOAuth1NeverShowsSecrets(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 1024)
	o := NewOAuth1("ck-public", "CONSUMER-SECRET", "tok", "TOKEN-SECRET", "https://a.example")
	o.PrivateKey = key
	req, _ := http.NewRequest("GET", "https://a.example/", nil)
	s, err := o.Begin(context.Background(), &anyauth.Challenge{Scheme: "OAuth"}, &anyauth.Attempt{Request: req, Space: spaceOf(req.URL), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	leg, _ := s.Start(context.Background(), req)
	for _, v := range []any{o, *o, s, leg} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			out := fmt.Sprintf(verb, v)
			for _, secret := range []string{"CONSUMER-SECRET", "TOKEN-SECRET", "CONSUMER%2DSECRET", key.D.String(), fmt.Sprintf("%x", "CONSUMER-SECRET")} {
				if strings.Contains(out, secret) {
					t.Fatalf("%s of %T shows a secret: %s", verb, v, out)
				}
			}
		}
	}
	if !strings.Contains(fmt.Sprint(o), "ck-public") {
		t.Fatalf("the consumer key is not secret, and helps: %v", o)
	}
}

// The header carries each protocol parameter once, percent-encoded, the
// consumer key and token included even with characters to escape.
func TestOAuth1HeaderShape(t *testing.T) {
	o := OAuth1{Origins: anyauth.Origins{"http://h"}, ConsumerKey: "c k/é", ConsumerSecret: "s", Token: "t=1", TokenSecret: "u",
		now: func() time.Time { return time.Unix(1700000000, 0) }, nonce: func() (string, error) { return "n", nil }}
	req, _ := http.NewRequest("GET", "http://h/", nil)
	h := applyOnce(t, o, `we"ird`, req)
	if !strings.HasPrefix(h, `OAuth realm="we\"ird", oauth_consumer_key="c%20k%2F%C3%A9", `) || !strings.Contains(h, `oauth_token="t%3D1"`) {
		t.Fatalf("header %s", h)
	}
	p := headerParams(t, h)
	for _, k := range []string{"oauth_consumer_key", "oauth_token", "oauth_signature_method", "oauth_timestamp", "oauth_nonce", "oauth_version", "oauth_signature"} {
		if p[k] == "" {
			t.Fatalf("%s missing in %s", k, h)
		}
	}
	// Without a token: no oauth_token.
	o.Token = ""
	if p := headerParams(t, applyOnce(t, o, "", req)); p["oauth_token"] != "" || bytes.Contains([]byte(h), []byte("oauth_token=\"\"")) {
		t.Fatalf("empty token sent: %v", p)
	}
}
