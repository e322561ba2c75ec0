package anyauth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
)

// NTLM to Squid whose NTLM is checked by the Samba AD DC (ntlm_auth
// through winbind): for plain-http targets over connections the Transport
// owns, and inside CONNECT, as CORP\alice with her real password.

func ntlmProxyTransport(t *testing.T, sq *testserver.Squid, tlsOrigin *testserver.Server) (*anyauth.Transport, *connCounter) {
	proxy := sq.URL(testserver.SquidNTLM, nil)
	cc := &connCounter{}
	base := &http.Transport{Proxy: http.ProxyURL(proxy), DialContext: cc.dial}
	if tlsOrigin != nil {
		base.TLSClientConfig = tlsOrigin.TLSConfig()
	}
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          append(ntlm.Schemes(ntlm.Options{}), schemes.Digest{}, schemes.Basic{}),
		ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.ADDomain+`\`+testserver.ADUser, testserver.ADPassword),
		Logger:           testLogger(t),
	}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(base.CloseIdleConnections)
	return tr, cc
}

func TestSquidNTLMHTTPTarget(t *testing.T) {
	_, sq := adSquid(t)
	origin := apache(t)
	tr, cc := ntlmProxyTransport(t, sq, nil)
	before, before407 := squidHits(sq, testserver.SquidNTLM, "GET")
	const n = 4
	for range n {
		mustGet(t, tr, origin.URL+"/index.txt", 200)
	}
	total, refused := squidHits(sq, testserver.SquidNTLM, "GET")
	t.Logf("%d GETs through Squid NTLM: Squid logged %d GETs, %d of them 407; %d connections dialed", n, total-before, refused-before407, cc.dials.Load())
	// Request 1: bare (407), negotiate (407), authenticate (200).
	// Request 2 rides the authenticated connection bare: Squid wants a
	// leg on every request (407), and takes the negotiate message at
	// once (200). The Transport learns it: requests 3 and 4 send the
	// negotiate message at once (200).
	if total-before != n+3 || refused-before407 != 3 {
		t.Errorf("Squid logged %d GETs (%d refused), want %d (3)", total-before, refused-before407, n+3)
	}
	if d := cc.dials.Load(); d != 2 {
		t.Errorf("%d connections dialed, want 2 (the bare request's, the authenticated one)", d)
	}
}

// TestSquidNTLMLargePost: the handshake legs go without the body, so
// Squid, which stops reading a connection whose first request carried a
// large body, authenticates the connection, and the body goes once.
func TestSquidNTLMLargePost(t *testing.T) {
	_, sq := adSquid(t)
	origin := apache(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	sum := sha256.Sum256(payload)
	for _, kind := range []string{"GetBody", "stream"} {
		t.Run(kind, func(t *testing.T) {
			tr, _ := ntlmProxyTransport(t, sq, nil)
			tr.Credentials = anyauth.ForOrigin(origin.URL, testserver.User, testserver.Password)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var body io.Reader = bytes.NewReader(payload)
			if kind == "stream" {
				body = io.MultiReader(bytes.NewReader(payload))
			}
			req, _ := http.NewRequestWithContext(ctx, "POST", origin.URL+testserver.PathBasic+"echo", body)
			start := time.Now()
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("after %v: %v", time.Since(start), err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("300 KiB POST (%s) through Squid NTLM to a Basic origin: %d in %v", kind, resp.StatusCode, time.Since(start))
			if resp.StatusCode != 200 || !strings.Contains(string(got), hex.EncodeToString(sum[:])) {
				t.Fatalf("status %d, body %.200q", resp.StatusCode, got)
			}
		})
	}
}

func TestSquidNTLMConnect(t *testing.T) {
	_, sq := adSquid(t)
	origin := apacheTLS(t)
	tr, cc := ntlmProxyTransport(t, sq, origin)
	before, before407 := squidHits(sq, testserver.SquidNTLM, "CONNECT")
	const n = 3
	for range n {
		mustGet(t, tr, origin.URL+"/index.txt", 200)
	}
	tr.CloseIdleConnections()
	total, refused := squidHits(sq, testserver.SquidNTLM, "CONNECT")
	t.Logf("%d https GETs through Squid NTLM: %d CONNECTs, %d of them 407; %d connections dialed", n, total-before, refused-before407, cc.dials.Load())
	// One tunnel, kept alive: bare CONNECT (407), negotiate (407),
	// authenticate (200).
	if total-before != 3 || refused-before407 != 2 {
		t.Errorf("Squid logged %d CONNECTs (%d refused), want 3 (2)", total-before, refused-before407)
	}
}

// TestNTLMOriginBehindSquid: the NTLM origin is reached through Squid's
// Basic port. The owned connection goes to the proxy, which pins its
// connection to the origin once it sees NTLM, so the handshake holds.
func TestNTLMOriginBehindSquid(t *testing.T) {
	sq, origin := realSquid(t), ntlmApache(t)
	proxy := sq.URL(testserver.SquidBasic, nil)
	cc := &connCounter{}
	base := &http.Transport{Proxy: http.ProxyURL(proxy), DialContext: cc.dial}
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          append(ntlm.Schemes(ntlm.Options{}), schemes.Basic{}),
		Credentials:      anyauth.ForOrigin(origin.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password),
		ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.User, testserver.Password),
		Logger:           testLogger(t),
	}
	defer tr.CloseIdleConnections()
	defer base.CloseIdleConnections()
	url := origin.URL + testserver.PathNTLM + testserver.WhoamiPath
	for i := 0; i < 3; i++ {
		if status, body := whoami(t, tr, cc, "GET", url, nil); status != 200 || remoteUser(body) != testserver.User {
			t.Fatalf("request %d: %d %q", i+1, status, body)
		}
	}
	t.Logf("3 requests to an NTLM origin through Squid Basic: %d round trips, %d TCP connections to the proxy", cc.trips.Load(), cc.dials.Load())
	// 407 (Basic), 401 (NTLM), negotiate, authenticate; then 1 each on
	// the authenticated connection.
	if n, d := cc.trips.Load(), cc.dials.Load(); n != 6 || d != 2 {
		t.Errorf("%d round trips on %d connections, want 6 on 2", n, d)
	}
}
