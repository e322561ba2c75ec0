package anyauth_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/all"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
)

// Windows-integrated authentication against a real Active Directory: a
// Samba 4.17 AD DC (realm CORP.TEST, NetBIOS domain CORP) whose KDC issues
// the tickets and whose winbind checks NTLM, and an Apache with
// mod_auth_gssapi on the DC's keytab (/krb/ Kerberos, /ntlm/ NTLM through
// gss-ntlmssp and winbind, /both/).

var adOnce struct {
	sync.Once
	ad     *testserver.SambaAD
	apache *testserver.Server
	err    error
}

// activeDirectory starts (once per test binary) the AD DC and its Apache.
func activeDirectory(t *testing.T) (*testserver.SambaAD, *testserver.Server) {
	t.Helper()
	adOnce.Do(func() {
		adOnce.ad, adOnce.err = testserver.StartSambaAD()
		if adOnce.err == nil {
			adOnce.apache, adOnce.err = testserver.StartADApache(adOnce.ad)
		}
		if adOnce.err == nil {
			serversMu.Lock()
			servers["ad-apache"] = adOnce.apache
			serversMu.Unlock()
			closeAD = func() { adOnce.ad.Close() }
		}
	})
	if adOnce.err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(adOnce.err, testserver.ErrNotInstalled) {
			t.Fatalf("Samba AD DC: %v", adOnce.err)
		}
		t.Skipf("Samba AD DC not available (run make test as root, which installs it): %v", adOnce.err)
	}
	return adOnce.ad, adOnce.apache
}

// closeAD stops the AD DC, if a test started it (TestMain calls it).
var closeAD = func() {}

// adWhoami GETs path's whoami through tr and returns status, REMOTE_USER
// and the auth type the server reports.
func adWhoami(t *testing.T, tr http.RoundTripper, url string, body []byte) (int, string, string) {
	t.Helper()
	method := http.MethodGet
	var r *bytes.Reader
	if body != nil {
		method, r = http.MethodPost, bytes.NewReader(body)
	}
	var req *http.Request
	if r != nil {
		req, _ = http.NewRequest(method, url, r)
	} else {
		req, _ = http.NewRequest(method, url, nil)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, strings.TrimSpace(b.String()), resp.Header.Get("X-Auth-Type")
}

// Kerberos against AD: from kinit's ticket, and from a password with no
// ticket (alice, and bob with a non-ASCII password), the user written
// CORP\alice, alice@CORP.TEST, alice@corp.test and alice. The server sees
// alice@CORP.TEST each time. 20 requests cost 21 round trips.
func TestADKerberos(t *testing.T) {
	ad, srv := activeDirectory(t)
	t.Setenv("KRB5_CONFIG", ad.Config)
	url := srv.URL + testserver.PathADKerberos + testserver.WhoamiPath

	t.Run("ccache", func(t *testing.T) {
		ccache := filepath.Join(t.TempDir(), "krb5cc")
		if err := ad.Kinit(ccache, testserver.ADUser, testserver.ADPassword); err != nil {
			t.Fatal(err)
		}
		tr := &anyauth.Transport{Schemes: []anyauth.Scheme{&negotiate.Kerberos{Config: ad.Config, CCache: "FILE:" + ccache, Mutual: negotiate.MutualRequired}}}
		var trips int
		tr.Base = countTrips(&trips)
		for i := range 20 {
			if code, user, _ := adWhoami(t, tr, url, nil); code != 200 || user != testserver.ADPrincipal {
				t.Fatalf("request %d: %d %q", i, code, user)
			}
		}
		if trips > 21 {
			t.Errorf("%d round trips for 20 requests, want at most 21", trips)
		}
		t.Logf("20 requests from kinit's ticket: %d round trips", trips)
	})

	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
	for _, c := range []struct{ name, password, want string }{
		{testserver.ADDomain + `\` + testserver.ADUser, testserver.ADPassword, testserver.ADPrincipal},
		{testserver.ADPrincipal, testserver.ADPassword, testserver.ADPrincipal},
		{testserver.ADUser + "@corp.test", testserver.ADPassword, testserver.ADPrincipal},
		{testserver.ADUser, testserver.ADPassword, testserver.ADPrincipal},
		{testserver.ADDomain + `\` + testserver.ADSecondUser, testserver.ADSecondPassword, testserver.ADSecondPrincipal},
	} {
		t.Run("password as "+c.name, func(t *testing.T) {
			tr := &anyauth.Transport{
				Schemes:     []anyauth.Scheme{&negotiate.Kerberos{Config: ad.Config, Mutual: negotiate.MutualRequired}},
				Credentials: anyauth.ForOrigin(srv.URL, c.name, c.password),
			}
			if code, user, typ := adWhoami(t, tr, url, nil); code != 200 || user != c.want || typ != "Negotiate" {
				t.Fatalf("%d %q %q, want 200 as %s", code, user, typ, c.want)
			}
		})
	}

	t.Run("RC4 ticket and a 300 KB POST", func(t *testing.T) {
		// HTTP/127.0.0.1's account has RC4 keys only: AD's default.
		tr := &anyauth.Transport{
			Schemes:     []anyauth.Scheme{&negotiate.Kerberos{Config: ad.Config}},
			Credentials: anyauth.ForOrigin(strings.Replace(srv.URL, "localhost", "127.0.0.1", 1), `CORP\alice`, testserver.ADPassword),
		}
		addr := strings.Replace(url, "localhost", "127.0.0.1", 1)
		if code, user, _ := adWhoami(t, tr, addr, nil); code != 200 || user != testserver.ADPrincipal {
			t.Fatalf("RC4 SPN: %d %q", code, user)
		}
		body := bytes.Repeat([]byte("k"), 300<<10)
		code, reply, _ := adWhoami(t, tr, strings.Replace(srv.URL, "localhost", "127.0.0.1", 1)+testserver.PathADKerberos+testserver.WhoamiPath, body)
		if first, rest, _ := strings.Cut(reply, "\n"); code != 200 || first != testserver.ADPrincipal || !strings.Contains(rest, "body 307200 ") {
			t.Fatalf("300 KB POST: %d %q, want 200 as alice with the whole body", code, reply)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		tr := &anyauth.Transport{
			Schemes:     []anyauth.Scheme{&negotiate.Kerberos{Config: ad.Config}},
			Credentials: anyauth.ForOrigin(srv.URL, `CORP\alice`, "wrong-"+testserver.ADPassword),
		}
		var d anyauth.Diagnosis
		req, _ := http.NewRequestWithContext(anyauth.WithDiagnosis(context.Background(), &d), "GET", url, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != http.StatusUnauthorized || !errors.Is(d.Err(), negotiate.ErrLogin) {
			t.Fatalf("%v %v (diagnosis %v), want the server's 401 and ErrLogin", resp, err, d.Err())
		}
		resp.Body.Close()
	})
}

// NTLM against AD: gss-ntlmssp asks winbind, which asks the DC; alice and
// bob (non-ASCII password), and a wrong password gets the 401 back after
// one handshake, no loop.
func TestADNTLM(t *testing.T) {
	_, srv := activeDirectory(t)
	url := srv.URL + testserver.PathADNTLM + testserver.WhoamiPath
	for _, c := range []struct{ user, password, want string }{
		{`CORP\alice`, testserver.ADPassword, `CORP\alice`},
		{`CORP\bob`, testserver.ADSecondPassword, `CORP\bob`},
	} {
		tr := &anyauth.Transport{Base: &http.Transport{}, Schemes: []anyauth.Scheme{ntlm.New(ntlm.Options{}), ntlm.NewNegotiate(ntlm.Options{})}, Credentials: anyauth.ForOrigin(srv.URL, c.user, c.password)}
		for i := range 3 {
			if code, user, _ := adWhoami(t, tr, url, nil); code != 200 || !strings.EqualFold(user, c.want) {
				t.Fatalf("%s request %d: %d %q", c.user, i, code, user)
			}
		}
	}
	tr2 := &anyauth.Transport{Base: &http.Transport{}, Schemes: []anyauth.Scheme{ntlm.New(ntlm.Options{})}, Credentials: anyauth.ForOrigin(srv.URL, `CORP\alice`, "wrong")}
	if code, _, _ := adWhoami(t, tr2, url, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d, want 401", code)
	}
}

// The short path for corporate networks, against AD: all.NewTransport
// with CORP\alice answers Kerberos on /krb/ and /both/; on a host with no
// SPN (Kerberos cannot get a service ticket, and steps aside), NTLM inside
// Negotiate answers /both/. (On /ntlm/, which offers Negotiate but accepts
// only NTLMSSP inside it, the Kerberos answer is refused and NTLM, being
// weaker, is not tried: no downgrade.)
func TestADAllSchemes(t *testing.T) {
	ad, srv := activeDirectory(t)
	t.Setenv("KRB5_CONFIG", ad.Config)
	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
	tr := all.NewTransport(srv.URL, `CORP\alice`, testserver.ADPassword, all.WithBase(&http.Transport{}))
	if code, user, typ := adWhoami(t, tr, srv.URL+testserver.PathADKerberos+testserver.WhoamiPath, nil); code != 200 || user != testserver.ADPrincipal || typ != "Negotiate" {
		t.Fatalf("/krb/: %d %q %q", code, user, typ)
	}
	if code, user, typ := adWhoami(t, tr, srv.URL+testserver.PathADBoth+testserver.WhoamiPath, nil); code != 200 || user != testserver.ADPrincipal || typ != "Negotiate" {
		t.Fatalf("/both/: %d %q %q", code, user, typ)
	}
	// nospn.corp.test (dialled at the server's address) has no SPN:
	// Kerberos steps aside, NTLM inside Negotiate answers.
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	other := "http://nospn.corp.test:" + port
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
	}}
	tr = all.NewTransport(other, `CORP\alice`, testserver.ADPassword, all.WithBase(base))
	var d anyauth.Diagnosis
	req, _ := http.NewRequestWithContext(anyauth.WithDiagnosis(context.Background(), &d), "GET", other+testserver.PathADBoth+testserver.WhoamiPath, nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.EqualFold(strings.TrimSpace(b.String()), `CORP\alice`) || !errors.Is(d.Err(), negotiate.ErrServiceTicket) {
		t.Fatalf("no SPN: %d %q (diagnosis %v), want NTLM to answer after Kerberos found no service ticket", resp.StatusCode, b.String(), d.Err())
	}
	t.Logf("no SPN: Kerberos stepped aside (%v); NTLM answered", d.Err())
}

// countTrips is a Base that counts the round trips it makes.
func countTrips(n *int) http.RoundTripper {
	base := &http.Transport{}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		*n++
		return base.RoundTrip(r)
	})
}

var adTLSOnce struct {
	sync.Once
	srv *testserver.Server
	err error
}

// Over https: Kerberos (CORP\alice's password) on /krb/ and NTLM through
// winbind on /ntlm/, against the AD DC's Apache with mod_ssl.
func TestADOverHTTPS(t *testing.T) {
	ad, _ := activeDirectory(t)
	adTLSOnce.Do(func() {
		adTLSOnce.srv, adTLSOnce.err = testserver.StartADApacheTLS(ad)
		if adTLSOnce.err == nil {
			serversMu.Lock()
			servers["ad-apache-tls"] = adTLSOnce.srv
			serversMu.Unlock()
		}
	})
	if adTLSOnce.err != nil {
		t.Fatalf("AD Apache over https: %v", adTLSOnce.err)
	}
	srv := adTLSOnce.srv
	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
	if !strings.HasPrefix(srv.URL, "https://localhost:") {
		t.Fatalf("URL %s", srv.URL)
	}
	base := &http.Transport{TLSClientConfig: srv.TLSConfig()}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{
		Base:        base,
		Schemes:     []anyauth.Scheme{&negotiate.Kerberos{Config: ad.Config, Mutual: negotiate.MutualRequired}},
		Credentials: anyauth.ForOrigin(srv.URL, `CORP\alice`, testserver.ADPassword),
	}
	for i := range 3 {
		if code, user, typ := adWhoami(t, tr, srv.URL+testserver.PathADKerberos+testserver.WhoamiPath, nil); code != 200 || user != testserver.ADPrincipal || typ != "Negotiate" {
			t.Fatalf("Kerberos over https, request %d: %d %q %q", i, code, user, typ)
		}
	}
	ntlmTr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{ntlm.New(ntlm.Options{})}, Credentials: anyauth.ForOrigin(srv.URL, `CORP\bob`, testserver.ADSecondPassword)}
	for i := range 3 {
		if code, user, _ := adWhoami(t, ntlmTr, srv.URL+testserver.PathADNTLM+testserver.WhoamiPath, nil); code != 200 || !strings.EqualFold(user, `CORP\bob`) {
			t.Fatalf("NTLM over https, request %d: %d %q", i, code, user)
		}
	}
}
