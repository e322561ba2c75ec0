package anyauth_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// CONNECT proxies that Squid cannot be made to be: two challenges, 407
// forever, closing after each 407, a large 407 body, never answering.

// connectProxy is a CONNECT-only proxy. decide tells it how to answer the
// n-th CONNECT (from 1) given its Proxy-Authorization; a 200 opens a
// tunnel to the target.
type connectProxy struct {
	ln     net.Listener
	decide func(n int, auth string) proxyAnswer

	mu       sync.Mutex
	conns    int
	connects int
	auths    []string
	headers  []http.Header
}

type proxyAnswer struct {
	status     int
	challenges []string
	body       string
	close      bool // close the connection after answering
	hang       bool // never answer
	// raw, when set, writes the answer itself, byte for byte; the
	// connection is closed afterwards when it reports true.
	raw func(c net.Conn) (closeAfter bool)
	// interim sends 100 Continue and 102 Processing before the answer.
	interim bool
}

func newConnectProxy(t *testing.T, decide func(n int, auth string) proxyAnswer) *connectProxy {
	return newConnectProxyTLS(t, nil, decide)
}

// newConnectProxyTLS is newConnectProxy listening with TLS when cfg is
// set (an https:// proxy).
func newConnectProxyTLS(t *testing.T, cfg *tls.Config, decide func(n int, auth string) proxyAnswer) *connectProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	p := &connectProxy{ln: ln, decide: decide}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns++
			p.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(t, c) }()
		}
	}()
	return p
}

func (p *connectProxy) url() *url.URL { return &url.URL{Scheme: "http", Host: p.ln.Addr().String()} }

func (p *connectProxy) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		p.mu.Lock()
		p.connects++
		n := p.connects
		auth := req.Header.Get("Proxy-Authorization")
		p.auths = append(p.auths, auth)
		p.headers = append(p.headers, req.Header.Clone())
		p.mu.Unlock()
		if req.Method != http.MethodConnect {
			fmt.Fprint(c, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
			continue
		}
		a := p.decide(n, auth)
		if a.raw != nil {
			if a.raw(c) {
				return
			}
			continue
		}
		if a.hang {
			io.Copy(io.Discard, c) // until the client gives up
			return
		}
		if a.interim {
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n")
		}
		if a.status == 200 {
			target, err := net.Dial("tcp", req.Host)
			if err != nil {
				fmt.Fprint(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
				return
			}
			defer target.Close()
			fmt.Fprint(c, "HTTP/1.1 200 Connection established\r\n\r\n")
			go func() { io.Copy(target, br); target.Close() }()
			io.Copy(c, target)
			return
		}
		var b strings.Builder
		fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", a.status, http.StatusText(a.status))
		for _, ch := range a.challenges {
			fmt.Fprintf(&b, "Proxy-Authenticate: %s\r\n", ch)
		}
		if a.close {
			b.WriteString("Connection: close\r\n")
		}
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(a.body))
		b.WriteString(a.body)
		io.WriteString(c, b.String())
		if a.close {
			return
		}
	}
}

func (p *connectProxy) counts() (conns, connects int, auths []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns, p.connects, append([]string(nil), p.auths...)
}

// tlsOrigin is an https origin that records the authentication headers it
// receives and answers with handler.
type tlsOrigin struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newTLSOrigin(t *testing.T, handler http.HandlerFunc) *tlsOrigin {
	o := &tlsOrigin{}
	o.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.mu.Lock()
		o.seen = append(o.seen, r.Header.Clone())
		o.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		fmt.Fprint(w, "secure hello")
	}))
	t.Cleanup(o.Close)
	return o
}

// tunnelTransport sends to origin through proxy, trusting origin's
// certificate.
func tunnelTransport(t *testing.T, proxy *url.URL, origin *httptest.Server) (*anyauth.Transport, *http.Transport) {
	pool := x509.NewCertPool()
	pool.AddCert(origin.Certificate())
	base := &http.Transport{Proxy: http.ProxyURL(proxy), TLSClientConfig: &tls.Config{RootCAs: pool}}
	t.Cleanup(base.CloseIdleConnections)
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		ProxyCredentials: anyauth.ForOrigin(withoutUser(proxy), "pu", "pp"),
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, base
}

func withoutUser(u *url.URL) string { return u.Scheme + "://" + u.Host }

func TestConnectAnswersStrongerChallenge(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if strings.HasPrefix(auth, "Digest ") && strings.Contains(auth, `algorithm=SHA-256`) &&
			strings.Contains(auth, `username="pu"`) && strings.Contains(auth, `uri="127.0.0.1:`) {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`, `Digest realm="p", nonce="n1", qop="auth", algorithm=SHA-256`}}
	})
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	if code, body := get(t, tr, origin.URL+"/x"); code != 200 || body != "secure hello" {
		t.Fatalf("%d %q", code, body)
	}
	conns, connects, auths := p.counts()
	if connects != 2 || conns != 1 || auths[0] != "" || !strings.HasPrefix(auths[1], "Digest ") {
		t.Fatalf("%d CONNECTs on %d connections, Proxy-Authorization %q; want 2 on 1: none, then Digest", connects, conns, auths)
	}
	// The proxy's space is remembered: a new tunnel is authenticated on
	// its first CONNECT.
	tr.CloseIdleConnections()
	get(t, tr, origin.URL+"/y")
	if _, connects, _ := p.counts(); connects != 3 {
		t.Fatalf("second tunnel cost %d CONNECTs, want 1", connects-2)
	}
}

func TestConnect407ForeverIsBounded(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		return proxyAnswer{status: 407, challenges: []string{fmt.Sprintf(`Digest realm="p", nonce="n%d", qop="auth", stale=true`, n)}}
	})
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	start := time.Now()
	req, _ := http.NewRequest("GET", origin.URL+"/x", nil)
	_, err := tr.RoundTrip(req)
	var pe *anyauth.ProxyConnectError
	if !errors.As(err, &pe) || pe.StatusCode != 407 || !anyauth.IsPermanent(err) || len(pe.Challenges) != 1 {
		t.Fatalf("err = %v, want a permanent ProxyConnectError", err)
	}
	if _, connects, _ := p.counts(); connects != 1+anyauth.DefaultMaxAnswers || time.Since(start) > 2*time.Second {
		t.Fatalf("%d CONNECTs in %v, want %d", connects, time.Since(start), 1+anyauth.DefaultMaxAnswers)
	}
	if len(origin.seen) != 0 {
		t.Fatal("the origin was reached")
	}
}

func TestConnectRedialsWhenProxyClosesOrBodyIsLarge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer proxyAnswer
	}{
		{"close", proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`}, body: "go away", close: true}},
		{"large body", proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`}, body: strings.Repeat("x", 1<<20)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := newTLSOrigin(t, nil)
			p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
				if strings.HasPrefix(auth, "Basic ") {
					return proxyAnswer{status: 200}
				}
				return tc.answer
			})
			tr, _ := tunnelTransport(t, p.url(), origin.Server)
			if code, _ := get(t, tr, origin.URL+"/x"); code != 200 {
				t.Fatalf("status %d", code)
			}
			if conns, connects, _ := p.counts(); conns != 2 || connects != 2 {
				t.Fatalf("%d CONNECTs on %d connections, want 2 on 2", connects, conns)
			}
		})
	}
}

func TestConnectKeepsConnectionAcrossLegs(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if strings.HasPrefix(auth, "Basic ") {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`}, body: strings.Repeat("x", 10<<10)}
	})
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	get(t, tr, origin.URL+"/x")
	if conns, connects, _ := p.counts(); conns != 1 || connects != 2 {
		t.Fatalf("%d CONNECTs on %d connections, want 2 on 1", connects, conns)
	}
}

func TestConnectHangingProxyHonoursContextAndTimeout(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxy(t, func(int, string) proxyAnswer { return proxyAnswer{hang: true} })
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", origin.URL+"/x", nil)
	start := time.Now()
	if _, err := tr.RoundTrip(req); err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("context: err %v after %v", err, time.Since(start))
	}
	// Without a deadline on the request, ConnectTimeout bounds it.
	tr2, _ := tunnelTransport(t, p.url(), origin.Server)
	tr2.ConnectTimeout = 200 * time.Millisecond
	req, _ = http.NewRequest("GET", origin.URL+"/x", nil)
	start = time.Now()
	if _, err := tr2.RoundTrip(req); err == nil || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("ConnectTimeout: err %v after %v", err, time.Since(start))
	}
}

// TestCredentialsStayOnTheirSide: through a tunnel, the origin never sees
// Proxy-Authorization (not even one the caller set) and the proxy never
// sees Authorization.
func TestCredentialsStayOnTheirSide(t *testing.T) {
	origin := newTLSOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if u, pw, ok := r.BasicAuth(); !ok || u != testUser || pw != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="o"`)
			w.WriteHeader(401)
			return
		}
		fmt.Fprint(w, "ok")
	})
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if strings.HasPrefix(auth, "Basic ") {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`}}
	})
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	tr.Credentials = anyauth.ForOrigin(origin.URL, testUser, testPass)
	for range 2 {
		req, _ := http.NewRequest("GET", origin.URL+"/x", nil)
		req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0OnByb3h5") // the caller's, misplaced
		resp, err := tr.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	origin.mu.Lock()
	defer origin.mu.Unlock()
	for i, h := range origin.seen {
		if h.Get("Proxy-Authorization") != "" {
			t.Errorf("origin request %d carried Proxy-Authorization", i)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, h := range p.headers {
		if h.Get("Authorization") != "" {
			t.Errorf("CONNECT %d carried Authorization", i)
		}
		if a := h.Get("Proxy-Authorization"); a != "" && a != "Basic cHU6cHA=" {
			t.Errorf("CONNECT %d carried Proxy-Authorization %q, not the proxy's credentials", i, a)
		}
	}
}

// TestTunnel407IsNotTheProxys: a 407 from the origin inside the tunnel is
// returned untouched.
func TestTunnel407IsNotTheProxys(t *testing.T) {
	origin := newTLSOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="sneaky"`)
		w.WriteHeader(407)
	})
	p := newConnectProxy(t, func(int, string) proxyAnswer { return proxyAnswer{status: 200} })
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	if code, _ := get(t, tr, origin.URL+"/x"); code != 407 {
		t.Fatalf("status %d", code)
	}
	if len(origin.seen) != 1 || origin.seen[0].Get("Proxy-Authorization") != "" {
		t.Fatalf("origin saw %d requests: proxy credentials answered its 407", len(origin.seen))
	}
}

// TestProxyFollowsBaseAndNoProxy: a target the proxy func sends direct is
// not a proxy's: its 407 is untouched. Transport.Proxy replaces Base's
// proxy, so the proxy answered is the one used.
func TestProxyFollowsBaseAndNoProxy(t *testing.T) {
	var originSaw []string
	direct := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		originSaw = append(originSaw, r.Header.Get("Proxy-Authorization"))
		w.Header().Set("Proxy-Authenticate", `Basic realm="sneaky"`)
		w.WriteHeader(407)
	}))
	defer direct.Close()
	p := newFakeProxy(t)
	proxyURL := mustURL(p.URL)
	noProxyFor := mustURL(direct.URL).Host
	tr := &anyauth.Transport{
		Base: &http.Transport{}, // no proxy of its own
		Proxy: func(r *http.Request) (*url.URL, error) {
			if r.URL.Host == noProxyFor {
				return nil, nil
			}
			return proxyURL, nil
		},
		Schemes:          []anyauth.Scheme{schemes.Basic{}},
		Credentials:      anyauth.ForOrigin("http://127.0.0.2:9", testUser, testPass),
		ProxyCredentials: anyauth.ForOrigin(p.URL, "proxyuser", "proxypass"),
	}
	defer tr.CloseIdleConnections()
	if code, _ := get(t, tr, direct.URL+"/x"); code != 407 || len(originSaw) != 1 || originSaw[0] != "" {
		t.Fatalf("direct origin: status %d, Proxy-Authorization %q", code, originSaw)
	}
	// The same Transport goes through the proxy for other hosts, though
	// Base alone would go direct: Transport.Proxy wins in the clone.
	if code, body := get(t, tr, "http://127.0.0.2:9/doc"); code != 200 || body != "through" {
		t.Fatalf("through the proxy: %d %q", code, body)
	}
}

// TestProxyUserinfoIsProxyCredentials: a proxy URL's user info answers the
// proxy's challenge, whatever its scheme; net/http does not send it as
// Basic on its own.
func TestProxyUserinfoIsProxyCredentials(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if strings.HasPrefix(auth, "Digest ") && strings.Contains(auth, `username="from-url"`) {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{`Digest realm="p", nonce="n1", qop="auth", algorithm=SHA-256`}}
	})
	proxy := p.url()
	proxy.User = url.UserPassword("from-url", "pw")
	tr, _ := tunnelTransport(t, proxy, origin.Server)
	tr.ProxyCredentials = nil
	if code, _ := get(t, tr, origin.URL+"/x"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if _, _, auths := p.counts(); len(auths) != 2 || auths[0] != "" {
		t.Fatalf("Proxy-Authorization sent: %q; want none, then Digest", auths)
	}
}

// TestCleartextGuardLooksAtTheProxyHop: Basic for a loopback origin
// through a proxy that is not on loopback crosses the network in the
// clear, and is refused.
func TestCleartextGuardLooksAtTheProxyHop(t *testing.T) {
	p := newFakeProxy(t)
	real := mustURL(p.URL).Host
	base := &http.Transport{
		Proxy: http.ProxyURL(mustURL("http://proxy.example:3128")),
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, real)
		},
	}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          []anyauth.Scheme{schemes.Basic{}},
		Credentials:      anyauth.ForOrigin("http://127.0.0.2:9", testUser, testPass),
		ProxyCredentials: anyauth.ForOrigin("http://proxy.example:3128", "proxyuser", "proxypass"),
	}
	req, _ := http.NewRequest("GET", "http://127.0.0.2:9/doc", nil)
	_, err := tr.RoundTrip(req)
	var ce *anyauth.CleartextError
	if !errors.As(err, &ce) || ce.Host != "proxy.example" || !ce.Proxy {
		t.Fatalf("err = %v, want a CleartextError for the proxy hop", err)
	}
	tr.CleartextHosts = []string{"proxy.example"}
	if code, body := get(t, tr, "http://127.0.0.2:9/doc"); code != 200 || body != "through" {
		t.Fatalf("with the proxy allowed: %d %q", code, body)
	}
}

// Owning the TLS dial keeps HTTP/2: a Base like http.DefaultTransport
// (ForceAttemptHTTP2, a Proxy func that finds no proxy) still speaks h2
// with an origin that offers it.
func TestOwnedDialKeepsHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	base.TLSClientConfig = &tls.Config{RootCAs: pool}
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}}
	defer tr.CloseIdleConnections()
	if code, body := get(t, tr, srv.URL+"/"); code != 200 || body != "HTTP/2.0" {
		t.Fatalf("%d %q, want HTTP/2.0", code, body)
	}
}

// An https:// proxy: the Transport speaks TLS to the proxy, answers its
// 407 inside that connection, then TLS again to the origin through it.
func TestConnectThroughHTTPSProxy(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	p := newConnectProxyTLS(t, origin.TLS.Clone(), func(n int, auth string) proxyAnswer {
		if strings.HasPrefix(auth, "Basic ") {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{`Basic realm="p"`}}
	})
	proxy := p.url()
	proxy.Scheme = "https"
	tr, _ := tunnelTransport(t, proxy, origin.Server) // trusts origin's certificate, which the proxy shares
	if code, body := get(t, tr, origin.URL+"/x"); code != 200 || body != "secure hello" {
		t.Fatalf("%d %q", code, body)
	}
	if conns, connects, auths := p.counts(); conns != 1 || connects != 2 || !strings.HasPrefix(auths[1], "Basic ") {
		t.Fatalf("%d CONNECTs on %d TLS connections, Proxy-Authorization %q", connects, conns, auths)
	}
}
