package schemes

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
)

// TestDigestStrength ranks algorithms, -sess and qop as documented, and
// refuses what Digest cannot answer.
func TestDigestStrength(t *testing.T) {
	const base = anyauth.StrengthDigest
	for _, tc := range []struct {
		d         Digest
		challenge string
		want      anyauth.Strength
		ok        bool
	}{
		{Digest{}, `Digest realm="r", nonce="n"`, base, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=MD5, qop=auth`, base + 1, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=md5-sess, qop=auth`, base + 11, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth, auth-int"`, base + 32, true},
		{Digest{NoAuthInt: true}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth, auth-int"`, base + 31, true},
		{Digest{RequireMutualAuth: true}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth,auth-int"`, base + 31, true},
		{Digest{NoAuthInt: true}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop=auth-int`, base + 32, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-256-sess, qop=auth`, base + 41, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-512, qop=auth`, base + 51, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-512-256, qop=auth`, base + 61, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=sha-512-256-SESS, qop=auth-int`, base + 72, true},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-1`, 0, false},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-512-256-sessx`, 0, false},
		{Digest{}, `Digest realm="r", nonce="n", qop=auth-conf`, 0, false},
		{Digest{}, `Digest realm="r", nonce="n", algorithm=MD5-sess`, 0, false}, // -sess without qop
		{Digest{}, `Digest realm="r"`, 0, false},
		{Digest{}, `Digest abcdef==`, 0, false},
		{Digest{}, `Basic realm="r", nonce="n"`, 0, false},
	} {
		got, ok := tc.d.Strength(parseOne(t, tc.challenge))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%+v Strength(%s) = %d, %t; want %d, %t", tc.d, tc.challenge, got, ok, tc.want, tc.ok)
		}
	}
	if StrengthDigestSHA256 != base+30 || StrengthDigestSHA512_256 != base+60 || StrengthDigestSHA512 != base+50 || StrengthDigestMD5 != base {
		t.Error("strength constants changed")
	}
	if (Digest{}).Name() != "Digest" {
		t.Error("Name")
	}
}

// TestDigestBeginErrors: unanswerable challenges and provider errors.
func TestDigestBeginErrors(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
	attempt := func(p anyauth.CredentialProvider) *anyauth.Attempt {
		return &anyauth.Attempt{Request: req, Credentials: p, Logger: slog.New(slog.DiscardHandler)}
	}
	for _, tc := range []struct {
		challenge string
		want      error
	}{
		{`Digest realm="r", nonce="n", algorithm=SHA-1`, ErrUnsupportedAlgorithm},
		{`Digest realm="r", nonce="n", qop="auth-conf"`, ErrUnsupportedQop},
		{`Digest realm="r"`, ErrBadChallenge},
		{`Basic realm="r"`, ErrBadChallenge},
	} {
		_, err := Digest{}.Begin(context.Background(), parseOne(t, tc.challenge), attempt(userPass("u", "secret-pw")))
		if !errors.Is(err, tc.want) {
			t.Errorf("Begin(%s) = %v, want %v", tc.challenge, err, tc.want)
		}
	}
	c := parseOne(t, `Digest realm="r", nonce="n"`)
	providerErr := fmt.Errorf("vault says no: %w", anyauth.ErrNoCredentials)
	_, err := Digest{}.Begin(context.Background(), c, attempt(anyauth.CredentialFunc(
		func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
			return nil, providerErr
		})))
	if err != providerErr {
		t.Errorf("provider error not passed through: %v", err)
	}
	_, err = Digest{}.Begin(context.Background(), c, attempt(anyauth.CredentialFunc(
		func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) { return nil, nil })))
	if !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Errorf("nil credentials: %v", err)
	}
	// The space reaches the provider.
	var seen *anyauth.ProtectionSpace
	a := attempt(anyauth.CredentialFunc(func(_ context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		seen = s
		return &anyauth.UserPassword{}, nil
	}))
	a.Space.Realm = "the-realm"
	if _, err := (Digest{}).Begin(context.Background(), c, a); err != nil || seen == nil || seen.Realm != "the-realm" {
		t.Errorf("space not given to the provider: %v %v", err, seen)
	}
}

// trackingBody is a request body that counts reads and records Close, and
// is not an io.WriterTo, so it must be streamed.
type trackingBody struct {
	r      io.Reader
	closed bool
	reads  int
}

func (b *trackingBody) Read(p []byte) (int, error) { b.reads++; return b.r.Read(p) }
func (b *trackingBody) Close() error               { b.closed = true; return nil }

// TestDigestQopChoice: auth-int when offered and the body can be re-read
// (hashing exactly the body, streamed, and closing the reader), auth
// otherwise, ErrBodyNotReadable when auth-int is all there is.
func TestDigestQopChoice(t *testing.T) {
	body := "name=value&x=1"
	hashOf := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	expect := func(s *digestSession, method, uri, qop, bodyHash, header string) {
		t.Helper()
		p := params(parseOne(t, header))
		if p["qop"] != qop {
			t.Fatalf("qop = %q, want %q (%s)", p["qop"], qop, header)
		}
		a2 := method + ":" + uri
		if qop == "auth-int" {
			a2 += ":" + bodyHash
		}
		ha1 := hashOf("u:r:p")
		want := hashOf(strings.Join([]string{ha1, "n", p["nc"], p["cnonce"], qop, hashOf(a2)}, ":"))
		if p["response"] != want {
			t.Errorf("response %s, want %s", p["response"], want)
		}
	}
	both := `Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth, auth-int"`
	s := begin(t, Digest{}, both, "u", "p", false, nil)

	// GetBody set: auth-int over the body, read through GetBody, closed.
	var opened []*trackingBody
	req, _ := http.NewRequest(http.MethodPost, "http://example.org/form", strings.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) {
		b := &trackingBody{r: strings.NewReader(body)}
		opened = append(opened, b)
		return b, nil
	}
	h, err := s.Authorize(req)
	if err != nil {
		t.Fatal(err)
	}
	expect(s, "POST", "/form", "auth-int", hashOf(body), h)
	if len(opened) != 1 || !opened[0].closed {
		t.Errorf("GetBody readers: %d, closed %v", len(opened), opened)
	}

	// No body: auth-int over H("").
	req, _ = http.NewRequest(http.MethodGet, "http://example.org/x", nil)
	h, _ = s.Authorize(req)
	expect(s, "GET", "/x", "auth-int", hashOf(""), h)
	req, _ = http.NewRequest(http.MethodPut, "http://example.org/x", http.NoBody)
	h, _ = s.Authorize(req)
	expect(s, "PUT", "/x", "auth-int", hashOf(""), h)

	// A body that cannot be re-read: auth.
	req, _ = http.NewRequest(http.MethodPost, "http://example.org/x", io.NopCloser(strings.NewReader(body)))
	if req.GetBody != nil {
		t.Fatal("GetBody set")
	}
	h, _ = s.Authorize(req)
	expect(s, "POST", "/x", "auth", "", h)

	// NoAuthInt: auth even with GetBody.
	s2 := begin(t, Digest{NoAuthInt: true}, both, "u", "p", false, nil)
	req, _ = http.NewRequest(http.MethodPost, "http://example.org/x", strings.NewReader(body))
	h, _ = s2.Authorize(req)
	expect(s2, "POST", "/x", "auth", "", h)

	// auth-int only, unreadable body: ErrBodyNotReadable.
	s3 := begin(t, Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop=auth-int`, "u", "p", false, nil)
	req, _ = http.NewRequest(http.MethodPost, "http://example.org/x", io.NopCloser(strings.NewReader(body)))
	if _, err := s3.Authorize(req); !errors.Is(err, ErrBodyNotReadable) {
		t.Errorf("auth-int only, unreadable body: %v", err)
	}
	// GetBody failing: its error comes back.
	boom := errors.New("boom")
	req, _ = http.NewRequest(http.MethodPost, "http://example.org/x", strings.NewReader(body))
	req.GetBody = func() (io.ReadCloser, error) { return nil, boom }
	if _, err := s3.Authorize(req); !errors.Is(err, boom) {
		t.Errorf("GetBody error: %v", err)
	}
}

// endlessReader produces n bytes of 'x' without holding them.
type endlessReader struct{ n int64 }

func (r *endlessReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// TestDigestAuthIntStreams hashes a 64 MiB body for auth-int without
// holding it: the heap grows by far less than the body.
func TestDigestAuthIntStreams(t *testing.T) {
	const size = 64 << 20
	s := begin(t, Digest{}, `Digest realm="r", nonce="n", algorithm=SHA-256, qop=auth-int`, "u", "p", false, nil)
	req, _ := http.NewRequest(http.MethodPut, "http://example.org/big", io.NopCloser(&endlessReader{size}))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(&endlessReader{size}), nil }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	h, err := s.Authorize(req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 1<<20 {
		t.Errorf("hashing a %d-byte body allocated %d bytes", size, grown)
	}
	hh := sha256.New()
	io.Copy(hh, &endlessReader{size})
	p := params(parseOne(t, h))
	sum := func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) }
	ha2 := sum("PUT:/big:" + hex.EncodeToString(hh.Sum(nil)))
	if want := sum(strings.Join([]string{sum("u:r:p"), "n", p["nc"], p["cnonce"], "auth-int", ha2}, ":")); p["response"] != want {
		t.Error("wrong response over the streamed body")
	}
}

// TestDigestSess computes -sess answers independently: HA1 covers the
// nonce and each request's own cnonce.
func TestDigestSess(t *testing.T) {
	for alg, sum := range map[string]func(string) string{
		"MD5-sess":         func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) },
		"SHA-256-sess":     func(s string) string { x := sha256.Sum256([]byte(s)); return hex.EncodeToString(x[:]) },
		"SHA-512-sess":     func(s string) string { x := sha512.Sum512([]byte(s)); return hex.EncodeToString(x[:]) },
		"SHA-512-256-sess": func(s string) string { x := sha512.Sum512_256([]byte(s)); return hex.EncodeToString(x[:]) },
	} {
		s := begin(t, Digest{}, `Digest realm="r", nonce="N", qop=auth, algorithm=`+alg, "u", "p", false, nil)
		cnonces := map[string]bool{}
		for i := 0; i < 3; i++ {
			req, _ := http.NewRequest(http.MethodGet, "http://example.org/a", nil)
			h, err := s.Authorize(req)
			if err != nil {
				t.Fatal(err)
			}
			p := params(parseOne(t, h))
			cnonces[p["cnonce"]] = true
			ha1 := sum(sum("u:r:p") + ":N:" + p["cnonce"])
			want := sum(strings.Join([]string{ha1, "N", p["nc"], p["cnonce"], "auth", sum("GET:/a")}, ":"))
			if p["response"] != want || p["algorithm"] != alg {
				t.Errorf("%s: %s", alg, h)
			}
		}
		if len(cnonces) != 3 {
			t.Errorf("%s: cnonces repeat: %v", alg, cnonces)
		}
	}
}

// TestDigestCnonce: fresh, 16 random bytes in hex; Rand is used, and its
// error comes back.
func TestDigestCnonce(t *testing.T) {
	s := begin(t, Digest{}, `Digest realm="r", nonce="n", qop=auth`, "u", "p", false, nil)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
		h, _ := s.Authorize(req)
		cn := params(parseOne(t, h))["cnonce"]
		if b, err := hex.DecodeString(cn); err != nil || len(b) != 16 || seen[cn] {
			t.Fatalf("cnonce %q", cn)
		}
		seen[cn] = true
	}
	s = begin(t, Digest{Rand: bytes.NewReader(bytes.Repeat([]byte{0xab}, 20))}, `Digest realm="r", nonce="n", qop=auth`, "u", "p", false, nil)
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
	h, err := s.Authorize(req)
	if err != nil || params(parseOne(t, h))["cnonce"] != strings.Repeat("ab", 16) {
		t.Errorf("Rand not used: %s %v", h, err)
	}
	if _, err := s.Authorize(req); err == nil { // 4 bytes left: too few
		t.Error("short Rand accepted")
	}
}

// TestDigestRequestTarget: origin form, absolute form for a proxy (as
// net/http writes it: no user info, no fragment, Host override, no IPv6
// zone), authority form for CONNECT.
func TestDigestRequestTarget(t *testing.T) {
	for _, tc := range []struct {
		method, url, host string
		proxy             bool
		want              string
	}{
		{"GET", "http://example.org/a/b?c=d%20e", "", false, "/a/b?c=d%20e"},
		{"GET", "http://example.org", "", false, "/"},
		{"GET", "http://example.org/a%2Fb;p?q", "", false, "/a%2Fb;p?q"},
		{"GET", "http://user:pw@example.org:8080/a?b#frag", "", true, "http://example.org:8080/a?b"},
		{"GET", "http://example.org/a", "vhost.example:81", true, "http://vhost.example:81/a"},
		{"GET", "http://[fe80::1%25eth0]:8080/a", "", true, "http://[fe80::1]:8080/a"},
		{"CONNECT", "http://example.org:443", "", true, "example.org:443"},
	} {
		req, err := http.NewRequest(tc.method, tc.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.method == "CONNECT" {
			req.URL = &url.URL{Host: "example.org:443"}
		}
		if tc.host != "" {
			req.Host = tc.host
		}
		if got := requestTarget(req, tc.proxy); got != tc.want {
			t.Errorf("%s %s proxy=%t: %q, want %q", tc.method, tc.url, tc.proxy, got, tc.want)
		}
	}
}

// TestDigestUsernameForms: quoted-string escapes, username* for non-ASCII
// and control characters, userhash overriding both, NoUserhash.
func TestDigestUsernameForms(t *testing.T) {
	for _, tc := range []struct {
		d         Digest
		userhash  bool
		user      string
		wantField string
	}{
		{Digest{}, false, `a"b\c`, `username="a\"b\\c"`},
		{Digest{}, false, "tab\there", `username*=UTF-8''tab%09here`},
		{Digest{}, false, "Jäsøn Doe", `username*=UTF-8''J%C3%A4s%C3%B8n%20Doe`},
		{Digest{}, false, "del\x7f", `username*=UTF-8''del%7F`},
		{Digest{}, false, "a!#$&+-.^_`|~z", "username=\"a!#$&+-.^_`|~z\""},
		{Digest{}, false, "ü'%*", `username*=UTF-8''%C3%BC%27%25%2A`},
		{Digest{}, true, "Jäsøn Doe", `username="793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"`},
		{Digest{NoUserhash: true}, true, "Mufasa", `username="Mufasa"`},
	} {
		ch := `Digest realm="api@example.org", nonce="n", qop=auth, algorithm=SHA-512-256`
		if tc.userhash {
			ch += ", userhash=true"
		}
		s := begin(t, tc.d, ch, tc.user, "p", false, nil)
		req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
		h, err := s.Authorize(req)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(h, "Digest "+tc.wantField+", ") {
			t.Errorf("user %q: %s, want field %s", tc.user, h, tc.wantField)
		}
		p := params(parseOne(t, h))
		switch {
		case tc.userhash && !tc.d.NoUserhash:
			if p["userhash"] != "true" {
				t.Errorf("userhash=%q", p["userhash"])
			}
		case tc.userhash:
			if p["userhash"] != "false" {
				t.Errorf("userhash=%q, want false", p["userhash"])
			}
		default:
			if _, ok := p["userhash"]; ok {
				t.Errorf("userhash sent unasked: %s", h)
			}
		}
	}
}

// secretsOf returns what must never be printed for a session of user u
// with password pw: the password and every HA1 the session holds.
func secretsOf(s *digestSession) []string {
	return []string{s.password, s.state.Load().ha1}
}

// TestDigestRedaction: %v, %+v, %#v, %s of a session and its state show
// neither password nor HA1, and neither do errors and log lines.
func TestDigestRedaction(t *testing.T) {
	logger, logs := captureLogger()
	pw := "Tr0ub4dor&3-secret"
	s := begin(t, Digest{}, `Digest realm="r", nonce="n", qop=auth-int, algorithm=SHA-256`, "alice", pw, false, logger)
	printed := fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s, s) + fmt.Sprint(s) + fmt.Sprintf("%v %+v %#v", s.state.Load(), s.state.Load(), *s.state.Load())
	for _, secret := range secretsOf(s) {
		if strings.Contains(printed, secret) {
			t.Errorf("printed session holds a secret: %s", printed)
		}
	}
	if !strings.Contains(printed, "alice") || !strings.Contains(printed, "REDACTED") {
		t.Errorf("printed session should name the user and say REDACTED: %s", printed)
	}
	// Errors.
	req, _ := http.NewRequest(http.MethodPost, "http://example.org/", io.NopCloser(strings.NewReader("x")))
	_, err := s.Authorize(req)
	// A mismatching rspauth, logged.
	req, _ = http.NewRequest(http.MethodGet, "http://example.org/", nil)
	h, _ := s.Authorize(req)
	req.Header.Set("Authorization", h)
	resp := &http.Response{StatusCode: 200, Header: http.Header{"Authentication-Info": {`rspauth="00", qop=auth-int`}}, Request: req}
	s.Complete(resp)
	s.cfg.RequireMutualAuth = true
	err2 := s.Complete(resp)
	all := fmt.Sprint(err, err2) + logs.String()
	for _, secret := range append(secretsOf(s), params(parseOne(t, h))["response"]) {
		if strings.Contains(all, secret) {
			t.Errorf("error or log holds a secret: %s", all)
		}
	}
}

// TestDigestRefresh: stale=true of the same realm is adopted (nonce,
// opaque, algorithm, qop; nc restarts); anything else is not.
func TestDigestRefresh(t *testing.T) {
	s := begin(t, Digest{}, `Digest realm="r", nonce="n1", qop=auth, algorithm=MD5, opaque="o1"`, "u", "p", false, nil)
	get := func() map[string]string {
		req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
		h, err := s.Authorize(req)
		if err != nil {
			t.Fatal(err)
		}
		return params(parseOne(t, h))
	}
	get()
	if p := get(); p["nc"] != "00000002" {
		t.Fatalf("nc %s", p["nc"])
	}
	for _, ch := range []string{
		`Digest realm="r", nonce="n2", qop=auth`,                          // not stale: rejected
		`Digest realm="other", nonce="n2", qop=auth, stale=true`,          // other realm
		`Digest realm="r", nonce="n2", qop=auth, stale=true, algorithm=X`, // unknown algorithm
		`Basic realm="r", stale=true`,
	} {
		if s.Refresh(parseOne(t, ch)) {
			t.Errorf("Refresh(%s) = true", ch)
		}
	}
	if p := get(); p["nonce"] != "n1" || p["nc"] != "00000003" {
		t.Fatalf("state changed by a refused Refresh: %v", p)
	}
	if !s.Refresh(parseOne(t, `Digest realm="r", nonce="n2", qop="auth-int", algorithm=SHA-256, opaque="o2", stale=TRUE`)) {
		t.Fatal("stale challenge refused")
	}
	p := get()
	if p["nonce"] != "n2" || p["nc"] != "00000001" || p["opaque"] != "o2" || p["algorithm"] != "SHA-256" || p["qop"] != "auth-int" {
		t.Errorf("after Refresh: %v", p)
	}
	if len(p["response"]) != 64 {
		t.Errorf("SHA-256 not adopted: %v", p)
	}
	// A stale challenge may not downgrade the algorithm.
	if s.Refresh(parseOne(t, `Digest realm="r", nonce="n3", qop=auth, algorithm=MD5, stale=true`)) {
		t.Error("stale challenge downgraded SHA-256 to MD5")
	}
	// Nor lower the qop (a forged stale=true must not turn auth-int into
	// auth for every request of the space).
	if s.Refresh(parseOne(t, `Digest realm="r", nonce="n4", qop=auth, algorithm=SHA-256, stale=true`)) {
		t.Error("stale challenge lowered qop auth-int to auth")
	}
	// Going back to n1 (a stale challenge repeating it) continues its count.
	if !s.Refresh(parseOne(t, `Digest realm="r", nonce="n1", qop="auth-int", algorithm=SHA-256, opaque="o1", stale=true`)) {
		t.Fatal("refused")
	}
	if p := get(); p["nonce"] != "n1" || p["nc"] != "00000004" {
		t.Errorf("nc of a nonce used before restarted: %v", p)
	}
}

// answer authorizes a GET of path and returns the request carrying it.
func answer(t *testing.T, s *digestSession, path string) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://example.org"+path, nil)
	h, err := s.Authorize(req)
	if err != nil {
		t.Fatal(err)
	}
	name := "Authorization"
	if s.proxy {
		name = "Proxy-Authorization"
	}
	req.Header.Set(name, h)
	return req
}

// rspauthFor computes the rspauth a server would send for req's MD5
// qop=auth answer of user u, password p, realm r.
func rspauthFor(req *http.Request, header string) string {
	sum := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	p := params(&anyauth.ParseChallenges(req.Header.Get(header))[0])
	return sum(strings.Join([]string{sum("u:r:p"), p["nonce"], p["nc"], p["cnonce"], p["qop"], sum(":" + p["uri"])}, ":"))
}

// TestDigestComplete: nextnonce adopted with nc restarting; rspauth
// checked against the cnonce and nc of the request that got the response;
// a mismatch fails with RequireMutualAuth and is logged otherwise.
func TestDigestComplete(t *testing.T) {
	const ch = `Digest realm="r", nonce="n1", qop=auth`
	ok := func(req *http.Request, info string) *http.Response {
		return &http.Response{StatusCode: 200, Header: http.Header{"Authentication-Info": {info}}, Request: req}
	}

	t.Run("nextnonce", func(t *testing.T) {
		s := begin(t, Digest{}, ch, "u", "p", false, nil)
		r1 := answer(t, s, "/a")
		r2 := answer(t, s, "/b") // in flight on n1
		if err := s.Complete(ok(r1, `nextnonce="n2"`)); err != nil {
			t.Fatal(err)
		}
		p := params(parseOne(t, answer(t, s, "/c").Header.Get("Authorization")))
		if p["nonce"] != "n2" || p["nc"] != "00000001" {
			t.Errorf("nextnonce not adopted: %v", p)
		}
		// A late response to n1 must not pull the session back to a
		// nonce it left, nor restart n2's count.
		s.Complete(ok(r2, `nextnonce="n3"`))
		p = params(parseOne(t, answer(t, s, "/d").Header.Get("Authorization")))
		if p["nonce"] != "n2" || p["nc"] != "00000002" {
			t.Errorf("late nextnonce: %v", p)
		}
		// Rejected responses are not inspected.
		r := answer(t, s, "/e")
		s.Complete(&http.Response{StatusCode: 401, Header: http.Header{"Authentication-Info": {`nextnonce="n9"`}}, Request: r})
		if p := params(parseOne(t, answer(t, s, "/f").Header.Get("Authorization"))); p["nonce"] != "n2" {
			t.Errorf("401 nextnonce adopted: %v", p)
		}
	})

	t.Run("rspauth", func(t *testing.T) {
		logger, logs := captureLogger()
		s := begin(t, Digest{}, ch, "u", "p", false, logger)
		r1 := answer(t, s, "/a")
		r2 := answer(t, s, "/b")
		// Each response is checked against its own request's cnonce/nc,
		// in any order.
		for _, r := range []*http.Request{r2, r1} {
			if err := s.Complete(ok(r, `rspauth="`+rspauthFor(r, "Authorization")+`", qop=auth`)); err != nil {
				t.Fatal(err)
			}
		}
		if logs.String() != "" {
			t.Errorf("matching rspauth logged: %s", logs)
		}
		// Mismatch without RequireMutualAuth: logged at Warn, no error.
		if err := s.Complete(ok(r1, `rspauth="`+rspauthFor(r2, "Authorization")+`", nextnonce="forged"`)); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "rspauth") {
			t.Errorf("mismatch not logged at Warn: %q", logs)
		}
		if p := params(parseOne(t, answer(t, s, "/x").Header.Get("Authorization"))); p["nonce"] != "n1" {
			t.Errorf("nextnonce of a forged response adopted: %v", p)
		}
		// An echoed cnonce or nc that is not the request's is a mismatch.
		s.cfg.RequireMutualAuth = true
		good := rspauthFor(r1, "Authorization")
		for _, info := range []string{
			`rspauth="` + rspauthFor(r2, "Authorization") + `"`,
			`rspauth="` + good + `", cnonce="other"`,
			`rspauth="` + good + `", nc=00000009`,
			`rspauth="` + good[:10] + `"`,
			`nextnonce="x"`, // no rspauth at all
		} {
			if err := s.Complete(ok(r1, info)); !errors.Is(err, ErrMutualAuth) {
				t.Errorf("RequireMutualAuth, %s: %v", info, err)
			}
		}
		if err := s.Complete(&http.Response{StatusCode: 200, Header: http.Header{}, Request: r1}); !errors.Is(err, ErrMutualAuth) {
			t.Errorf("RequireMutualAuth, no Authentication-Info: %v", err)
		}
		if err := s.Complete(ok(r1, `rspauth="`+strings.ToUpper(good)+`", qop=auth`)); err != nil {
			t.Errorf("upper-case hex rspauth: %v", err)
		}
		// 401: the answer was rejected; nothing to verify.
		if err := s.Complete(&http.Response{StatusCode: 401, Header: http.Header{}, Request: r1}); err != nil {
			t.Errorf("401: %v", err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		s := begin(t, Digest{RequireMutualAuth: true}, ch, "u", "p", true, nil)
		r := answer(t, s, "/a")
		if p := params(parseOne(t, r.Header.Get("Proxy-Authorization"))); p["uri"] != "http://example.org/a" {
			t.Errorf("proxy uri %q", p["uri"])
		}
		good := rspauthFor(r, "Proxy-Authorization")
		resp := &http.Response{StatusCode: 200, Header: http.Header{"Proxy-Authentication-Info": {`rspauth="` + good + `", nextnonce="pn2"`}}, Request: r}
		if err := s.Complete(resp); err != nil {
			t.Fatal(err)
		}
		if p := params(parseOne(t, answer(t, s, "/b").Header.Get("Proxy-Authorization"))); p["nonce"] != "pn2" {
			t.Errorf("proxy nextnonce not adopted: %v", p)
		}
		// The origin's Authentication-Info is not the proxy's.
		r = answer(t, s, "/c")
		resp = &http.Response{StatusCode: 200, Header: http.Header{"Authentication-Info": {`rspauth="` + rspauthFor(r, "Proxy-Authorization") + `"`}}, Request: r}
		if err := s.Complete(resp); !errors.Is(err, ErrMutualAuth) {
			t.Errorf("origin's Authentication-Info taken for the proxy's: %v", err)
		}
		// 407 means rejected.
		if err := s.Complete(&http.Response{StatusCode: 407, Header: http.Header{}, Request: r}); err != nil {
			t.Error(err)
		}
	})

	t.Run("auth-int is not verified", func(t *testing.T) {
		logger, logs := captureLogger()
		s := begin(t, Digest{}, `Digest realm="r", nonce="n1", qop=auth-int`, "u", "p", false, logger)
		r := answer(t, s, "/a")
		if err := s.Complete(ok(r, `rspauth="0123", nextnonce="n2"`)); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logs.String(), "WARN") {
			t.Errorf("unverifiable rspauth reported as a mismatch: %s", logs)
		}
		if p := params(parseOne(t, answer(t, s, "/b").Header.Get("Authorization"))); p["nonce"] != "n2" {
			t.Errorf("nextnonce not adopted: %v", p)
		}
		s.cfg.RequireMutualAuth = true
		if err := s.Complete(ok(r, `rspauth="0123"`)); !errors.Is(err, ErrMutualAuth) {
			t.Errorf("RequireMutualAuth accepted an unverifiable auth-int rspauth: %v", err)
		}
	})

	t.Run("no qop", func(t *testing.T) {
		s := begin(t, Digest{RequireMutualAuth: true}, `Digest realm="r", nonce="n1"`, "u", "p", false, nil)
		r := answer(t, s, "/a")
		sum := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
		good := sum(sum("u:r:p") + ":n1:" + sum(":/a"))
		if err := s.Complete(ok(r, `rspauth="`+good+`"`)); err != nil {
			t.Errorf("RFC 2069-style rspauth: %v", err)
		}
		if err := s.Complete(ok(r, `rspauth="`+sum("x")+`"`)); !errors.Is(err, ErrMutualAuth) {
			t.Errorf("bad rspauth: %v", err)
		}
	})
}

// TestDigestSessionConcurrent: 64 goroutines authorize on one session
// while others adopt nextnonces and stale challenges; every (nonce, nc)
// pair is unique.
func TestDigestSessionConcurrent(t *testing.T) {
	s := begin(t, Digest{}, `Digest realm="r", nonce="n0", qop=auth, algorithm=SHA-256`, "u", "p", false, nil)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for g := 0; g < 64; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				req := answer(t, s, "/")
				p := params(&anyauth.ParseChallenges(req.Header.Get("Authorization"))[0])
				key := p["nonce"] + "/" + p["nc"]
				mu.Lock()
				dup := seen[key]
				seen[key] = true
				mu.Unlock()
				if dup {
					t.Errorf("nonce/nc %s sent twice", key)
					return
				}
				switch {
				case i%50 == 0 && g%8 == 0:
					s.Refresh(parseOne(t, fmt.Sprintf(`Digest realm="r", nonce="s%d-%d", qop=auth, algorithm=SHA-256, stale=true`, g, i)))
				case i%10 == 0:
					s.Complete(&http.Response{StatusCode: 200, Request: req,
						Header: http.Header{"Authentication-Info": {fmt.Sprintf(`nextnonce="n%d"`, (g+i)%5)}}})
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 64*200 {
		t.Errorf("%d distinct answers, want %d", len(seen), 64*200)
	}
}

// TestDigestScope: the domain parameter on the challenged origin.
func TestDigestScope(t *testing.T) {
	u, _ := url.Parse("http://example.org:8080/app/page")
	for _, tc := range []struct {
		domain string
		want   []string
	}{
		{"", nil},
		{"/api/ /static/", []string{"/api/", "/static/"}},
		{"http://example.org:8080/x/ https://example.org:8080/y/ http://other.org:8080/z/ http://example.org/w/", []string{"/x/"}},
		{"rel/ //example.org:8080/abs", []string{"/app/rel/", "/abs"}},
		{"http://other.org/", nil},
	} {
		c := anyauth.Challenge{Scheme: "Digest", Params: []anyauth.Param{{Name: "realm", Value: "r"}, {Name: "nonce", Value: "n"}}}
		if tc.domain != "" {
			c.Params = append(c.Params, anyauth.Param{Name: "domain", Value: tc.domain})
		}
		if got := (Digest{}).Scope(&c, u); !slices.Equal(got, tc.want) {
			t.Errorf("domain %q: %q, want %q", tc.domain, got, tc.want)
		}
	}
	var _ anyauth.Scoper = Digest{}
}

// TestDigestNCExhausted: the 8-digit nonce count never wraps to a count
// already sent.
func TestDigestNCExhausted(t *testing.T) {
	s := begin(t, Digest{}, `Digest realm="r", nonce="n", qop=auth`, "u", "p", false, nil)
	s.state.Load().nc.n.Store(maxNC - 1)
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
	h, err := s.Authorize(req)
	if err != nil || params(parseOne(t, h))["nc"] != "ffffffff" {
		t.Fatalf("%s %v", h, err)
	}
	if _, err := s.Authorize(req); err == nil {
		t.Error("nc wrapped")
	}
}

// TestForgedStaleCannotWeakenSession: a stale=true challenge (anyone on
// the path can forge one) must not drop userhash, lower the qop or the
// algorithm of a session that every request of the space shares.
func TestForgedStaleCannotWeakenSession(t *testing.T) {
	base := `Digest realm="r", nonce="n1", qop="auth-int", algorithm=SHA-256, userhash=true`
	for _, forged := range []string{
		`Digest realm="r", nonce="n2", qop="auth-int", algorithm=SHA-256, stale=true`,            // no userhash
		`Digest realm="r", nonce="n2", qop="auth", algorithm=SHA-256, userhash=true, stale=true`, // auth-int → auth
		`Digest realm="r", nonce="n2", algorithm=SHA-256, userhash=true, stale=true`,             // no qop
		`Digest realm="r", nonce="n2", qop="auth-int", algorithm=MD5, userhash=true, stale=true`, // MD5
	} {
		s := begin(t, Digest{}, base, "alice", "pw", false, nil)
		if s.Refresh(parseOne(t, forged)) {
			t.Errorf("stale challenge adopted: %s", forged)
		}
		req, _ := http.NewRequest("GET", "http://example.org/x", nil)
		h, err := s.Authorize(req)
		if err != nil {
			t.Fatal(err)
		}
		p := params(parseOne(t, h))
		if p["userhash"] != "true" || p["qop"] != "auth-int" || p["algorithm"] != "SHA-256" || p["nonce"] != "n1" || p["username"] == "alice" {
			t.Errorf("after %s the session answers %v", forged, p)
		}
	}
	// A stale challenge that weakens nothing is adopted.
	s := begin(t, Digest{}, base, "alice", "pw", false, nil)
	if !s.Refresh(parseOne(t, `Digest realm="r", nonce="n2", qop="auth-int", algorithm=SHA-256, userhash=true, stale=true`)) {
		t.Fatal("an equal stale challenge was refused")
	}
}
