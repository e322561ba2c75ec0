package anyauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
)

// A corporate proxy checked by Active Directory: Squid whose NTLM port asks
// the Samba AD DC through ntlm_auth and winbind, and whose Negotiate port
// goes through negotiate_wrapper_auth (Kerberos tickets from the DC's KDC
// to negotiate_kerberos_auth, raw NTLM to ntlm_auth). Squid's access log
// names the user of each request: CORP\alice for NTLM, alice@CORP.TEST for
// Kerberos.

var adSquidOnce struct {
	sync.Once
	sq  *testserver.Squid
	err error
}

// adSquid starts (once per test binary) the AD DC, its Apache and the AD
// Squid. Squid is stopped before the DC, by the closeAD TestMain calls.
func adSquid(t *testing.T) (*testserver.SambaAD, *testserver.Squid) {
	t.Helper()
	ad, _ := activeDirectory(t)
	adSquidOnce.Do(func() {
		adSquidOnce.sq, adSquidOnce.err = testserver.StartADSquid(ad)
		if adSquidOnce.err == nil {
			closeDC := closeAD
			closeAD = func() {
				adSquidOnce.sq.Close()
				closeDC()
			}
		}
	})
	if err := adSquidOnce.err; err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("AD Squid: %v", err)
		}
		t.Skipf("AD Squid not available (run make test as root, which installs it): %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("AD Squid access log:\n%s\nerror log:\n%s", adSquidOnce.sq.AccessLog(), adSquidOnce.sq.ErrorLog())
		}
	})
	return ad, adSquidOnce.sq
}

// adOrigins are a plain-http and an https origin on 127.0.0.1 (the only
// host Squid forwards to) that answer 200 with the path.
func adOrigins(t *testing.T) (plain, tls *httptest.Server) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "origin %s\n", r.URL.Path)
	})
	plain, tls = httptest.NewServer(h), httptest.NewTLSServer(h)
	t.Cleanup(plain.Close)
	t.Cleanup(tls.Close)
	return plain, tls
}

// adProxyTransport is a Transport with schemes whose Base goes through
// proxy, trusting tlsOrigin's certificate if not nil.
func adProxyTransport(t *testing.T, proxy *url.URL, tlsOrigin *httptest.Server, creds anyauth.CredentialProvider, schemes ...anyauth.Scheme) (*anyauth.Transport, *connCounter) {
	cc := &connCounter{}
	base := &http.Transport{Proxy: http.ProxyURL(proxy), DialContext: cc.dial}
	if tlsOrigin != nil {
		base.TLSClientConfig = tlsOrigin.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	}
	tr := &anyauth.Transport{Base: base, Schemes: schemes, ProxyCredentials: creds, Logger: testLogger(t)}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(base.CloseIdleConnections)
	return tr, cc
}

// adProxyUser is a CredentialFunc for the proxy only: user with its
// password from ad.
func adProxyUser(ad *testserver.SambaAD, user string) anyauth.CredentialFunc {
	return func(_ context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		if !space.Proxy {
			return nil, anyauth.ErrNoCredentials
		}
		return &anyauth.UserPassword{Username: testserver.ADDomain + `\` + user, Password: ad.Users[user]}, nil
	}
}

// adSquidLog returns Squid's entries for targets starting with prefix (any
// port), and logs them as access-log lines.
func adSquidLog(t *testing.T, sq *testserver.Squid, prefix string) []testserver.ProxyHit {
	t.Helper()
	var hits []testserver.ProxyHit
	var b strings.Builder
	for _, h := range sq.Hits() {
		if strings.HasPrefix(h.Target, prefix) {
			hits = append(hits, h)
			fmt.Fprintf(&b, "\n\t%s %s/%d %s %s %s", h.Port, h.Result, h.Status, h.Method, h.Target, h.User)
		}
	}
	t.Logf("Squid's log for %s*:%s", prefix, b.String())
	return hits
}

// adCount counts hits and those answered 407, and returns the users of the
// others.
func adCount(hits []testserver.ProxyHit) (total, refused int, users []string) {
	for _, h := range hits {
		total++
		if h.Status == http.StatusProxyAuthRequired {
			refused++
		} else {
			users = append(users, h.User)
		}
	}
	return total, refused, users
}

func adAllAre(users []string, want string) bool {
	for _, u := range users {
		if u != want {
			return false
		}
	}
	return len(users) > 0
}

// adGet GETs url through tr and returns the status and body.
func adGet(t *testing.T, tr http.RoundTripper, cc *connCounter, url string) (int, string) {
	t.Helper()
	ctx := context.Background()
	if cc != nil {
		ctx = cc.ctx()
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// NTLM checked by the DC, for a plain-http target (owned connection to the
// proxy) and an https target (inside the CONNECT): Squid logs CORP\alice.
func TestADSquidNTLM(t *testing.T) {
	ad, sq := adSquid(t)
	plain, tlsOrigin := adOrigins(t)
	proxy := sq.URL(testserver.SquidNTLM, nil)

	t.Run("http target", func(t *testing.T) {
		tr, cc := adProxyTransport(t, proxy, nil, adProxyUser(ad, testserver.ADUser), ntlm.New(ntlm.Options{}))
		const n = 4
		for i := range n {
			if code, body := adGet(t, tr, cc, fmt.Sprintf("%s/ntlm-http/%d", plain.URL, i)); code != 200 || !strings.HasPrefix(body, "origin /") {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		total, refused, users := adCount(adSquidLog(t, sq, plain.URL+"/ntlm-http/"))
		t.Logf("%d GETs: %d round trips on %d connections; Squid logged %d GETs, %d of them 407, users %q",
			n, cc.trips.Load(), cc.dials.Load(), total, refused, users)
		if len(users) != n || !adAllAre(users, `CORP\alice`) {
			t.Errorf("Squid's users %q, want %d times CORP\\alice", users, n)
		}
		// Request 1: bare (407), negotiate (407), authenticate (200), on
		// a connection of its own. Request 2 rides it bare (407: Squid
		// wants a header on every request) and its negotiate message is
		// let through (200); requests 3 and 4 send it at once (200).
		if total != n+3 || refused != 3 || cc.trips.Load() != n+3 || cc.dials.Load() != 2 {
			t.Errorf("Squid logged %d GETs (%d refused) for %d round trips on %d connections, want %d (3) on 2", total, refused, cc.trips.Load(), cc.dials.Load(), n+3)
		}
	})

	t.Run("https target through CONNECT", func(t *testing.T) {
		tr, cc := adProxyTransport(t, proxy, tlsOrigin, adProxyUser(ad, testserver.ADUser), ntlm.New(ntlm.Options{}))
		before := len(sq.Hits())
		const n = 3
		for i := range n {
			if code, body := adGet(t, tr, cc, fmt.Sprintf("%s/ntlm-connect/%d", tlsOrigin.URL, i)); code != 200 || !strings.HasPrefix(body, "origin /") {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		tr.CloseIdleConnections()
		connects := adConnects(sq.Hits()[before:], testserver.SquidNTLM)
		total, refused, users := adCount(connects)
		t.Logf("%d https GETs: %d connections dialed; Squid logged %d CONNECTs, %d of them 407, users %q: %+v", n, cc.dials.Load(), total, refused, users, connects)
		// One tunnel, kept alive: bare CONNECT (407), negotiate (407),
		// authenticate (200).
		if total != 3 || refused != 2 || !adAllAre(users, `CORP\alice`) {
			t.Errorf("Squid logged %d CONNECTs (%d refused, users %q), want 3 (2, CORP\\alice)", total, refused, users)
		}
	})

	t.Run("Kerberos origin behind the NTLM proxy", func(t *testing.T) {
		// The AD Apache's /krb/ by address (SPN HTTP/127.0.0.1, RC4): the
		// proxy is answered with NTLM, the origin with Kerberos, both
		// from alice's password.
		_, apache := activeDirectory(t)
		t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
		origin := strings.Replace(apache.URL, "://localhost:", "://127.0.0.1:", 1)
		tr, cc := adProxyTransport(t, proxy, nil, adProxyUser(ad, testserver.ADUser),
			ntlm.New(ntlm.Options{}), &negotiate.Kerberos{Config: ad.Config})
		tr.Credentials = anyauth.ForOrigin(origin, `CORP\alice`, testserver.ADPassword)
		run := time.Now().UnixNano() // tells this run's requests in Squid's log
		for i := range 3 {
			code, body := adGet(t, tr, cc, origin+testserver.PathADKerberos+testserver.WhoamiPath+fmt.Sprintf("?run=%d&i=%d", run, i))
			if first, _, _ := strings.Cut(body, "\n"); code != 200 || first != testserver.ADPrincipal {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		total, refused, users := adCount(adSquidLog(t, sq, origin+testserver.PathADKerberos+testserver.WhoamiPath+fmt.Sprintf("?run=%d&", run)))
		t.Logf("3 GETs: %d round trips on %d connections; Squid logged %d, %d of them 407, users %q", cc.trips.Load(), cc.dials.Load(), total, refused, users)
		if !adAllAre(users, `CORP\alice`) {
			t.Errorf("Squid's users %q, want CORP\\alice", users)
		}
	})
}

// A wrong password: the proxy's 407 comes back after one handshake, no
// loop (plain http), and CONNECT fails with a permanent
// *ProxyConnectError after one handshake.
func TestADSquidWrongPassword(t *testing.T) {
	_, sq := adSquid(t)
	plain, tlsOrigin := adOrigins(t)
	for _, c := range []struct {
		port   string
		scheme anyauth.Scheme
	}{
		{testserver.SquidNTLM, ntlm.New(ntlm.Options{})},
		{testserver.SquidNegotiate, ntlm.NewNegotiate(ntlm.Options{})},
	} {
		t.Run(c.port, func(t *testing.T) {
			proxy := sq.URL(c.port, nil)
			creds := anyauth.ForOrigin(proxy.String(), `CORP\alice`, "wrong-"+testserver.ADPassword)
			tr, cc := adProxyTransport(t, proxy, tlsOrigin, creds, c.scheme)
			start := time.Now()
			target := plain.URL + "/wrong/" + c.port
			if code, _ := adGet(t, tr, cc, target); code != http.StatusProxyAuthRequired {
				t.Fatalf("http target: %d, want 407", code)
			}
			total, refused, _ := adCount(adSquidLog(t, sq, target))
			t.Logf("http target: 407 after %d round trips, %v; Squid logged %d GETs, %d of them 407", cc.trips.Load(), time.Since(start), total, refused)
			if total != 3 || refused != 3 || cc.trips.Load() != 3 {
				t.Errorf("Squid logged %d GETs (%d refused) in %d round trips, want 3 (bare, negotiate, authenticate)", total, refused, cc.trips.Load())
			}

			before := len(sq.Hits())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", tlsOrigin.URL+"/wrong/"+c.port, nil)
			_, err := tr.RoundTrip(req)
			var pe *anyauth.ProxyConnectError
			if !errors.As(err, &pe) || pe.StatusCode != 407 || !anyauth.IsPermanent(err) || pe.Reason != anyauth.ProxyRefused {
				t.Fatalf("https target: %v, want a permanent *ProxyConnectError 407 (%s)", err, anyauth.ProxyRefused)
			}
			if strings.Contains(err.Error(), testserver.ADPassword) {
				t.Fatal("the password is in the error")
			}
			tr.CloseIdleConnections()
			connects := adConnects(sq.Hits()[before:], c.port)
			total, refused, _ = adCount(connects)
			t.Logf("https target: %v; Squid logged %d CONNECTs, %d of them 407", err, total, refused)
			if total != 3 || refused != 3 {
				t.Errorf("Squid logged %d CONNECTs (%d refused), want 3 (3)", total, refused)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

type adUserKey struct{}

// Twenty requests, four at a time, alice and bob alternating through one
// Transport whose CredentialFunc reads the user from the request's
// context: Squid's log shows each request as its own user.
func TestADSquidTwoUsers(t *testing.T) {
	ad, sq := adSquid(t)
	plain, _ := adOrigins(t)
	creds := anyauth.CredentialFunc(func(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		user, _ := ctx.Value(adUserKey{}).(string)
		if !space.Proxy || user == "" {
			return nil, anyauth.ErrNoCredentials
		}
		return &anyauth.UserPassword{Username: testserver.ADDomain + `\` + user, Password: ad.Users[user]}, nil
	})
	tr, cc := adProxyTransport(t, sq.URL(testserver.SquidNTLM, nil), nil, creds, ntlm.New(ntlm.Options{}))
	const n, workers = 20, 4
	users := func(i int) string {
		if i%2 == 0 {
			return testserver.ADUser
		}
		return testserver.ADSecondUser
	}
	jobs := make(chan int)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				ctx, cancel := context.WithTimeout(context.WithValue(cc.ctx(), adUserKey{}, users(i)), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/two/%02d/%s", plain.URL, i, users(i)), nil)
				resp, err := tr.RoundTrip(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("request %d as %s: %s", i, users(i), resp.Status)
					}
				}
				cancel()
				errs <- err
			}
		}()
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	took := time.Since(start)
	hits := adSquidLog(t, sq, plain.URL+"/two/")
	total, refused, _ := adCount(hits)
	t.Logf("%d requests, %d at a time, alice and bob alternating: %v, %d round trips on %d connections; Squid logged %d GETs, %d of them 407",
		n, workers, took, cc.trips.Load(), cc.dials.Load(), total, refused)
	if trips := cc.trips.Load(); trips > 3*n || int64(total) != trips {
		t.Errorf("%d round trips (Squid logged %d) for %d requests, want at most 3 each", trips, total, n)
	}
	for i := range n {
		target := fmt.Sprintf("%s/two/%02d/%s", plain.URL, i, users(i))
		want := testserver.ADDomain + `\` + users(i)
		served := 0
		for _, h := range hits {
			if h.Target != target {
				continue
			}
			// A 407 on a connection authenticated before names the
			// connection's user: never the other one.
			if h.Status == http.StatusProxyAuthRequired {
				if h.User != "" && h.User != want {
					t.Errorf("request %d (%s): a 407 on a connection of %q", i, want, h.User)
				}
				continue
			}
			served++
			if h.Status != 200 || h.User != want {
				t.Errorf("request %d: Squid logged %d as %q, want 200 as %q", i, h.Status, h.User, want)
			}
		}
		if served != 1 {
			t.Errorf("request %d: Squid served it %d times", i, served)
		}
	}
}

// Negotiate through negotiate_wrapper_auth: Kerberos from kinit's ticket
// for alice (no password anywhere), and raw NTLM inside Negotiate from a
// password, without a ticket; for a plain-http and an https target.
func TestADSquidNegotiate(t *testing.T) {
	ad, sq := adSquid(t)
	plain, tlsOrigin := adOrigins(t)
	proxy := sq.URL(testserver.SquidNegotiate, nil)

	t.Run("Kerberos from kinit", func(t *testing.T) {
		ccache := filepath.Join(t.TempDir(), "krb5cc")
		if err := ad.Kinit(ccache, testserver.ADUser, testserver.ADPassword); err != nil {
			t.Fatal(err)
		}
		k := &negotiate.Kerberos{Config: ad.Config, CCache: "FILE:" + ccache, Mutual: negotiate.MutualRequired}
		tr, cc := adProxyTransport(t, proxy, tlsOrigin, nil, k)
		const n = 5
		for i := range n {
			if code, body := adGet(t, tr, cc, fmt.Sprintf("%s/krb/%d", plain.URL, i)); code != 200 || !strings.HasPrefix(body, "origin /") {
				t.Fatalf("request %d: %d %q", i, code, body)
			}
		}
		total, refused, users := adCount(adSquidLog(t, sq, plain.URL+"/krb/"))
		t.Logf("%d GETs from kinit's ticket: %d round trips on %d connections; Squid logged %d, %d of them 407, users %q",
			n, cc.trips.Load(), cc.dials.Load(), total, refused, users)
		if len(users) != n || !adAllAre(users, testserver.ADPrincipal) || refused > 1 {
			t.Errorf("Squid logged %d (%d refused), users %q; want %d as %s, at most one 407", total, refused, users, n, testserver.ADPrincipal)
		}

		before := len(sq.Hits())
		for i := range 2 {
			if code, body := adGet(t, tr, cc, fmt.Sprintf("%s/krb-connect/%d", tlsOrigin.URL, i)); code != 200 || !strings.HasPrefix(body, "origin /") {
				t.Fatalf("https request %d: %d %q", i, code, body)
			}
		}
		tr.CloseIdleConnections()
		connects := adConnects(sq.Hits()[before:], testserver.SquidNegotiate)
		total, refused, users = adCount(connects)
		t.Logf("2 https GETs: Squid logged %d CONNECTs, %d of them 407, users %q", total, refused, users)
		if !adAllAre(users, testserver.ADPrincipal) || refused > 1 {
			t.Errorf("CONNECT users %q (%d refused), want %s, at most one 407", users, refused, testserver.ADPrincipal)
		}
	})

	t.Run("NTLM inside Negotiate", func(t *testing.T) {
		t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
		tr, cc := adProxyTransport(t, proxy, tlsOrigin, adProxyUser(ad, testserver.ADSecondUser), ntlm.NewNegotiate(ntlm.Options{}))

		// https: one tunnel, handshake on the CONNECT, kept alive.
		before := len(sq.Hits())
		for i := range 3 {
			if code, body := adGet(t, tr, cc, fmt.Sprintf("%s/neg-ntlm-connect/%d", tlsOrigin.URL, i)); code != 200 || !strings.HasPrefix(body, "origin /") {
				t.Fatalf("https request %d: %d %q", i, code, body)
			}
		}
		tr.CloseIdleConnections()
		connects := adConnects(sq.Hits()[before:], testserver.SquidNegotiate)
		total, refused, users := adCount(connects)
		t.Logf("3 https GETs, raw NTLM in Negotiate as CORP\\bob: %d connections dialed; Squid logged %d CONNECTs, %d of them 407, users %q", cc.dials.Load(), total, refused, users)
		if total != 3 || refused != 2 || !adAllAre(users, `CORP\bob`) {
			t.Errorf("Squid logged %d CONNECTs (%d refused, users %q), want 3 (2, CORP\\bob)", total, refused, users)
		}

		// Plain http: the handshake on a connection of the Transport's;
		// the next request on it meets Squid's 407 "Negotiate =" (see
		// testserver.StartADSquid), which the Transport takes for a bare
		// Negotiate challenge (squidNegotiatePlaceholder) and answers.
		trips0, dials0 := cc.trips.Load(), cc.dials.Load()
		const n = 4
		for i := range n {
			url := fmt.Sprintf("%s/neg-ntlm/%d", plain.URL, i)
			ctx, cancel := context.WithTimeout(cc.ctx(), 30*time.Second)
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				cancel()
				t.Fatalf("request %d: %v", i, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			cancel()
			if resp.StatusCode != 200 {
				t.Fatalf("request %d: %s, Proxy-Authenticate %q", i, resp.Status, resp.Header.Values("Proxy-Authenticate"))
			}
		}
		total, refused, users = adCount(adSquidLog(t, sq, plain.URL+"/neg-ntlm/"))
		t.Logf("%d GETs, raw NTLM in Negotiate as CORP\\bob: %d round trips on %d connections; Squid logged %d, %d of them 407, users %q",
			n, cc.trips.Load()-trips0, cc.dials.Load()-dials0, total, refused, users)
		if len(users) != n || !adAllAre(users, `CORP\bob`) {
			t.Errorf("Squid's users %q, want %d times CORP\\bob", users, n)
		}
	})
}

// adConnects returns the CONNECTs among hits that came to Squid's port.
func adConnects(hits []testserver.ProxyHit, port string) []testserver.ProxyHit {
	var connects []testserver.ProxyHit
	for _, h := range hits {
		if h.Method == http.MethodConnect && h.Port == port {
			connects = append(connects, h)
		}
	}
	return connects
}
