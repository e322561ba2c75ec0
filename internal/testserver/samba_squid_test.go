package testserver

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-ntlmssp"
)

// proxyConn is one TCP connection to a Squid port on which proxy requests
// are written by hand, so that a connection-bound handshake provably stays
// on it.
type proxyConn struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialProxy(t *testing.T, proxy *url.URL) *proxyConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &proxyConn{t: t, c: c, r: bufio.NewReader(c)}
}

// get sends GET target (an absolute URL) with Proxy-Authorization auth
// (none if "") and reads the response.
func (c *proxyConn) get(target, auth string) (*http.Response, string) {
	c.t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		c.t.Fatal(err)
	}
	req := "GET " + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\n"
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	_ = c.c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := io.WriteString(c.c, req+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", target, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, string(b)
}

// ntlm runs negotiate / challenge / authenticate with go-ntlmssp under
// scheme ("NTLM", or "Negotiate" with raw NTLMSSP messages) and returns
// the final response.
func (c *proxyConn) ntlm(target, scheme, user, password string) (*http.Response, string) {
	c.t.Helper()
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		c.t.Fatal(err)
	}
	resp, body := c.get(target, scheme+" "+base64.StdEncoding.EncodeToString(neg))
	tok, ok := strings.CutPrefix(resp.Header.Get("Proxy-Authenticate"), scheme+" ")
	if resp.StatusCode != http.StatusProxyAuthRequired || !ok {
		c.t.Fatalf("%s negotiate message: %s %q %.200q, want 407 with a challenge", scheme, resp.Status, resp.Header.Values("Proxy-Authenticate"), body)
	}
	challenge, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		c.t.Fatal(err)
	}
	auth, err := ntlmssp.NewAuthenticateMessage(challenge, user, password, nil)
	if err != nil {
		c.t.Fatalf("go-ntlmssp refuses Squid's challenge: %v", err)
	}
	return c.get(target, scheme+" "+base64.StdEncoding.EncodeToString(auth))
}

// TestADSquid: Squid's NTLM port (ntlm_auth, checked by the DC's winbindd)
// and Negotiate port (negotiate_wrapper_auth: Kerberos from the DC's KDC,
// raw NTLMSSP through ntlm_auth), driven by go-ntlmssp and gokrb5 on
// connections written by hand; Squid logs the user of each request.
func TestADSquid(t *testing.T) {
	a := StartSambaADForTest(t)
	began := time.Now()
	sq := StartADSquidForTest(t, a)
	t.Logf("squid up in %v (%v in all): NTLM %s, Negotiate %s, dir %s", sq.Startup, time.Since(began), sq.NTLMURL, sq.NegotiateURL, sq.Dir)
	if sq.BasicURL != "" || sq.DigestURL != "" || sq.NTLMURL == "" || sq.NegotiateURL == "" {
		t.Fatalf("URLs basic %q digest %q ntlm %q negotiate %q", sq.BasicURL, sq.DigestURL, sq.NTLMURL, sq.NegotiateURL)
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "origin %s\n", r.URL.Path)
	}))
	defer origin.Close()
	ntlmProxy, negProxy := sq.URL(SquidNTLM, nil), sq.URL(SquidNegotiate, nil)

	// Without credentials: each port offers its scheme only.
	for proxy, want := range map[*url.URL]string{ntlmProxy: "NTLM", negProxy: "Negotiate"} {
		resp, _ := dialProxy(t, proxy).get(origin.URL+"/bare", "")
		if got := resp.Header.Values("Proxy-Authenticate"); resp.StatusCode != 407 || strings.Join(got, "|") != want {
			t.Errorf("%s without credentials: %s %q, want 407 %q", proxy, resp.Status, got, want)
		}
	}

	// NTLM on both ports, as alice and bob (non-ASCII password); a wrong
	// password, another user's password and an unknown user get 407.
	for _, c := range []struct {
		proxy  *url.URL
		scheme string
	}{{ntlmProxy, "NTLM"}, {negProxy, "Negotiate"}} {
		for _, u := range []string{ADUser, ADSecondUser} {
			target := fmt.Sprintf("%s/%s/%s", origin.URL, strings.ToLower(c.scheme), u)
			resp, body := dialProxy(t, c.proxy).ntlm(target, c.scheme, ADDomain+`\`+u, a.Users[u])
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "origin /") {
				t.Errorf("%s as %s\\%s: %s %q, want 200 from the origin", c.scheme, ADDomain, u, resp.Status, body)
			}
			if user := hitUser(sq, target, 200); user != ADDomain+`\`+u {
				t.Errorf("%s as %s\\%s: Squid logged user %q", c.scheme, ADDomain, u, user)
			}
		}
		for _, w := range []struct{ user, password string }{
			{ADDomain + `\` + ADUser, "wrong"},
			{ADDomain + `\` + ADUser, ADSecondPassword},
			{ADDomain + `\mallory`, ADPassword},
		} {
			resp, _ := dialProxy(t, c.proxy).ntlm(origin.URL+"/wrong", c.scheme, w.user, w.password)
			if resp.StatusCode != 407 {
				t.Errorf("%s as %s with a wrong password: %s, want 407", c.scheme, w.user, resp.Status)
			}
		}
	}

	// On a connection NTLM authenticated, Squid wants a header on every
	// request: a bare request gets a 407, and a negotiate message is let
	// through at once (200, no challenge). On the Negotiate port the
	// 407 carries "Negotiate =": the placeholder blob negotiate_wrapper_auth
	// puts in ntlm_auth's "AF = user", which Squid sends back as the
	// token of its next challenge.
	for _, c := range []struct {
		proxy       *url.URL
		scheme      string
		bare407Says string
	}{{ntlmProxy, "NTLM", "NTLM"}, {negProxy, "Negotiate", "Negotiate ="}} {
		pc := dialProxy(t, c.proxy)
		target := origin.URL + "/again/" + strings.ToLower(c.scheme)
		if resp, _ := pc.ntlm(target+"/1", c.scheme, ADDomain+`\`+ADUser, ADPassword); resp.StatusCode != 200 {
			t.Fatalf("%s: %s", c.scheme, resp.Status)
		}
		resp, _ := pc.get(target+"/2", "")
		if got := resp.Header.Values("Proxy-Authenticate"); resp.StatusCode != 407 || strings.Join(got, "|") != c.bare407Says {
			t.Errorf("%s: a bare request on the authenticated connection: %s %q, want 407 %q", c.scheme, resp.Status, got, c.bare407Says)
		}
		neg, _ := ntlmssp.NewNegotiateMessage("", "")
		resp, _ = pc.get(target+"/3", c.scheme+" "+base64.StdEncoding.EncodeToString(neg))
		if resp.StatusCode != 200 || hitUser(sq, target+"/3", 200) != ADDomain+`\`+ADUser {
			t.Errorf("%s: a negotiate message on the authenticated connection: %s %q, want 200 as %s\\%s", c.scheme, resp.Status, resp.Header.Values("Proxy-Authenticate"), ADDomain, ADUser)
		}
	}

	// Kerberos (gokrb5 SPNEGO, krb5 AP-REQ) on the Negotiate port, for
	// both SPNs of the keytab and both users.
	for _, u := range []string{ADUser, ADSecondUser} {
		cl := adClient(t, a, u)
		for _, spn := range []string{ADSPNAddr, ADSPN} {
			target := fmt.Sprintf("%s/krb/%s/%s", origin.URL, u, strings.ReplaceAll(spn, "/", "-"))
			auth, _ := negotiateAuth(t, cl, spn, false)
			resp, body := dialProxy(t, negProxy).get(target, auth)
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "origin /") {
				t.Errorf("Kerberos as %s, SPN %s: %s %q", u, spn, resp.Status, body)
				continue
			}
			if user := hitUser(sq, target, 200); user != u+"@"+ADRealm {
				t.Errorf("Kerberos as %s, SPN %s: Squid logged user %q", u, spn, user)
			}
		}
	}
	t.Logf("access log:\n%s", sq.AccessLog())
}

// hitUser returns the user of Squid's last log entry for target with
// status.
func hitUser(sq *Squid, target string, status int) string {
	user := "<none>"
	for _, h := range sq.Hits() {
		if h.Target == target && h.Status == status {
			user = h.User
		}
	}
	return user
}
