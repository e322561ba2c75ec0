package negotiate_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
)

// The real servers (an MIT KDC, Apache with mod_auth_gssapi over http and
// https, Squid with a Negotiate port) are started once per test binary,
// on first use, and shared; TestMain stops them. Under CI=true a server
// that cannot start fails the test; elsewhere it skips, saying why.

type world struct {
	once   sync.Once
	kdc    *testserver.KDC
	apache *testserver.Server
	err    error

	tlsOnce sync.Once
	tls     *testserver.Server
	tlsErr  error

	squidOnce sync.Once
	squid     *testserver.Squid
	squidErr  error
}

var w world

func TestMain(m *testing.M) {
	// No test may pick up the machine's own Kerberos settings.
	os.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(os.TempDir(), "anyauth-negotiate-test-no-such-ccache"))
	os.Unsetenv("KRB5_CONFIG")
	code := m.Run()
	w.squid.Close()
	w.tls.Close()
	w.apache.Close()
	w.kdc.Close()
	os.Exit(code)
}

func need(t testing.TB, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if testserver.InCI() || !errors.Is(err, testserver.ErrNotInstalled) {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s not installed (make test installs it): %v", what, err)
}

// gssapi returns the shared KDC and GSSAPI Apache (http://localhost:PORT).
func gssapi(t testing.TB) (*testserver.KDC, *testserver.Server) {
	t.Helper()
	w.once.Do(func() {
		w.kdc, w.err = testserver.StartKDC()
		if w.err == nil {
			w.apache, w.err = testserver.StartGSSAPIApache(w.kdc)
		}
	})
	need(t, "KDC and GSSAPI Apache", w.err)
	return w.kdc, w.apache
}

// gssapiTLS returns the shared https GSSAPI Apache (https://localhost:PORT).
func gssapiTLS(t testing.TB) (*testserver.KDC, *testserver.Server) {
	t.Helper()
	kdc, _ := gssapi(t)
	w.tlsOnce.Do(func() { w.tls, w.tlsErr = testserver.StartGSSAPIApacheTLS(kdc) })
	need(t, "https GSSAPI Apache", w.tlsErr)
	return kdc, w.tls
}

// squid returns the shared Squid with a Negotiate port whose service
// principal is HTTP/127.0.0.1.
func squid(t testing.TB) (*testserver.KDC, *testserver.Squid) {
	t.Helper()
	kdc, _ := gssapi(t)
	w.squidOnce.Do(func() {
		w.squid, w.squidErr = testserver.StartSquid(testserver.SquidOptions{
			Negotiate: &testserver.SquidNegotiateConfig{Keytab: kdc.Keytab, Principal: testserver.KerberosSPNAddr + "@" + kdc.Realm},
			Env:       kdc.Env(),
		})
	})
	need(t, "Squid", w.squidErr)
	return kdc, w.squid
}

// get sends GET url through rt and returns the response with its body.
func get(t testing.TB, rt http.RoundTripper, url string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(rt, req)
}

// getCtx is get with the request's context.
func getCtx(t testing.TB, rt http.RoundTripper, url string, ctx context.Context) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(rt, req)
}

func do(rt http.RoundTripper, req *http.Request) (*http.Response, string, error) {
	resp, err := (&http.Client{Transport: rt, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b), err
}

// transport returns a Transport with the given schemes and credentials on
// a fresh Base.
func transport(schemes []anyauth.Scheme, creds anyauth.CredentialProvider) *anyauth.Transport {
	return &anyauth.Transport{Base: &http.Transport{Proxy: nil}, Schemes: schemes, Credentials: creds}
}
