package testserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestOpenIDCMintHS256(t *testing.T) {
	tok := MintHS256(map[string]any{"sub": User, "exp": 2000000000})
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("MintHS256 = %q, want three dot-separated parts", tok)
	}
	enc := base64.RawURLEncoding
	header, err := enc.DecodeString(parts[0])
	if err != nil || string(header) != `{"alg":"HS256","typ":"JWT"}` {
		t.Errorf("header = %q, %v", header, err)
	}
	payload, err := enc.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["sub"] != User || claims["exp"] != float64(2000000000) {
		t.Errorf("claims = %v", claims)
	}
	mac := hmac.New(sha256.New, []byte(OpenIDCSecret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if sig, err := enc.DecodeString(parts[2]); err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		t.Errorf("signature does not verify with OpenIDCSecret")
	}
	if len(OpenIDCSecret) < 32 {
		t.Errorf("OpenIDCSecret has %d bytes, want at least 32 for HS256", len(OpenIDCSecret))
	}
}

func bearer(token string) func(*http.Request) {
	return func(req *http.Request) { req.Header.Set("Authorization", "Bearer "+token) }
}

// TestOpenIDC checks what mod_auth_openidc answers on PathBearer. The
// WWW-Authenticate values seen with 2.4.12.3 are spelled out in full.
func TestOpenIDC(t *testing.T) {
	s := StartForTest(t, StartOpenIDC)
	t.Logf("apache-openidc at %s, startup %v", s.URL, s.Startup)
	now := time.Now()
	valid := MintHS256(map[string]any{"sub": User, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})

	const (
		// No token (and a non-Bearer scheme): RFC 6750 wants no error code
		// here; the module says invalid_request.
		noToken = `Bearer realm="anyauth bearer", error="invalid_request", error_description="No bearer token found in the request"`
		// Expired, malformed, wrongly signed, alg none: all the same.
		invalid = `Bearer realm="anyauth bearer", error="invalid_token", error_description="JWT token could not be validated"`
	)
	deny := func(name string, auth func(*http.Request), want string) {
		t.Helper()
		resp, body := do(t, "GET", s.URL+PathBearer+"whoami", "", auth)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s, want 401; body %q", name, resp.Status, body)
			return
		}
		got := resp.Header.Values("WWW-Authenticate")
		t.Logf("%s: 401 WWW-Authenticate: %q", name, got)
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: WWW-Authenticate = %q, want %q", name, got, want)
		}
	}

	deny("no token", nil, noToken)
	deny("basic", basic, noToken)
	deny("expired", bearer(MintHS256(map[string]any{"sub": User, "exp": now.Add(-time.Minute).Unix()})), invalid)
	deny("malformed", bearer("not-a-jwt"), invalid)
	deny("garbage segments", bearer("a.b.c"), invalid)
	deny("wrong key", bearer(signHS256([]byte("another-secret-another-secret-0123456789"), map[string]any{"sub": User, "exp": now.Add(time.Hour).Unix()})), invalid)
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		strings.Split(valid, ".")[1] + "."
	deny("alg none", bearer(none), invalid)
	mallory := strings.Split(MintHS256(map[string]any{"sub": "mallory"}), ".")
	deny("tampered payload", bearer(mallory[0]+"."+mallory[1]+"."+strings.Split(valid, ".")[2]), invalid)

	for _, target := range []string{"whoami", "", "index.txt"} {
		resp, body := do(t, "GET", s.URL+PathBearer+target, "", bearer(valid))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s with a valid token: %s %q", PathBearer+target, resp.Status, body)
		}
		want := IndexContent(PathBearer)
		if target == "whoami" {
			want = User + "\n"
			if at := resp.Header.Get("X-Auth-Type"); at != "oauth20" {
				t.Errorf("whoami: X-Auth-Type %q, want oauth20", at)
			}
		}
		if body != want {
			t.Errorf("GET %s: body %q, want %q", PathBearer+target, body, want)
		}
	}
	// Lower-case scheme, no exp at all.
	resp, body := do(t, "GET", s.URL+PathBearer+"whoami", "", func(req *http.Request) {
		req.Header.Set("Authorization", "bearer "+MintHS256(map[string]any{"sub": "bob"}))
	})
	if resp.StatusCode != http.StatusOK || body != "bob\n" {
		t.Errorf("lower-case bearer, no exp: %s %q", resp.Status, body)
	}
	// echo works behind Bearer too.
	resp, body = do(t, "POST", s.URL+PathBearer+"echo", "hello", bearer(valid))
	if resp.StatusCode != http.StatusOK || body != EchoReply([]byte("hello")) {
		t.Errorf("POST echo: %s %q", resp.Status, body)
	}

	// OPTIONS needs no token: mod_auth_openidc lets it through with an
	// empty user (which the access log shows as "").
	resp, body = do(t, "OPTIONS", s.URL+PathBearer+"index.txt", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("OPTIONS without token: %s %q, want 200", resp.Status, body)
	}

	total, unauthorized := s.Hits(PathBearer)
	if total != 8+3+2+1 || unauthorized != 8 {
		t.Errorf("Hits(%s) = %d, %d; want 14, 8\n%s", PathBearer, total, unauthorized, s.AccessLog())
	}
	var users []string
	for _, h := range s.Requests(PathBearer) {
		if h.Status == http.StatusOK {
			users = append(users, h.Method+":"+h.User)
		}
	}
	if got, want := strings.Join(users, " "), "GET:alice GET:alice GET:alice GET:bob POST:alice OPTIONS:"; got != want {
		t.Errorf("method:user of the 200s = %q, want %q", got, want)
	}
}
