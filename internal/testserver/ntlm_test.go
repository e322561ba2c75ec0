package testserver

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-ntlmssp"
)

// ntlmConn is one TCP connection to the server on which requests are
// written by hand, so the NTLM handshake provably stays on it.
type ntlmConn struct {
	t    *testing.T
	host string
	c    net.Conn
	r    *bufio.Reader
}

func dialNTLM(t *testing.T, s *Server) *ntlmConn {
	t.Helper()
	host := strings.TrimPrefix(s.URL, "http://")
	c, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &ntlmConn{t: t, host: host, c: c, r: bufio.NewReader(c)}
}

// get sends GET path with the Authorization header auth (none if "") and
// reads the response.
func (c *ntlmConn) get(path, auth string) (*http.Response, string) {
	c.t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + c.host + "\r\n"
	if auth != "" {
		req += "Authorization: " + auth + "\r\n"
	}
	_ = c.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c.c, req+"\r\n"); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("GET %s: %v", path, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Close {
		c.t.Fatalf("GET %s: %s with Connection: close", path, resp.Status)
	}
	return resp, string(b)
}

// handshake runs negotiate / challenge / authenticate on one connection
// with the given scheme ("NTLM" or "Negotiate", the NTLMSSP messages raw in
// both cases) and returns the final response.
func ntlmHandshake(t *testing.T, c *ntlmConn, scheme, user, password string) (*http.Response, string) {
	t.Helper()
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(PathNTLM+WhoamiPath, scheme+" "+base64.StdEncoding.EncodeToString(neg))
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%s negotiate: %s %q, want 401 with a challenge", scheme, resp.Status, body)
	}
	var challenge []byte
	for _, l := range resp.Header.Values("WWW-Authenticate") {
		t.Logf("%s challenge leg: 401 WWW-Authenticate: %.60s...", scheme, l)
		if tok, ok := strings.CutPrefix(l, scheme+" "); ok {
			challenge, err = base64.StdEncoding.DecodeString(tok)
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if challenge == nil {
		t.Fatalf("%s negotiate: no %s challenge in %q", scheme, scheme, resp.Header.Values("WWW-Authenticate"))
	}
	auth, err := ntlmssp.NewAuthenticateMessage(challenge, user, password, nil)
	if err != nil {
		t.Fatalf("go-ntlmssp refuses the challenge: %v", err)
	}
	return c.get(PathNTLM+WhoamiPath, scheme+" "+base64.StdEncoding.EncodeToString(auth))
}

func TestNTLMApache(t *testing.T) {
	s := StartNTLMForTest(t)
	t.Logf("%s %s up in %v", s.Name, s.URL, s.Startup)

	c := dialNTLM(t, s)
	resp, body := c.get(PathNTLM+WhoamiPath, "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no credentials: %s %q", resp.Status, body)
	}
	lines := resp.Header.Values("WWW-Authenticate")
	for _, l := range lines {
		t.Logf("%s 401 WWW-Authenticate: %s", PathNTLM, l)
	}
	if strings.Join(lines, "|") != "Negotiate|NTLM" {
		t.Errorf("challenges %q, want Negotiate and NTLM", lines)
	}

	wantUser := User + "\n"
	for _, scheme := range []string{"NTLM", "Negotiate"} {
		t.Run(scheme, func(t *testing.T) {
			c := dialNTLM(t, s)
			resp, body := ntlmHandshake(t, c, scheme, User, Password)
			if resp.StatusCode != http.StatusOK || body != wantUser {
				t.Fatalf("%s handshake: %s %q, want 200 %q", scheme, resp.Status, body, wantUser)
			}
			t.Logf("%s 200: WWW-Authenticate %q, AUTH_TYPE %q, GSS_MECH %q, REMOTE_USER %q",
				scheme, resp.Header.Values("WWW-Authenticate"), resp.Header.Get("X-Auth-Type"), resp.Header.Get("X-Gss-Mech"), body)

			// The connection stays authenticated (GssapiConnectionBound).
			resp, body = c.get(PathNTLM, "")
			t.Logf("%s: next request on the same connection without Authorization: %s", scheme, resp.Status)
			if resp.StatusCode != http.StatusOK || body != IndexContent(PathNTLM) {
				t.Errorf("%s: same connection, no Authorization: %s %q", scheme, resp.Status, body)
			}
			// A new connection does not.
			if resp, _ := dialNTLM(t, s).get(PathNTLM, ""); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s: new connection, no Authorization: %s, want 401", scheme, resp.Status)
			}

			resp, body = ntlmHandshake(t, dialNTLM(t, s), scheme, User, "wrong")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with a wrong password: %s %q, want 401", scheme, resp.Status, body)
			}
			t.Logf("%s wrong password: %s, WWW-Authenticate %q", scheme, resp.Status, resp.Header.Values("WWW-Authenticate"))
			resp, body = ntlmHandshake(t, dialNTLM(t, s), scheme, "mallory", Password)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s as an unknown user: %s %q, want 401", scheme, resp.Status, body)
			}
		})
	}

	// The handshake split over two connections fails: the server keeps
	// the half-done context in the first one.
	neg, _ := ntlmssp.NewNegotiateMessage("", "")
	resp, _ = dialNTLM(t, s).get(PathNTLM, "NTLM "+base64.StdEncoding.EncodeToString(neg))
	if tok, ok := strings.CutPrefix(resp.Header.Get("WWW-Authenticate"), "NTLM "); ok {
		ch, _ := base64.StdEncoding.DecodeString(tok)
		auth, err := ntlmssp.NewAuthenticateMessage(ch, User, Password, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, body := dialNTLM(t, s).get(PathNTLM, "NTLM "+base64.StdEncoding.EncodeToString(auth))
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("authenticate on another connection: %s %q, want 401", resp.Status, body)
		}
	} else {
		t.Errorf("no NTLM challenge: %q", resp.Header.Values("WWW-Authenticate"))
	}

	for _, h := range s.Requests(PathNTLM) {
		t.Logf("access log: %d %s %s %q", h.Status, h.Method, h.Target, h.User)
	}
}
