package negotiate_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/schemes"
)

// whoami is the URL of the whoami CGI under path of srv.
func whoami(srv *testserver.Server, path string) string {
	return srv.URL + path + testserver.WhoamiPath
}

// wantUser checks a 200 from whoami, authenticated with scheme.
func wantUser(t *testing.T, resp *http.Response, body string, err error, user, scheme string) {
	t.Helper()
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != user || resp.Header.Get("X-Auth-Type") != scheme {
		t.Fatalf("got %s, user %q, X-Auth-Type %q; want 200, %q, %q", resp.Status, strings.TrimSpace(body), resp.Header.Get("X-Auth-Type"), user, scheme)
	}
}

// TestCredentialSources: a ticket obtained with a keytab, a configured
// password, the Transport's password, and kinit's credential cache (FILE:,
// a plain path, DIR:), each against /negotiate/ with mutual
// authentication required.
func TestCredentialSources(t *testing.T) {
	kdc, srv := gssapi(t)
	dir := t.TempDir()
	if err := kdc.Kinit(filepath.Join(dir, "file-cc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "collection"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := kdc.Kinit("DIR:" + filepath.Join(dir, "collection")); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		k     *negotiate.Kerberos
		creds anyauth.CredentialProvider
	}{
		{"keytab", &negotiate.Kerberos{Keytab: kdc.UserKeytab, Principal: kdc.Principal}, nil},
		{"keytab, first principal", &negotiate.Kerberos{Keytab: kdc.UserKeytab}, nil},
		{"password", &negotiate.Kerberos{Principal: kdc.User, Password: kdc.Password}, nil},
		{"transport credentials", &negotiate.Kerberos{}, anyauth.ForOrigin(srv.URL, kdc.User, kdc.Password)},
		{"transport credentials with realm", &negotiate.Kerberos{}, anyauth.ForOrigin(srv.URL, kdc.Principal, kdc.Password)},
		{"ccache FILE:", &negotiate.Kerberos{CCache: "FILE:" + filepath.Join(dir, "file-cc")}, nil},
		{"ccache path", &negotiate.Kerberos{CCache: filepath.Join(dir, "file-cc")}, nil},
		{"ccache DIR:", &negotiate.Kerberos{CCache: "DIR:" + filepath.Join(dir, "collection")}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.k.Config = kdc.Config
			c.k.Mutual = negotiate.MutualRequired
			tr := transport([]anyauth.Scheme{c.k}, c.creds)
			resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
			wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
		})
	}
	t.Run("KRB5CCNAME", func(t *testing.T) {
		t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(dir, "file-cc"))
		t.Setenv("KRB5_CONFIG", kdc.Config)
		tr := transport([]anyauth.Scheme{&negotiate.Kerberos{Mutual: negotiate.MutualRequired}}, nil)
		resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
		wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	})
}

// TestKinitRefresh: a ccache source reads the cache again when kinit
// replaced it, and steps aside when kdestroy removed it.
func TestKinitRefresh(t *testing.T) {
	kdc, srv := gssapi(t)
	cc := filepath.Join(t.TempDir(), "cc")
	k := &negotiate.Kerberos{Config: kdc.Config, CCache: cc}
	tr := transport([]anyauth.Scheme{k}, nil)
	resp, _, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("before kinit: %v %v, want the 401 untouched", resp, err)
	}
	if err := kdc.Kinit(cc); err != nil {
		t.Fatal(err)
	}
	resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	os.Remove(cc)
	resp, _, err = get(t, tr, whoami(srv, testserver.PathNegotiate))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("after kdestroy: %v %v, want the 401 untouched", resp, err)
	}
}

// TestNoTicketStepsAside: without any Kerberos credential the scheme
// steps aside: /negotiate/ comes back as the server sent it, and on
// /negotiate-basic/ and /multi/ Basic or Digest answers (curl --anyauth
// fails there).
func TestNoTicketStepsAside(t *testing.T) {
	kdc, srv := gssapi(t)
	noTicket := func() *negotiate.Kerberos {
		return &negotiate.Kerberos{Config: kdc.Config, CCache: filepath.Join(t.TempDir(), "none"), IgnoreTransportCredentials: true}
	}
	var logs bytes.Buffer
	tr := transport([]anyauth.Scheme{noTicket()}, nil)
	tr.Logger = slogTo(&logs)
	resp, _, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v, %v; want the 401", resp, err)
	}
	if !strings.Contains(logs.String(), "skipped") {
		t.Errorf("debug log does not say Negotiate was skipped:\n%s", logs.String())
	}

	creds := anyauth.ForOrigin(srv.URL, kdc.User, kdc.Password)
	tr = transport([]anyauth.Scheme{noTicket(), schemes.Basic{}}, creds)
	resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiateBasic))
	wantUser(t, resp, body, err, kdc.Principal, "Basic")

	tr = transport([]anyauth.Scheme{noTicket(), schemes.Digest{}, schemes.Basic{}}, creds)
	resp, body, err = get(t, tr, whoami(srv, testserver.PathMulti))
	wantUser(t, resp, body, err, kdc.User, "Digest")

	// With credentials, Negotiate wins on /multi/.
	tr = transport([]anyauth.Scheme{&negotiate.Kerberos{Config: kdc.Config}, schemes.Digest{}, schemes.Basic{}}, creds)
	resp, body, err = get(t, tr, whoami(srv, testserver.PathMulti))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")

	// The error itself, as Begin reports it.
	_, err = noTicket().Begin(context.Background(), nil, &anyauth.Attempt{Space: anyauth.ProtectionSpace{URLScheme: "http", Host: "localhost", Port: "80"}})
	if !errors.Is(err, anyauth.ErrNoCredentials) || !errors.Is(err, negotiate.ErrNoTicket) || !strings.Contains(err.Error(), "run kinit") {
		t.Errorf("Begin without a ticket: %v", err)
	}
	t.Logf("no ticket: %v", err)
}

// TestWrongPassword: a login the KDC refuses leaves Kerberos nothing to
// answer with. Alone, the server's 401 comes back untouched, and the
// request's anyauth.Diagnosis says why (ErrLogin, "wrong password", no
// password in it); with Basic offered too, Basic answers.
func TestWrongPassword(t *testing.T) {
	kdc, srv := gssapi(t)
	const bad = "wrong-Secret-123"
	k := &negotiate.Kerberos{Config: kdc.Config, Principal: kdc.User, Password: bad}
	tr := transport([]anyauth.Scheme{k}, nil)
	var d anyauth.Diagnosis
	resp, _, err := getCtx(t, tr, whoami(srv, testserver.PathNegotiate), anyauth.WithDiagnosis(context.Background(), &d))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("got %v %v, want the server's 401", resp, err)
	}
	why := d.Err()
	if !errors.Is(why, negotiate.ErrLogin) || !strings.Contains(why.Error(), "wrong password") {
		t.Fatalf("diagnosis %v, want ErrLogin saying wrong password", why)
	}
	if strings.Contains(why.Error(), bad) || strings.Contains(fmtV(k), bad) {
		t.Fatal("the password leaked into an error or the printed scheme")
	}
	t.Logf("wrong password: 401, diagnosis: %v", why)

	// The same wrong Kerberos password from a keytab-less config, and the
	// right password for Basic: Basic answers the same 401.
	tr = transport([]anyauth.Scheme{&negotiate.Kerberos{Config: kdc.Config, Principal: kdc.User, Password: bad}, schemes.Basic{}},
		anyauth.ForOrigin(srv.URL, testserver.User, testserver.Password))
	resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiateBasic))
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("X-Auth-Type") != "Basic" {
		t.Fatalf("with Basic offered: %v %v %q, want Basic to answer", resp, err, body)
	}
}

// TestKDCUnreachable: a krb5.conf pointing at a closed port.
func TestKDCUnreachable(t *testing.T) {
	_, srv := gssapi(t)
	conf := filepath.Join(t.TempDir(), "krb5.conf")
	os.WriteFile(conf, []byte("[libdefaults]\n default_realm = ANYAUTH.TEST\n udp_preference_limit = 1\n dns_canonicalize_hostname = false\n[realms]\n ANYAUTH.TEST = {\n  kdc = 127.0.0.1:1\n }\n"), 0o644)
	k := &negotiate.Kerberos{Config: conf, Principal: "alice", Password: "x"}
	var d anyauth.Diagnosis
	resp, _, err := getCtx(t, transport([]anyauth.Scheme{k}, nil), whoami(srv, testserver.PathNegotiate), anyauth.WithDiagnosis(context.Background(), &d))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !errors.Is(d.Err(), negotiate.ErrKDCUnreachable) {
		t.Fatalf("got %v %v, diagnosis %v; want the 401 and ErrKDCUnreachable", resp, err, d.Err())
	}
	t.Logf("KDC unreachable: %v", d.Err())

	k = &negotiate.Kerberos{Config: filepath.Join(t.TempDir(), "missing.conf"), Principal: "alice", Password: "x"}
	_, _, err = get(t, transport([]anyauth.Scheme{k}, nil), whoami(srv, testserver.PathNegotiate))
	if !errors.Is(err, negotiate.ErrNoConfig) {
		t.Fatalf("err = %v, want ErrNoConfig", err)
	}
	t.Logf("no config: %v", err)
}

// tamper flips a byte inside the Negotiate token of a 200's
// WWW-Authenticate, as an attacker in the middle might.
type tamper struct{ base http.RoundTripper }

func (m tamper) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := m.base.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	v := resp.Header.Get("WWW-Authenticate")
	raw, derr := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "Negotiate "))
	if derr == nil && len(raw) > 8 {
		raw[len(raw)-5] ^= 0x55 // inside the AP-REP's ciphertext
		resp.Header.Set("WWW-Authenticate", "Negotiate "+base64.StdEncoding.EncodeToString(raw))
	}
	return resp, nil
}

// TestMutualAuth: the real server's AP-REP is verified; a tampered one
// fails the request (required and if-present), permanently; without a
// token, required fails and if-present passes.
func TestMutualAuth(t *testing.T) {
	kdc, srv := gssapi(t)
	for _, mode := range []negotiate.MutualMode{negotiate.MutualRequired, negotiate.MutualIfPresent} {
		k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: mode}
		tr := &anyauth.Transport{Base: tamper{&http.Transport{}}, Schemes: []anyauth.Scheme{k}}
		_, _, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
		if !errors.Is(err, negotiate.ErrMutualAuth) || !errors.Is(err, anyauth.ErrMutualAuth) || !anyauth.IsPermanent(err) {
			t.Fatalf("%s, tampered: err = %v, want a permanent ErrMutualAuth", mode, err)
		}
		t.Logf("%s, tampered: %v", mode, err)
	}
	strip := rtFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err == nil && resp.StatusCode == 200 {
			resp.Header.Del("WWW-Authenticate")
		}
		return resp, err
	})
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}
	_, _, err := get(t, &anyauth.Transport{Base: strip, Schemes: []anyauth.Scheme{k}}, whoami(srv, testserver.PathNegotiate))
	if !errors.Is(err, negotiate.ErrMutualAuth) {
		t.Fatalf("required, no token: err = %v", err)
	}
	k = &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab}
	resp, body, err := get(t, &anyauth.Transport{Base: strip, Schemes: []anyauth.Scheme{k}}, whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	k = &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualOff}
	resp, body, err = get(t, &anyauth.Transport{Base: tamper{&http.Transport{}}, Schemes: []anyauth.Scheme{k}}, whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	if v := resp.Header.Get("WWW-Authenticate"); len(v) > len("Negotiate oRQwEqADCgEAoQsGCSqGSIb3EgECAg==") {
		t.Errorf("MutualOff: the server sent %q, want the token without AP-REP (mutual not asked for)", v)
	}
}

type rtFunc func(*http.Request) (*http.Response, error)

func (f rtFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestPostReplayed: a POST body is sent again after the 401 and reaches
// the CGI whole.
func TestPostReplayed(t *testing.T) {
	kdc, srv := gssapi(t)
	body := make([]byte, 100<<10)
	rand.Read(body)
	tr := transport([]anyauth.Scheme{&negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}}, nil)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+testserver.PathNegotiate+"echo", bytes.NewReader(body))
	resp, got, err := do(tr, req)
	if err != nil || resp.StatusCode != 200 || got != testserver.EchoReply(body) {
		t.Fatalf("POST: %v %v %q, want %q", resp, err, got, testserver.EchoReply(body))
	}
}

// TestHTTPS: https://localhost:PORT/negotiate/.
func TestHTTPS(t *testing.T) {
	kdc, srv := gssapiTLS(t)
	tr := &anyauth.Transport{
		Base:    &http.Transport{TLSClientConfig: srv.TLSConfig()},
		Schemes: []anyauth.Scheme{&negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}},
	}
	if !strings.HasPrefix(srv.URL, "https://localhost:") {
		t.Fatalf("URL %s", srv.URL)
	}
	resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
}

// TestTicketCache: 100 requests cost one TGS-REQ (and one login), each
// with its own authenticator (the server's replay cache accepts them
// all), and N+1 round trips: after the first success every request
// carries a fresh AP-REQ from the start. Both SPNs: the address one and
// the name one.
func TestTicketCache(t *testing.T) {
	kdc, srv := gssapi(t)
	for _, preemptive := range []bool{false, true} {
		// 127.0.0.1 and a path of its own: a fresh SPN and fresh counts.
		base := strings.Replace(srv.URL, "localhost", "127.0.0.1", 1)
		spn := testserver.KerberosSPNAddr
		path := testserver.PathNegotiate + "index.txt"
		if preemptive {
			base, spn, path = srv.URL, testserver.KerberosSPN, testserver.PathNegotiate+"whoami"
		}
		k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}
		tgs0, as0 := kdc.TGSRequestsFor(spn), kdc.ASRequests()
		total0, unauthorized0 := srv.Hits(path)
		tr := transport([]anyauth.Scheme{k}, nil)
		const n = 100
		for i := 0; i < n; i++ {
			resp, _, err := get(t, tr, base+path)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("request %d: %v %v", i, resp, err)
			}
		}
		tgs, as := kdc.TGSRequestsFor(spn)-tgs0, kdc.ASRequests()-as0
		total, unauthorized := srv.Hits(path)
		total, unauthorized = total-total0, unauthorized-unauthorized0
		t.Logf("preemptive=%t: %d requests: %d TGS-REQs for %s, %d AS-REQ log lines, %d round trips (%d answered 401)", preemptive, n, tgs, spn, as, total, unauthorized)
		if tgs > 1 {
			t.Errorf("%d TGS-REQs for %d requests, want 1", tgs, n)
		}
		if as > 2 { // MIT logs the first AS-REQ (pre-auth needed) and the second
			t.Errorf("%d AS-REQ log lines, want at most 2 (one login)", as)
		}
		if total > n+1 {
			t.Errorf("%d round trips for %d requests, want %d", total, n, n+1)
		}
	}
}

// hostRecorder is a Base that records the Host of every request it sends.
type hostRecorder struct {
	mu    sync.Mutex
	hosts []string
	base  http.RoundTripper
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.hosts = append(h.hosts, r.Host)
	h.mu.Unlock()
	return h.base.RoundTrip(r)
}

// TestHostNotRewritten: the request's Host header is left as the caller
// set it; the SPN comes from the URL's host (127.0.0.1 here).
func TestHostNotRewritten(t *testing.T) {
	kdc, srv := gssapi(t)
	u, _ := url.Parse(srv.URL)
	target := "http://127.0.0.1:" + u.Port() + testserver.PathNegotiate + testserver.WhoamiPath
	rec := &hostRecorder{base: &http.Transport{}}
	tr := &anyauth.Transport{Base: rec, Schemes: []anyauth.Scheme{&negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab}}}
	req, _ := http.NewRequest(http.MethodGet, target, nil)
	req.Host = "virtual.example:8080"
	tgs0 := kdc.TGSRequestsFor(testserver.KerberosSPNAddr)
	resp, body, err := do(tr, req)
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	if len(rec.hosts) != 2 || rec.hosts[0] != "virtual.example:8080" || rec.hosts[1] != "virtual.example:8080" {
		t.Errorf("hosts sent: %q", rec.hosts)
	}
	if req.Host != "virtual.example:8080" {
		t.Errorf("caller's request changed: Host %q", req.Host)
	}
	if kdc.TGSRequestsFor(testserver.KerberosSPNAddr) == tgs0 {
		t.Logf("no new TGS-REQ for %s (ticket cached by another test)", testserver.KerberosSPNAddr)
	}
}

// TestExplicitSPN: SPN overrides the host's.
func TestExplicitSPN(t *testing.T) {
	kdc, srv := gssapi(t)
	u, _ := url.Parse(srv.URL)
	target := "http://127.0.0.1:" + u.Port() + testserver.PathNegotiate + testserver.WhoamiPath
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, SPN: testserver.KerberosSPN, Mutual: negotiate.MutualRequired}
	resp, body, err := get(t, transport([]anyauth.Scheme{k}, nil), target)
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	k = &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, SPN: "HTTP/unknown.example"}
	var d anyauth.Diagnosis
	resp, _, err = getCtx(t, transport([]anyauth.Scheme{k}, nil), target, anyauth.WithDiagnosis(context.Background(), &d))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || !errors.Is(d.Err(), negotiate.ErrServiceTicket) {
		t.Fatalf("unknown SPN: %v %v, diagnosis %v; want the 401 and ErrServiceTicket", resp, err, d.Err())
	}
	t.Logf("unknown SPN: %v", d.Err())
}

// TestConcurrent: 32 goroutines x 5 requests through one Transport.
func TestConcurrent(t *testing.T) {
	kdc, srv := gssapi(t)
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}
	tr := transport([]anyauth.Scheme{k}, nil)
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
				if err != nil || resp.StatusCode != 200 || strings.TrimSpace(body) != kdc.Principal {
					if failed.Add(1) == 1 {
						t.Errorf("concurrent request: %v %v %q", resp, err, body)
					}
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 160 requests failed", n)
	}
}

// TestNoGoroutineLeak: requests leave no goroutine behind.
func TestNoGoroutineLeak(t *testing.T) {
	kdc, srv := gssapi(t)
	base := &http.Transport{}
	k := &negotiate.Kerberos{Config: kdc.Config, Principal: kdc.User, Password: kdc.Password}
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{k}}
	get(t, tr, whoami(srv, testserver.PathNegotiate))
	base.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		if resp, _, err := get(t, tr, whoami(srv, testserver.PathNegotiate)); err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: %v %v", i, resp, err)
		}
	}
	base.CloseIdleConnections()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		t.Fatalf("goroutines: %d before, %d after 50 requests", before, after)
	}
}

// TestCanonicalize: CanonicalizeCNAME looks the host up (localhost has no
// CNAME: the SPN stays HTTP/localhost).
func TestCanonicalize(t *testing.T) {
	kdc, srv := gssapi(t)
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Canonicalize: negotiate.CanonicalizeCNAME, Mutual: negotiate.MutualRequired}
	resp, body, err := get(t, transport([]anyauth.Scheme{k}, nil), whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
}

// TestContextHonoured: a KDC that accepts connections and never answers
// does not hold the request past its context.
func TestContextHonoured(t *testing.T) {
	_, srv := gssapi(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	conf := filepath.Join(t.TempDir(), "krb5.conf")
	os.WriteFile(conf, []byte("[libdefaults]\n default_realm = ANYAUTH.TEST\n udp_preference_limit = 1\n dns_canonicalize_hostname = false\n[realms]\n ANYAUTH.TEST = {\n  kdc = "+ln.Addr().String()+"\n }\n"), 0o644)
	k := &negotiate.Kerberos{Config: conf, Principal: "alice", Password: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, whoami(srv, testserver.PathNegotiate), nil)
	start := time.Now()
	_, _, err = do(transport([]anyauth.Scheme{k}, nil), req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err = %v after %v, want the deadline within 2s", err, time.Since(start))
	}
}

// TestDomainUserNames: the user name forms Windows users type, against
// the MIT KDC (realm ANYAUTH.TEST, so the NetBIOS-style domain is
// ANYAUTH): "ANYAUTH\alice", "alice@anyauth.test" and "alice" all log in
// as alice@ANYAUTH.TEST, at the origin and at Squid's Negotiate port.
// With a ticket from kinit for that user in the ccache, the ticket wins
// over the password (a wrong one here): no login is made.
func TestDomainUserNames(t *testing.T) {
	kdc, srv := gssapi(t)
	domain := strings.SplitN(kdc.Realm, ".", 2)[0]
	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
	for _, name := range []string{domain + `\` + kdc.User, strings.ToLower(domain) + `\` + kdc.User, kdc.User + "@" + strings.ToLower(kdc.Realm), kdc.User} {
		k := &negotiate.Kerberos{Config: kdc.Config}
		tr := transport([]anyauth.Scheme{k}, anyauth.ForOrigin(srv.URL, name, kdc.Password))
		resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
		wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	}

	// Through Squid's Negotiate port, with proxy credentials.
	_, sq := squid(t)
	proxy, _ := url.Parse(sq.NegotiateURL)
	k := &negotiate.Kerberos{Config: kdc.Config}
	tr := &anyauth.Transport{Base: &http.Transport{Proxy: http.ProxyURL(proxy)}, Schemes: []anyauth.Scheme{k},
		ProxyCredentials: anyauth.ForOrigin(sq.NegotiateURL, domain+`\`+kdc.User, kdc.Password)}
	target := addrURL(srv.URL + testserver.PathNegotiate + "index.txt")
	seen := len(sq.Hits())
	if resp, _, err := get(t, tr, target); err != nil || resp.StatusCode == http.StatusProxyAuthRequired {
		t.Fatalf("through Squid as %s\\%s: %v %v", domain, kdc.User, resp, err)
	}
	var users []string
	for _, h := range sq.Hits()[seen:] {
		if h.Port == testserver.SquidNegotiate && h.User != "" && h.User != "-" {
			users = append(users, h.User)
		}
	}
	if len(users) == 0 || users[0] != kdc.Principal {
		t.Fatalf("Squid logged %q, want %q", users, kdc.Principal)
	}

	// kinit's ticket for alice wins over a (wrong) password given as
	// ANYAUTH\alice: no AS-REQ, the request succeeds.
	ccache := filepath.Join(t.TempDir(), "krb5cc")
	if err := kdc.Kinit(ccache); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRB5CCNAME", "FILE:"+ccache)
	as0 := kdc.ASRequests()
	k = &negotiate.Kerberos{Config: kdc.Config}
	tr = transport([]anyauth.Scheme{k}, anyauth.ForOrigin(srv.URL, domain+`\`+kdc.User, "wrong-"+kdc.Password))
	resp, body, err := get(t, tr, whoami(srv, testserver.PathNegotiate))
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	if as := kdc.ASRequests() - as0; as != 0 {
		t.Errorf("%d AS-REQ log lines, want none: the ccache's ticket serves", as)
	}
}
