package negotiate_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
)

// addrURL rewrites http(s)://localhost:PORT to 127.0.0.1, the only host
// Squid forwards to.
func addrURL(u string) string { return strings.Replace(u, "://localhost:", "://127.0.0.1:", 1) }

// TestSquidHTTP: an http target through Squid's Negotiate port
// (negotiate_kerberos_auth, SPN HTTP/127.0.0.1), the origin asking for
// Negotiate too: one Kerberos scheme answers both, each with its own
// service principal.
func TestSquidHTTP(t *testing.T) {
	kdc, sq := squid(t)
	_, srv := gssapi(t)
	proxy, _ := url.Parse(sq.NegotiateURL)
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab}
	tr := &anyauth.Transport{Base: &http.Transport{Proxy: http.ProxyURL(proxy)}, Schemes: []anyauth.Scheme{k}}
	target := addrURL(whoami(srv, testserver.PathNegotiate))
	seen := len(sq.Hits())
	for i := 0; i < 3; i++ {
		resp, body, err := get(t, tr, target)
		wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	}
	hits := sq.Hits()[seen:]
	var users []string
	total, denied := 0, 0
	for _, h := range hits {
		if h.Port != testserver.SquidNegotiate || h.Target != target {
			continue
		}
		total++
		if h.Status == http.StatusProxyAuthRequired {
			denied++
		}
		if h.Status == 200 {
			users = append(users, h.User)
		}
	}
	if len(users) != 3 || users[0] != kdc.Principal {
		t.Fatalf("Squid saw authenticated requests %q; log:\n%s", users, sq.AccessLog())
	}
	t.Logf("3 GETs through the Negotiate proxy to a Negotiate origin: %d proxy hits, %d answered 407 (the origin's 401 is the third)", total, denied)
}

// TestSquidConnect: an https target through CONNECT, Squid asking for
// Negotiate on the CONNECT and the origin on the request inside the
// tunnel.
func TestSquidConnect(t *testing.T) {
	kdc, sq := squid(t)
	_, srv := gssapiTLS(t)
	proxy, _ := url.Parse(sq.NegotiateURL)
	k := &negotiate.Kerberos{Config: kdc.Config, Keytab: kdc.UserKeytab, Mutual: negotiate.MutualRequired}
	base := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: srv.TLSConfig()}
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{k}}
	target := addrURL(whoami(srv, testserver.PathNegotiate))
	seen := len(sq.Hits())
	resp, body, err := get(t, tr, target)
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	base.CloseIdleConnections()
	tr.CloseIdleConnections()
	var connects []testserver.ProxyHit
	for _, h := range sq.Hits()[seen:] {
		if h.Method == http.MethodConnect {
			connects = append(connects, h)
		}
	}
	ok := false
	for _, h := range connects {
		if h.Status == 200 && h.User == kdc.Principal {
			ok = true
		}
	}
	if !ok {
		t.Fatalf("no authenticated CONNECT in Squid's log:\n%s", sq.AccessLog())
	}
	t.Logf("CONNECTs: %+v", connects)
}

// TestSquidProxyCredentials: the proxy's password (Transport.
// ProxyCredentials) serves Kerberos for the proxy, the origin's
// (Transport.Credentials) for the origin: no ticket cache, no keytab.
func TestSquidProxyCredentials(t *testing.T) {
	kdc, sq := squid(t)
	_, srv := gssapi(t)
	proxy, _ := url.Parse(sq.NegotiateURL)
	target := addrURL(whoami(srv, testserver.PathNegotiate))
	origin, _ := url.Parse(target)
	k := &negotiate.Kerberos{Config: kdc.Config, CCache: "FILE:/nonexistent/cc"}
	tr := &anyauth.Transport{
		Base:             &http.Transport{Proxy: http.ProxyURL(proxy)},
		Schemes:          []anyauth.Scheme{k},
		Credentials:      anyauth.ForOrigin(origin.Scheme+"://"+origin.Host, kdc.User, kdc.Password),
		ProxyCredentials: anyauth.ForOrigin(sq.NegotiateURL, kdc.Principal, kdc.Password),
	}
	resp, body, err := get(t, tr, target)
	wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
}
