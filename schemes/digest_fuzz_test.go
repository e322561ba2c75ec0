package schemes

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
)

// FuzzDigestAuthorize feeds any challenge and user name to Strength,
// Begin, Authorize, Refresh and Complete. Nothing may panic; Strength and
// Begin must agree; and every header built must be a valid field value
// that parses back into one Digest answer with the challenge's realm and
// the user name (plain, username*, or hashed as userhash asks). Its seed
// corpus is in testdata/fuzz/FuzzDigestAuthorize.
func FuzzDigestAuthorize(f *testing.F) {
	for _, seed := range [][2]string{
		{`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`, "Mufasa"},
		{`Digest realm="api@example.org", qop="auth", algorithm=SHA-512-256, nonce="5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK", opaque="HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS", charset=UTF-8, userhash=true`, "Jäsøn Doe"},
		{`Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"`, `a"b\c`},
		{`Digest realm="r\"\\", nonce=n, qop=auth-int, algorithm=md5-SESS, stale=true`, "\x00\r\n\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, challenge, username string) {
		cs := anyauth.ParseChallenges(challenge)
		if len(cs) == 0 {
			return
		}
		c := &cs[0]
		d := Digest{}
		_, ok := d.Strength(c)
		req, _ := http.NewRequest(http.MethodGet, "http://example.org/dir/index.html?q=1", nil)
		a := &anyauth.Attempt{
			Request:     req,
			Space:       anyauth.ProtectionSpace{AuthScheme: "Digest", URLScheme: "http", Host: "example.org", Port: "80", Realm: c.Realm(), Path: "/dir/"},
			Credentials: userPass(username, "pw"),
			Logger:      slog.New(slog.DiscardHandler),
		}
		s, err := d.Begin(context.Background(), c, a)
		if ok != (err == nil) {
			t.Fatalf("Strength ok=%t but Begin error %v", ok, err)
		}
		if err != nil {
			return
		}
		ds := s.(*digestSession)
		for i := 0; i < 2; i++ {
			h, err := ds.Authorize(req)
			if err != nil {
				t.Fatalf("Authorize of a bodyless GET: %v", err)
			}
			checkAnswer(t, h, c, username)
			req.Header.Set("Authorization", h)
			info := strings.TrimSpace(strings.TrimPrefix(challenge, c.Scheme))
			ds.Complete(&http.Response{StatusCode: 200, Request: req, Header: http.Header{"Authentication-Info": {info}}})
			ds.Refresh(c)
			_ = ds.String()
		}
	})
}

// checkAnswer checks an Authorization value built for challenge c and
// user name user.
func checkAnswer(t *testing.T, h string, c *anyauth.Challenge, user string) {
	t.Helper()
	for i := 0; i < len(h); i++ {
		if b := h[i]; (b < 0x20 && b != '\t') || b == 0x7f {
			t.Fatalf("header holds control byte %#x: %q", b, h)
		}
	}
	out := anyauth.ParseChallenges(h)
	if len(out) != 1 || !out[0].Is("Digest") {
		t.Fatalf("%q parses into %d challenges", h, len(out))
	}
	p := params(&out[0])
	if p["realm"] != c.Realm() {
		t.Fatalf("realm %q, challenge's %q", p["realm"], c.Realm())
	}
	switch ext, hasExt := p["username*"]; {
	case p["userhash"] == "true":
		newHash, _ := vh(c.Param("algorithm"))
		if want := vhex(newHash, user, c.Realm()); p["username"] != want {
			t.Fatalf("hashed username %q, want %q", p["username"], want)
		}
	case hasExt:
		rest, ok := strings.CutPrefix(ext, "UTF-8''")
		dec, err := url.PathUnescape(rest)
		if !ok || err != nil || dec != user {
			t.Fatalf("username* %q decodes to %q (%v), want %q", ext, dec, err, user)
		}
	default:
		if p["username"] != user {
			t.Fatalf("username %q, want %q", p["username"], user)
		}
	}
}
