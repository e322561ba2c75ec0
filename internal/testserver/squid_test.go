package testserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestHtpasswdAPR1(t *testing.T) {
	// openssl passwd -apr1 -salt abcdefgh 'correct horse'
	if got, want := apr1("correct horse", "abcdefgh"), "$apr1$abcdefgh$sIQmFnT1CuEXAsyjuXjUX/"; got != want {
		t.Errorf("apr1 = %q, want %q", got, want)
	}
	// A password longer than 16 bytes, and an empty one.
	if got, want := apr1("a rather long password, over sixteen bytes", "Xy.9/zab"), "$apr1$Xy.9/zab$IyRbUsMVwL2rCTwaPOKsu/"; got != want {
		t.Errorf("apr1 long = %q, want %q", got, want)
	}
	if got, want := apr1("", "z"), "$apr1$z$.gLCGOUAsBYRHNmHjndlB/"; got != want {
		t.Errorf("apr1 empty = %q, want %q", got, want)
	}
	line := HtpasswdAPR1Line(User, Password)
	if !strings.HasPrefix(line, User+":$apr1$") || !strings.HasSuffix(line, "\n") {
		t.Errorf("HtpasswdAPR1Line = %q", line)
	}
}

// proxyClient returns a client that sends everything through proxy and
// trusts the CA of tlsServer (if not nil).
func proxyClient(proxy *url.URL, tlsServer *Server) (*http.Client, *http.Transport) {
	tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
	if tlsServer != nil {
		tr.TLSClientConfig = tlsServer.TLSConfig()
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, tr
}

// proxyDo sends a request through c and returns the response with its body
// read.
func proxyDo(t *testing.T, c *http.Client, method, target, body string, header http.Header) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, target, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// proxyDigest computes a Digest Proxy-Authorization for User and Password
// answering challenge ch (qop=auth) for method and uri.
func proxyDigest(method, uri string, ch map[string]string, nc int) string {
	req := &http.Request{Header: http.Header{}}
	digestAuth(method, uri, ch, nc, false)(req)
	return req.Header.Get("Authorization")
}

func TestSquid(t *testing.T) {
	t.Parallel()
	sq := StartSquidForTest(t, SquidOptions{
		NTLM: true,
		// No KDC here: the keytab does not exist, but the port challenges
		// without running its helper.
		Negotiate: &SquidNegotiateConfig{Keytab: filepath.Join(t.TempDir(), "missing.keytab"), Principal: "HTTP/localhost@ANYAUTH.TEST"},
	})
	t.Logf("squid started in %v: basic %s digest %s ntlm %s negotiate %s (dir %s)",
		sq.Startup, sq.BasicURL, sq.DigestURL, sq.NTLMURL, sq.NegotiateURL, sq.Dir)
	origin := StartForTest(t, StartApache)
	target := origin.URL + "/index.txt"
	creds := url.UserPassword(User, Password)

	// Each port challenges with its own scheme only.
	wantScheme := map[string]string{SquidBasic: "Basic", SquidDigest: "Digest", SquidNTLM: "NTLM", SquidNegotiate: "Negotiate"}
	challenge := map[string]map[string]string{}
	for _, port := range []string{SquidBasic, SquidDigest, SquidNTLM, SquidNegotiate} {
		c, _ := proxyClient(sq.URL(port, nil), nil)
		resp, body := proxyDo(t, c, "GET", target, "", nil)
		wantStatus(t, port+" without credentials", resp, body, http.StatusProxyAuthRequired)
		lines := resp.Header.Values("Proxy-Authenticate")
		for _, l := range lines {
			t.Logf("squid %s 407 Proxy-Authenticate: %s", port, l)
		}
		if len(lines) != 1 {
			t.Errorf("%s: %d Proxy-Authenticate lines, want 1", port, len(lines))
			continue
		}
		scheme, p := params(lines[0])
		if scheme != wantScheme[port] {
			t.Errorf("%s: challenge %q, want scheme %s", port, lines[0], wantScheme[port])
		}
		challenge[port] = p
	}
	if p := challenge[SquidBasic]; p["realm"] != ProxyRealmBasic {
		t.Errorf("basic challenge %v", p)
	}
	if p := challenge[SquidDigest]; p["realm"] != ProxyRealmDigest || p["qop"] != "auth" || p["nonce"] == "" {
		t.Errorf("digest challenge %v", p)
	}

	// Basic.
	c, tr := proxyClient(sq.URL(SquidBasic, creds), nil)
	resp, body := proxyDo(t, c, "GET", target, "", nil)
	wantStatus(t, "basic port, Basic credentials", resp, body, 200)
	if body != IndexContent("/") {
		t.Errorf("through squid: %q", body)
	}
	t.Logf("squid 200 Via: %s", resp.Header.Get("Via"))
	tr.CloseIdleConnections()
	c, _ = proxyClient(sq.URL(SquidBasic, url.UserPassword(User, "wrong")), nil)
	resp, body = proxyDo(t, c, "GET", target, "", nil)
	wantStatus(t, "basic port, wrong password", resp, body, http.StatusProxyAuthRequired)
	// Basic credentials are refused by the other ports, with their own
	// challenge.
	for _, port := range []string{SquidDigest, SquidNTLM} {
		c, _ := proxyClient(sq.URL(port, creds), nil)
		resp, body := proxyDo(t, c, "GET", target, "", nil)
		wantStatus(t, port+" port, Basic credentials", resp, body, http.StatusProxyAuthRequired)
		if got := resp.Header.Values("Proxy-Authenticate"); len(got) != 1 || !strings.HasPrefix(got[0], wantScheme[port]) {
			t.Errorf("%s port, Basic credentials: Proxy-Authenticate %q", port, got)
		}
	}

	// Digest, by hand: the digest-uri is the absolute URL of the request line.
	c, _ = proxyClient(sq.URL(SquidDigest, nil), nil)
	auth := proxyDigest("GET", target, challenge[SquidDigest], 1)
	resp, body = proxyDo(t, c, "GET", target, "", http.Header{"Proxy-Authorization": {auth}})
	wantStatus(t, "digest port, Digest credentials", resp, body, 200)
	t.Logf("squid digest 200 Proxy-Authentication-Info: %q", resp.Header.Get("Proxy-Authentication-Info"))
	resp, body = proxyDo(t, c, "GET", target, "", http.Header{"Proxy-Authorization": {proxyDigest("GET", target, challenge[SquidDigest], 2)}})
	wantStatus(t, "digest port, nc=2", resp, body, 200)
	c2, _ := proxyClient(sq.URL(SquidBasic, nil), nil)
	resp, body = proxyDo(t, c2, "GET", target, "", http.Header{"Proxy-Authorization": {auth}})
	wantStatus(t, "basic port, Digest credentials", resp, body, http.StatusProxyAuthRequired)

	// Only 127.0.0.1 is reachable, and only by that name.
	c, _ = proxyClient(sq.URL(SquidBasic, creds), nil)
	for _, u := range []string{"http://127.0.0.2:9/", strings.Replace(target, "127.0.0.1", "localhost", 1)} {
		resp, body := proxyDo(t, c, "GET", u, "", nil)
		wantStatus(t, "GET "+u, resp, body, http.StatusForbidden)
	}

	// Access log.
	hits := sq.Hits()
	var n407, n200 int
	for _, h := range hits {
		if h.Target == target {
			switch h.Status {
			case 407:
				n407++
			case 200:
				n200++
				if h.User != User {
					t.Errorf("200 without user: %+v", h)
				}
			}
		}
	}
	// 407: 4 challenges, wrong password, 2 Basic on other ports, Digest on
	// the basic port. 200: Basic, Digest twice.
	if n407 != 8 || n200 != 3 {
		t.Errorf("%d 407 and %d 200 for %s, want 8 and 3\n%s", n407, n200, target, sq.AccessLog())
	}
	if total, unauth := sq.Count(SquidDigest, "GET"); total != 4 || unauth != 2 {
		t.Errorf("Count(digest, GET) = %d, %d, want 4, 2", total, unauth)
	}
	if strings.Contains(sq.AccessLog(), Password) {
		t.Error("access log contains the password")
	}

	// Close stops squid and its helpers and removes everything.
	pid, dir, service := sq.cmd.Process.Pid, sq.Dir, sq.hostname
	began := time.Now()
	if err := sq.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("squid stopped in %v", time.Since(began).Round(time.Millisecond))
	if err := sq.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if live := liveGroupMembers(pid); len(live) > 0 {
		t.Errorf("process group %d: %v still alive after Close", pid, live)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", dir, err)
	}
	if shm, _ := filepath.Glob("/dev/shm/" + service + "*"); len(shm) > 0 {
		t.Errorf("shared memory left behind: %v", shm)
	}
	if _, err := c.Get(target); err == nil {
		t.Error("squid still answers after Close")
	}
}

func TestSquidConnect(t *testing.T) {
	t.Parallel()
	sq := StartSquidForTest(t, SquidOptions{})
	origin := StartForTest(t, StartApacheTLS)
	authority := strings.TrimPrefix(origin.URL, "https://")

	// CONNECT without credentials.
	var connect407 *http.Response
	c, tr := proxyClient(sq.URL(SquidBasic, nil), origin)
	tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, req *http.Request, resp *http.Response) error {
		if resp.StatusCode != 200 {
			connect407 = resp
		}
		return nil
	}
	_, err := c.Get(origin.URL + "/index.txt")
	if err == nil || connect407 == nil || connect407.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("CONNECT without credentials: %v, %v", err, connect407)
	}
	t.Logf("CONNECT without credentials: %v; Proxy-Authenticate: %q", err, connect407.Header.Values("Proxy-Authenticate"))

	// CONNECT with Basic credentials, then TLS to Apache through the tunnel.
	c, tr = proxyClient(sq.URL(SquidBasic, url.UserPassword(User, Password)), origin)
	var tlsState *tls.ConnectionState
	resp, body := proxyDo(t, c, "GET", origin.URL+"/index.txt", "", nil)
	wantStatus(t, "through CONNECT", resp, body, 200)
	tlsState = resp.TLS
	if body != IndexContent("/") || tlsState == nil || !tlsState.HandshakeComplete {
		t.Errorf("through CONNECT: %q, TLS %v", body, tlsState)
	}
	resp, body = proxyDo(t, c, "GET", origin.URL+PathBasic+"index.txt", "", http.Header{"Authorization": {"Basic " + basicToken(User, Password)}})
	wantStatus(t, "origin Basic through CONNECT", resp, body, 200)
	tr.CloseIdleConnections() // Squid logs a CONNECT when the tunnel closes.

	// Digest CONNECT by hand: the digest-uri is the authority.
	var digest407 *http.Response
	c, tr = proxyClient(sq.URL(SquidDigest, nil), origin)
	tr.OnProxyConnectResponse = func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
		if resp.StatusCode != 200 {
			digest407 = resp
		}
		return nil
	}
	if _, err := c.Get(origin.URL + "/index.txt"); err == nil || digest407 == nil {
		t.Fatalf("Digest CONNECT without credentials: %v", err)
	}
	_, ch := params(digest407.Header.Get("Proxy-Authenticate"))
	t.Logf("Digest CONNECT 407 Proxy-Authenticate: %q", digest407.Header.Values("Proxy-Authenticate"))
	c, tr = proxyClient(sq.URL(SquidDigest, nil), origin)
	tr.ProxyConnectHeader = http.Header{"Proxy-Authorization": {proxyDigest("CONNECT", authority, ch, 1)}}
	resp, body = proxyDo(t, c, "GET", origin.URL+"/index.txt", "", nil)
	wantStatus(t, "through Digest CONNECT", resp, body, 200)
	tr.CloseIdleConnections()

	// A CONNECT refused and one allowed, in the log.
	var lines []string
	for _, l := range strings.Split(sq.AccessLog(), "\n") {
		if strings.Contains(l, " CONNECT ") {
			lines = append(lines, l)
		}
	}
	t.Logf("CONNECT lines of the access log:\n%s", strings.Join(lines, "\n"))
	// Squid logs each CONNECT when its tunnel closes: compare port by port.
	var got []string
	for _, h := range sq.Hits() {
		if h.Method == "CONNECT" {
			if h.Target != authority {
				t.Errorf("CONNECT target %q, want %q", h.Target, authority)
			}
			got = append(got, fmt.Sprintf("%s %s/%d %s", h.Port, h.Result, h.Status, h.User))
		}
	}
	want := []string{
		"basic TCP_DENIED/407 ",
		"basic TCP_TUNNEL/200 " + User,
		"digest TCP_DENIED/407 ",
		"digest TCP_TUNNEL/200 " + User,
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("CONNECT hits:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Apache saw both authenticated GETs, not the CONNECTs.
	if total, _ := origin.Hits("/index.txt"); total != 2 {
		t.Errorf("apache-tls: %d GET /index.txt, want 2", total)
	}
}

func basicToken(user, password string) string {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, password)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// TestSquidLargePost records how Squid handles a 300 KiB body: with
// credentials at once, and first without (407) then with them on the same
// connection.
func TestSquidLargePost(t *testing.T) {
	t.Parallel()
	sq := StartSquidForTest(t, SquidOptions{})
	origin := StartForTest(t, StartApache)
	target := origin.URL + PathBasic + "echo"
	payload := bytes.Repeat([]byte("0123456789abcdef"), 300*1024/16)
	originAuth := "Basic " + basicToken(User, Password)
	proxyAuth := "Basic " + basicToken(User, Password)

	// With credentials at once.
	c, tr := proxyClient(sq.URL(SquidBasic, url.UserPassword(User, Password)), nil)
	resp, body := proxyDo(t, c, "POST", target, string(payload), http.Header{"Authorization": {originAuth}})
	wantStatus(t, "300 KiB POST with credentials", resp, body, 200)
	if body != EchoReply(payload) {
		t.Errorf("echo %q, want %q", body, EchoReply(payload))
	}
	tr.CloseIdleConnections()

	// Raw: the whole request without credentials, then again with them on
	// the same connection. From 64 KiB on, Squid 5.7 answers the first
	// request 407 with "Connection: keep-alive" but never answers the
	// replay; on a loaded machine a 16 KiB replay stalls too. The quirk is
	// only logged, not asserted: the Transport replays every body on a new
	// connection (squidStallsOnLargeReplay).
	for _, size := range []int{16 << 10, len(payload)} {
		status, replay := rawReplay(t, sq.BasicURL, target, payload[:size], originAuth, proxyAuth)
		t.Logf("raw %d KiB POST without credentials: %s; replay with credentials on the same connection: %s", size>>10, status, replay)
	}

	// net/http: first without proxy credentials, then with them, one
	// connection at most; record whether it was reused and how long it took.
	c, tr = proxyClient(sq.URL(SquidBasic, nil), nil)
	tr.MaxConnsPerHost = 1
	c.Timeout = 5 * time.Second
	for i, auth := range []string{"", proxyAuth} {
		req, _ := http.NewRequest("POST", target, bytes.NewReader(payload))
		req.Header.Set("Authorization", originAuth)
		if auth != "" {
			req.Header.Set("Proxy-Authorization", auth)
		}
		var reused bool
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
		}))
		began := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			t.Logf("net/http POST %d: %v after %v (connection reused: %v)", i+1, err, time.Since(began).Round(time.Millisecond), reused)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("net/http POST %d: %s in %v (connection reused: %v, Connection: %q)", i+1, resp.Status,
			time.Since(began).Round(time.Millisecond), reused, resp.Header.Get("Connection"))
		if i == 1 {
			wantStatus(t, "net/http replay with credentials", resp, string(b), 200)
		}
	}
	tr.CloseIdleConnections()
	for _, h := range sq.Hits() {
		if h.Method == "POST" {
			t.Logf("squid: %s %s/%d %s %s %q", h.Port, h.Result, h.Status, h.Method, h.Target, h.User)
		}
	}
}

func TestApacheTLS(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, StartApacheTLS)
	t.Logf("apache-tls at %s, started in %v", s.URL, s.Startup)
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") || s.Name != "apache-tls" {
		t.Fatalf("URL %q, Name %q", s.URL, s.Name)
	}
	tr := &http.Transport{Proxy: nil, TLSClientConfig: s.TLSConfig()}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	get := func(url string, auth bool) (*http.Response, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if auth {
			req.SetBasicAuth(User, Password)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get(s.URL+PathBasic+"index.txt", false)
	wantStatus(t, "https /basic/ without credentials", resp, body, 401)
	resp, body = get(s.URL+PathBasic+"index.txt", true)
	wantStatus(t, "https /basic/ with credentials", resp, body, 200)
	if body != IndexContent(PathBasic) {
		t.Errorf("body %q", body)
	}
	st := resp.TLS
	t.Logf("TLS version %s, cipher %s, leaf %s issued by %s valid until %s", tls.VersionName(st.Version),
		tls.CipherSuiteName(st.CipherSuite), st.PeerCertificates[0].Subject, st.PeerCertificates[0].Issuer, st.PeerCertificates[0].NotAfter)
	// localhost is in the certificate too.
	resp, _ = get(strings.Replace(s.URL, "127.0.0.1", "localhost", 1)+"/index.txt", false)
	wantStatus(t, "https://localhost", resp, "", 200)
	// Digest works as on the plain server.
	resp, body = get(s.URL+PathDigest+"index.txt", false)
	wantStatus(t, "https /digest/ without credentials", resp, body, 401)
	_, ch := params(resp.Header.Get("WWW-Authenticate"))
	req, _ := http.NewRequest("GET", s.URL+PathDigest+"index.txt", nil)
	digestAuth("GET", PathDigest+"index.txt", ch, 1, false)(req)
	if resp, err := c.Do(req); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		wantStatus(t, "https /digest/ with Digest", resp, "", 200)
	}

	// Without the CA, verification fails.
	if _, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 5 * time.Second}).Get(s.URL + "/index.txt"); err == nil {
		t.Error("certificate accepted without the test CA")
	} else {
		t.Logf("without the CA: %v", err)
	}
	if total, unauth := s.Hits(PathBasic); total != 2 || unauth != 1 {
		t.Errorf("Hits(%s) = %d, %d, want 2, 1", PathBasic, total, unauth)
	}
	dir := s.Dir
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left behind", dir)
	}
}

// rawReplay sends POST target with body through the proxy without
// credentials, then with proxyAuth on the same connection, and describes
// what each got.
func rawReplay(t *testing.T, proxy, target string, body []byte, originAuth, proxyAuth string) (first, replay string) {
	conn, err := net.Dial("tcp", strings.TrimPrefix(proxy, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	send := func(auth string) string {
		began := time.Now()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		req, _ := http.NewRequest("POST", target, bytes.NewReader(body))
		req.Header.Set("Authorization", originAuth)
		if auth != "" {
			req.Header.Set("Proxy-Authorization", auth)
		}
		go func() { _ = req.WriteProxy(conn) }()
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			return fmt.Sprintf("%v after %v", err, time.Since(began).Round(time.Millisecond))
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 && string(got) != EchoReply(body) {
			err = fmt.Errorf("echo %q", got)
		}
		return fmt.Sprintf("%s (Connection: %q) in %v, error %v", resp.Status, resp.Header.Get("Connection"), time.Since(began).Round(time.Millisecond), err)
	}
	first = send("")
	if !strings.HasPrefix(first, "407 ") {
		t.Errorf("POST without proxy credentials: %s", first)
	}
	return first, send(proxyAuth)
}

// TestSquidQuickClose stops Squid right after it answered: a Squid stopped
// that early leaves its shared memory behind, which Close removes.
func TestSquidQuickClose(t *testing.T) {
	t.Parallel()
	sq := StartSquidForTest(t, SquidOptions{})
	pid, dir, service := sq.cmd.Process.Pid, sq.Dir, sq.hostname
	if err := sq.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if live := liveGroupMembers(pid); len(live) > 0 {
		t.Errorf("process group %d: %v still alive after Close", pid, live)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", dir, err)
	}
	if shm, _ := filepath.Glob("/dev/shm/" + service + "*"); len(shm) > 0 {
		t.Errorf("shared memory left behind: %v", shm)
	}
}
