package anyauth_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

func space(origin, realm string) *anyauth.ProtectionSpace {
	s := &anyauth.ProtectionSpace{AuthScheme: "Basic", Realm: realm, Path: "/"}
	scheme, hostport, _ := strings.Cut(origin, "://")
	s.URLScheme = scheme
	s.Host, s.Port, _ = strings.Cut(hostport, ":")
	return s
}

func TestForOriginIsScopedToOneOrigin(t *testing.T) {
	p := anyauth.ForOrigin("https://API.example.com", "u", "p")
	if up, err := p.Credentials(context.Background(), space("https://api.example.com:443", "r")); err != nil || up.Username != "u" {
		t.Fatalf("same origin: %v %v", up, err)
	}
	for _, other := range []string{"http://api.example.com:80", "https://api.example.com:8443", "https://evil.example.com:443"} {
		if _, err := p.Credentials(context.Background(), space(other, "r")); !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%s got credentials (err %v)", other, err)
		}
	}
	for _, arg := range []string{"https:///nohost", "api.example.com/path", "api.example.com:99999", "ftp://api.example.com"} {
		bad := anyauth.ForOrigin(arg, "u", "p")
		_, err := bad.Credentials(context.Background(), space("https://api.example.com:443", ""))
		if err == nil || errors.Is(err, anyauth.ErrNoCredentials) || !strings.Contains(err.Error(), strconv.Quote(arg)) || strings.Count(err.Error(), "anyauth") != 1 {
			t.Errorf("malformed origin %q gave %v, want a clear error naming it, with one prefix", arg, err)
		}
	}
}

// ForOrigin takes curl's host:port (and host) without a scheme: that host
// and port over http and https, the default ports when none is given.
func TestForOriginHostPort(t *testing.T) {
	ctx := context.Background()
	for arg, cases := range map[string]map[string]bool{
		"127.0.0.1:18080": {"http://127.0.0.1:18080": true, "https://127.0.0.1:18080": true, "http://127.0.0.1:80": false, "http://localhost:18080": false},
		"API.example.com": {"https://api.example.com:443": true, "http://api.example.com:80": true, "https://api.example.com:8443": false, "http://evil.example:80": false},
		"[::1]:8080":      {"http://::1:8080": true, "http://::1:80": false},
	} {
		p := anyauth.ForOrigin(arg, "u", "p")
		for origin, want := range cases {
			sp := space(origin, "r")
			if i := strings.LastIndex(origin, ":"); strings.Count(origin, ":") > 2 {
				sp.Host, sp.Port = strings.TrimPrefix(origin[:i], sp.URLScheme+"://"), origin[i+1:]
			}
			_, err := p.Credentials(ctx, sp)
			if got := err == nil; got != want {
				t.Errorf("ForOrigin(%q) for %s: answered %t (err %v), want %t", arg, origin, got, err, want)
			}
		}
	}
}

func TestCredentialTableMostSpecificWins(t *testing.T) {
	tab := anyauth.CredentialTable{
		{Host: "*", UserPassword: anyauth.UserPassword{Username: "any"}},
		{Host: "h.example", UserPassword: anyauth.UserPassword{Username: "host"}},
		{Host: "h.example", Realm: "r1", UserPassword: anyauth.UserPassword{Username: "host-realm"}},
		{Host: "h.example:8080", UserPassword: anyauth.UserPassword{Username: "hostport"}},
		{Host: "h.example", Proxy: true, UserPassword: anyauth.UserPassword{Username: "proxy"}},
	}
	cases := map[string]string{
		"https://h.example:443|r1":  "host-realm",
		"https://h.example:443|r2":  "host",
		"https://h.example:8080|r2": "hostport",
		"https://other:443|r1":      "any",
	}
	for in, want := range cases {
		origin, realm, _ := strings.Cut(in, "|")
		up, err := tab.Credentials(context.Background(), space(origin, realm))
		if err != nil || up.Username != want {
			t.Errorf("%s: got %v %v, want %s", in, up, err, want)
		}
	}
	ps := space("http://h.example:3128", "")
	ps.Proxy = true
	if up, _ := tab.Credentials(context.Background(), ps); up == nil || up.Username != "proxy" {
		t.Errorf("proxy entry: got %v", up)
	}
}

// TestCredentialTableStrictScheme: an entry without a scheme answers
// https, and plain http only on loopback; "http://" entries answer http.
func TestCredentialTableStrictScheme(t *testing.T) {
	tab := anyauth.CredentialTable{
		{Host: "h.example", UserPassword: anyauth.UserPassword{Username: "bare"}},
		{Host: "http://intranet:8080", UserPassword: anyauth.UserPassword{Username: "intranet"}},
		{Host: "*", UserPassword: anyauth.UserPassword{Username: "star"}},
	}
	cases := map[string]string{
		"https://h.example:443|r":  "bare",
		"http://h.example:80|r":    "", // not after an https→http redirect
		"http://intranet:8080|r":   "intranet",
		"https://intranet:8080|r":  "star",
		"http://127.0.0.1:8080|r":  "star", // loopback: nothing crosses the network
		"http://localhost:8080|r":  "star",
		"http://other.example:80|": "",
	}
	for in, want := range cases {
		origin, realm, _ := strings.Cut(in, "|")
		up, err := tab.Credentials(context.Background(), space(origin, realm))
		got := ""
		if err == nil {
			got = up.Username
		} else if !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%s: %v", in, err)
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", in, got, want)
		}
	}
}

func TestNetrc(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netrc")
	content := "# comment\nmachine a.example login alice password \"pa ss\\\"word\"\n" +
		"macdef init\ncd /pub\n\nmachine b.example login bob\n" + // bob has no password: skipped
		"machine c.example\n  login carol\n  password c-pass\n" +
		"default login anon password anon-pass\n"
	os.WriteFile(path, []byte(content), 0o600)
	n := &anyauth.Netrc{Path: path}
	ctx := context.Background()
	if up, err := n.Credentials(ctx, space("https://A.example:443", "")); err != nil || up.Username != "alice" || up.Password != `pa ss"word` {
		t.Fatalf("a.example: %v %v", up, err)
	}
	if up, err := n.Credentials(ctx, space("http://c.example:8080", "")); err != nil || up.Password != "c-pass" {
		t.Fatalf("c.example: %v %v", up, err)
	}
	for _, h := range []string{"http://b.example:80", "http://z.example:80"} {
		if _, err := n.Credentials(ctx, space(h, "")); !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%s: err %v, want ErrNoCredentials (default is off)", h, err)
		}
	}
	n.UseDefault = true
	if up, _ := n.Credentials(ctx, space("http://z.example:80", "")); up == nil || up.Username != "anon" {
		t.Errorf("default entry not used: %v", up)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", n, n, n, n); strings.Contains(s, "pa ss") || strings.Contains(s, "anon-pass") {
		t.Errorf("netrc printed its secrets: %s", s)
	}
	t.Setenv("NETRC", path)
	if anyauth.NetrcFromEnv().Path != path {
		t.Error("NETRC not honoured")
	}
	missing := &anyauth.Netrc{Path: filepath.Join(dir, "none")}
	if _, err := missing.Credentials(ctx, space("http://a.example:80", "")); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCredentialFuncAndChain(t *testing.T) {
	prompted := 0
	prompt := anyauth.CredentialFunc(func(ctx context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		prompted++
		return &anyauth.UserPassword{Username: "prompted", Password: "x"}, nil
	})
	c := anyauth.Chain{anyauth.ForOrigin("http://a.example", "first", "x"), prompt}
	if up, _ := c.Credentials(context.Background(), space("http://a.example:80", "")); up.Username != "first" || prompted != 0 {
		t.Errorf("got %v, prompted %d", up, prompted)
	}
	if up, _ := c.Credentials(context.Background(), space("http://b.example:80", "")); up.Username != "prompted" || prompted != 1 {
		t.Errorf("got %v, prompted %d", up, prompted)
	}
	boom := errors.New("vault sealed")
	c = anyauth.Chain{anyauth.CredentialFunc(func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) { return nil, boom }), prompt}
	if _, err := c.Credentials(context.Background(), space("http://b.example:80", "")); !errors.Is(err, boom) {
		t.Errorf("a real error must stop the chain, got %v", err)
	}
}

func TestCredentialValuesNeverPrintSecrets(t *testing.T) {
	const secret = "hunter2-secret"
	up := anyauth.UserPassword{Username: "alice", Password: secret}
	values := []any{
		up, &up,
		anyauth.ForOrigin("https://x.example", "alice", secret),
		anyauth.CredentialTable{{Host: "x", UserPassword: up}},
		struct{ C anyauth.UserPassword }{up},
	}
	for _, v := range values {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, secret) || strings.Contains(s, fmt.Sprintf("%x", secret)) {
				t.Errorf("%s of %T shows the secret: %s", verb, v, s)
			}
		}
	}
}

// A netrc entry whose tokens are spread over lines is read, as curl reads
// it.
func TestNetrcEntrySplitAcrossLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(path, []byte("machine\n  split.example\nlogin\n  sam\npassword\n  \"s p\"\n"), 0o600)
	up, err := (&anyauth.Netrc{Path: path}).Credentials(context.Background(), space("https://split.example", ""))
	if err != nil || up.Username != "sam" || up.Password != "s p" {
		t.Fatalf("got %v %v", up, err)
	}
}

// The Transport asks the provider on every request that meets a known
// space, so the common providers must not allocate: ForOrigin and a
// CredentialTable hand out the credentials they hold.
func TestProviderLookupsAllocateNothing(t *testing.T) {
	space := &anyauth.ProtectionSpace{AuthScheme: "Digest", URLScheme: "https", Host: "api.example.com", Port: "443", Realm: "r", Path: "/"}
	fo := anyauth.ForOrigin("https://api.example.com", "alice", "pw")
	table := anyauth.CredentialTable{
		{Host: "other.example.com", UserPassword: anyauth.UserPassword{Username: "x", Password: "y"}},
		{Host: "https://api.example.com", Realm: "r", UserPassword: anyauth.UserPassword{Username: "alice", Password: "pw"}},
	}
	ctx := context.Background()
	for name, p := range map[string]anyauth.CredentialProvider{"ForOrigin": fo, "CredentialTable": table} {
		if up, err := p.Credentials(ctx, space); err != nil || up.Username != "alice" {
			t.Fatalf("%s: %v %v", name, up, err)
		}
		if n := testing.AllocsPerRun(100, func() { p.Credentials(ctx, space) }); n != 0 {
			t.Errorf("%s allocates %.0f times per lookup, want 0", name, n)
		}
	}
}

// a CredentialTable entry written for a host answers its
// https origin, not http after an https→http redirect on the same host.
func TestCredentialTableNotSentAfterHTTPSToHTTPRedirect(t *testing.T) {
	var plainSaw []string
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		plainSaw = append(plainSaw, r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n", qop="auth"`)
		w.WriteHeader(401)
	}))
	defer plain.Close()
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://h.example/landing", http.StatusFound)
	}))
	defer secure.Close()
	base := &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			target := plain.Listener.Addr().String()
			if strings.HasSuffix(addr, ":443") {
				target = secure.Listener.Addr().String()
			}
			return (&net.Dialer{}).DialContext(ctx, network, target)
		},
	}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}},
		Credentials: anyauth.CredentialTable{{Host: "h.example", UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}}}
	resp, err := (&http.Client{Transport: tr}).Get("https://h.example/start")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 401 || len(plainSaw) != 1 || plainSaw[0] != "" {
		t.Fatalf("status %d; the http origin got %q", resp.StatusCode, plainSaw)
	}
}

// a provider that returns (nil, nil) is "no credentials", not a
// panic, for Basic as for Digest.
func TestNilCredentialsFromProvider(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Basic realm="r"`)
		w.Header().Add("WWW-Authenticate", `Digest realm="r", nonce="n", qop="auth"`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	none := anyauth.CredentialFunc(func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) { return nil, nil })
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, schemes.Digest{}}, Credentials: none}
	if code, _ := get(t, tr, srv.URL+"/"); code != 401 {
		t.Fatalf("status %d, want the 401 untouched", code)
	}
}
