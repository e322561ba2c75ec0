package anyauth_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// An https origin's credentials are not sent to http on the same host.
func TestHTTPSCredentialsNotSentToHTTP(t *testing.T) {
	plain := newBasicServer(t)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.WriteHeader(401)
			return
		}
		http.Redirect(w, r, plain.URL+"/private/x", http.StatusFound)
	}))
	defer secure.Close()
	tr := &anyauth.Transport{Base: secure.Client().Transport, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(secure.URL, testUser, testPass)}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(secure.URL + "/private/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want the http server's 401", resp.StatusCode)
	}
	plain.assertNoCredentials(t)
}

// a name under .localhost is not loopback for the cleartext
// guard: Go resolves it through DNS.
func TestDotLocalhostIsNotLoopback(t *testing.T) {
	srv := newBasicServer(t)
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	defer base.CloseIdleConnections()
	origin := "http://app.localhost:8080"
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(origin, testUser, testPass)}
	req, _ := http.NewRequest("GET", origin+"/private/x", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, anyauth.ErrCleartext) {
		t.Fatalf("err = %v, want a cleartext refusal", err)
	}
}
