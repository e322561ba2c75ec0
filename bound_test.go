package anyauth_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
)

// A two-leg connection-bound scheme, "Conn", against an httptest server
// that remembers per TCP connection what it was sent: "Conn hello" gets
// 401 "Conn <nonce>", "Conn <nonce> <user>" on the same connection
// authenticates it, and the connection then passes without a header.
// These are the edge cases real servers are not made to show on demand.

type connScheme struct{}

func (connScheme) Name() string { return "Conn" }
func (connScheme) Traits() anyauth.Traits {
	return anyauth.Traits{ConnectionBound: true, NeverPreemptive: true}
}
func (connScheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthNTLM, c.Token68 == ""
}
func (connScheme) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	return &connSession{user: up.Username}, nil
}

type connSession struct{ user string }

func (s *connSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return &connLeg{user: s.user}, nil
}

type connLeg struct {
	user  string
	nonce string
}

func (l *connLeg) Probing() bool { return l.nonce == "" }
func (l *connLeg) Apply(req *http.Request) error {
	if l.nonce == "" {
		req.Header.Set("Authorization", "Conn hello")
	} else {
		req.Header.Set("Authorization", "Conn "+l.nonce+" "+l.user)
	}
	return nil
}
func (l *connLeg) Continue(_ context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if l.nonce != "" || c == nil || c.Token68 == "" {
		return false, nil
	}
	l.nonce = c.Token68
	return true, nil
}
func (l *connLeg) Finish(*http.Response) error { return nil }

// connServer is the server side.
type connServer struct {
	mu          sync.Mutex
	nonces      map[string]string // remote addr → nonce handed out
	users       map[string]string // remote addr → authenticated user
	next        int
	closeAfter  atomic.Int64 // close the connection after this many challenges (0: never)
	forget      atomic.Bool  // forget every authenticated connection once
	protos      []string
	bodies      []int64
	requests    atomic.Int64
	connections atomic.Int64
}

func newConnServer(t *testing.T, tlsH2 bool) (*httptest.Server, *connServer) {
	cs := &connServer{nonces: map[string]string{}, users: map[string]string{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(cs.serve))
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			cs.connections.Add(1)
		}
	}
	if tlsH2 {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, cs
}

func (cs *connServer) serve(w http.ResponseWriter, r *http.Request) {
	cs.requests.Add(1)
	n, _ := io.Copy(io.Discard, r.Body)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.protos = append(cs.protos, r.Proto)
	cs.bodies = append(cs.bodies, n)
	if cs.forget.CompareAndSwap(true, false) {
		cs.users = map[string]string{}
	}
	if r.URL.Path == "/open" { // for benchmarks: no authentication
		w.Write([]byte("ok"))
		return
	}
	if u := cs.users[r.RemoteAddr]; u != "" {
		fmt.Fprint(w, u)
		return
	}
	auth := r.Header.Get("Authorization")
	switch f := strings.Fields(auth); {
	case auth == "Conn hello":
		cs.next++
		nonce := fmt.Sprintf("n%d", cs.next)
		cs.nonces[r.RemoteAddr] = nonce
		w.Header().Set("WWW-Authenticate", "Conn "+nonce)
		if c := cs.closeAfter.Load(); c > 0 {
			cs.closeAfter.Add(-1)
			w.Header().Set("Connection", "close")
		}
		w.WriteHeader(http.StatusUnauthorized)
		return
	case len(f) == 3 && f[0] == "Conn" && f[1] == cs.nonces[r.RemoteAddr]:
		cs.users[r.RemoteAddr] = f[2]
		fmt.Fprint(w, f[2])
		return
	}
	w.Header().Set("WWW-Authenticate", "Conn")
	w.WriteHeader(http.StatusUnauthorized)
}

func connTransport(srv *httptest.Server, creds anyauth.CredentialProvider) *anyauth.Transport {
	base := srv.Client().Transport.(*http.Transport).Clone()
	base.ForceAttemptHTTP2 = true
	return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{connScheme{}}, Credentials: creds}
}

// TestBoundHandshakeIsHTTP1OverTLS: the server speaks HTTP/2, the Base
// would too, but a connection-bound handshake needs its own HTTP/1.1
// connection; the negotiate leg goes without the body.
func TestBoundHandshakeIsHTTP1OverTLS(t *testing.T) {
	srv, cs := newConnServer(t, true)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		if code, body := whoami(t, tr, nil, "POST", srv.URL+"/x", []byte("payload")); code != 200 || body != "alice" {
			t.Fatalf("request %d: %d %q", i, code, body)
		}
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	// Request 1: bare over HTTP/2 (Base), negotiate and authenticate
	// over the owned HTTP/1.1 connection; requests 2 and 3 ride it.
	wantProtos := []string{"HTTP/2.0", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1", "HTTP/1.1"}
	if fmt.Sprint(cs.protos) != fmt.Sprint(wantProtos) {
		t.Errorf("protocols %v, want %v", cs.protos, wantProtos)
	}
	wantBodies := []int64{7, 0, 7, 7, 7}
	if fmt.Sprint(cs.bodies) != fmt.Sprint(wantBodies) {
		t.Errorf("body bytes per round trip %v, want %v (the negotiate leg goes without)", cs.bodies, wantBodies)
	}
	if n := cs.connections.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestBoundKnownSpaceGoesOnANewOwnedConnection: once the space is known
// and no authenticated connection is idle, the request goes bare on a new
// owned connection (HTTP/1.1), not through Base (HTTP/2 here), so that
// its challenge and the handshake share that connection.
func TestBoundKnownSpaceGoesOnANewOwnedConnection(t *testing.T) {
	srv, cs := newConnServer(t, true)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	defer tr.CloseIdleConnections()
	whoami(t, tr, nil, "GET", srv.URL+"/x", nil)
	tr.CloseIdleConnections() // the authenticated connection is gone; the space is still known
	cs.mu.Lock()
	cs.protos = nil
	cs.mu.Unlock()
	if code, body := whoami(t, tr, nil, "GET", srv.URL+"/x", nil); code != 200 || body != "alice" {
		t.Fatalf("%d %q", code, body)
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if want := "[HTTP/1.1 HTTP/1.1 HTTP/1.1]"; fmt.Sprint(cs.protos) != want {
		t.Errorf("protocols %v, want %s (bare, negotiate, authenticate on one owned connection)", cs.protos, want)
	}
}

// TestBoundHandshakeKeepsAliveWhenBaseDoesNot: a Base with keep-alives
// off still gets its handshakes: the owned connections keep alive.
func TestBoundHandshakeKeepsAliveWhenBaseDoesNot(t *testing.T) {
	srv, cs := newConnServer(t, false)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	tr.Base.(*http.Transport).DisableKeepAlives = true
	defer tr.CloseIdleConnections()
	for i := 0; i < 3; i++ {
		if code, body := whoami(t, tr, nil, "GET", srv.URL+"/x", nil); code != 200 || body != "alice" {
			t.Fatalf("request %d: %d %q", i+1, code, body)
		}
	}
	if r, n := cs.requests.Load(), cs.connections.Load(); r != 5 || n != 2 {
		t.Errorf("%d round trips on %d connections, want 5 on 2", r, n)
	}
}

// TestBoundHandshakeRestartsWhenTheConnectionCloses: the server closes
// the connection after its challenge; the handshake starts again on a
// new one, twice at most.
func TestBoundHandshakeRestartsWhenTheConnectionCloses(t *testing.T) {
	srv, cs := newConnServer(t, false)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	defer tr.CloseIdleConnections()
	cs.closeAfter.Store(2)
	if code, body := whoami(t, tr, nil, "GET", srv.URL+"/x", nil); code != 200 || body != "alice" {
		t.Fatalf("%d %q", code, body)
	}
	if r := cs.requests.Load(); r != 1+2+2 {
		t.Errorf("%d round trips, want 5 (bare, negotiate twice on closing connections, then negotiate and authenticate)", r)
	}
	tr.Forget() // drop the authenticated connection
	cs.closeAfter.Store(3)
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	_, err := tr.RoundTrip(req)
	if err == nil || !strings.Contains(err.Error(), "connection closed during a connection-bound handshake") {
		t.Fatalf("got %v, want the handshake given up after two restarts", err)
	}
}

// TestBoundConnectionChallengedAgain: the server forgets an authenticated
// connection; the request is challenged on it and authenticates it again.
func TestBoundConnectionChallengedAgain(t *testing.T) {
	srv, cs := newConnServer(t, false)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	defer tr.CloseIdleConnections()
	whoami(t, tr, nil, "GET", srv.URL+"/x", nil)
	before := cs.requests.Load()
	cs.forget.Store(true)
	if code, body := whoami(t, tr, nil, "GET", srv.URL+"/x", nil); code != 200 || body != "alice" {
		t.Fatalf("%d %q", code, body)
	}
	if r := cs.requests.Load() - before; r != 3 {
		t.Errorf("%d round trips, want 3 (bare on the pooled connection, negotiate, authenticate)", r)
	}
	if n := cs.connections.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the handshake stays on the pooled connection", n)
	}
}

// TestBoundConnectionHeldUntilBodyClosed: a connection serves one
// request at a time; two requests in flight use two connections, and a
// finished one is reused.
func TestBoundConnectionHeldUntilBodyClosed(t *testing.T) {
	srv, cs := newConnServer(t, false)
	tr := connTransport(srv, anyauth.ForOrigin(srv.URL, "alice", "pw"))
	defer tr.CloseIdleConnections()
	whoami(t, tr, nil, "GET", srv.URL+"/x", nil)
	conns := cs.connections.Load()
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	open, err := tr.RoundTrip(req) // body left open: its connection is busy
	if err != nil || open.StatusCode != 200 {
		t.Fatal(err, open)
	}
	if code, _ := whoami(t, tr, nil, "GET", srv.URL+"/x", nil); code != 200 {
		t.Fatal(code)
	}
	if n := cs.connections.Load() - conns; n != 1 {
		t.Errorf("%d new connections while one was busy, want 1", n)
	}
	open.Body.Close()
	conns = cs.connections.Load()
	for i := 0; i < 3; i++ {
		whoami(t, tr, nil, "GET", srv.URL+"/x", nil)
	}
	if n := cs.connections.Load() - conns; n != 0 {
		t.Errorf("%d new connections after both were released, want 0", n)
	}
}
