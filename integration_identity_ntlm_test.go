package anyauth_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf16"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/ntlm"
)

// Regression tests for the identity of a connection-bound handshake that
// starts again on a pooled connection: when a server challenges once more
// on a connection that was authenticated, the new handshake must be made
// with the credentials of the request that rides it, never with the
// session that last succeeded in the space (which may be another user's).
// alice and bob alternate through one Transport, the user chosen by each
// request's context, and every response must name the requesting user.

// twoIDUserKey is the context key under which a request names its user.
type twoIDUserKey struct{}

// twoIDUsers are the two NTLM accounts, as the real NTLM Apache knows
// them: alice (testserver.User) and bob (testserver.NTLMSecondUser).
var twoIDUsers = map[string]*anyauth.UserPassword{
	testserver.User:           {Username: testserver.NTLMDomain + `\` + testserver.User, Password: testserver.Password},
	testserver.NTLMSecondUser: {Username: testserver.NTLMDomain + `\` + testserver.NTLMSecondUser, Password: testserver.NTLMSecondPassword},
}

// twoIDCredentials answers with the user the request's context names.
var twoIDCredentials = anyauth.CredentialFunc(func(ctx context.Context, _ *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	name, _ := ctx.Value(twoIDUserKey{}).(string)
	if up, ok := twoIDUsers[name]; ok {
		return up, nil
	}
	return nil, fmt.Errorf("%w: no user in the context", anyauth.ErrNoCredentials)
})

// twoIDUserOf returns the user request i of a sequence alternating alice
// and bob asks as.
func twoIDUserOf(i int) string {
	if i%2 == 0 {
		return testserver.User
	}
	return testserver.NTLMSecondUser
}

// twoIDTransport answers NTLM only, with twoIDCredentials, over an
// *http.Transport whose dials cc counts.
func twoIDTransport(t *testing.T) (*anyauth.Transport, *connCounter) {
	cc := &connCounter{}
	base := &http.Transport{DialContext: cc.dial}
	tr := &anyauth.Transport{
		Base:        base,
		Schemes:     []anyauth.Scheme{ntlm.New(ntlm.Options{})},
		Credentials: twoIDCredentials,
	}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(base.CloseIdleConnections)
	return tr, cc
}

// twoIDGet GETs url as user and returns the status and body.
func twoIDGet(rt http.RoundTripper, url, user string) (int, string, error) {
	ctx := context.WithValue(context.Background(), twoIDUserKey{}, user)
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// twoIDTally counts, per requesting user, the requests served as someone
// else (or not served), and keeps the first few of them.
type twoIDTally struct {
	mu      sync.Mutex
	total   map[string]int
	wrong   map[string]int
	samples []string
}

func (y *twoIDTally) add(i int, user string, status int, got string, err error) {
	y.mu.Lock()
	defer y.mu.Unlock()
	if y.total == nil {
		y.total, y.wrong = map[string]int{}, map[string]int{}
	}
	y.total[user]++
	if err == nil && status == http.StatusOK && got == user {
		return
	}
	y.wrong[user]++
	if len(y.samples) < 10 {
		what := fmt.Sprintf("%d served as %q", status, got)
		if err != nil {
			what = err.Error()
		}
		y.samples = append(y.samples, fmt.Sprintf("request %d as %s: %s", i, user, what))
	}
}

// check fails t when a request was not served as its own user, with the
// counts per user.
func (y *twoIDTally) check(t *testing.T, extra string) {
	t.Helper()
	y.mu.Lock()
	defer y.mu.Unlock()
	var parts []string
	wrong := 0
	for _, u := range []string{testserver.User, testserver.NTLMSecondUser} {
		if y.total[u] > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d of %d not served as %s", u, y.wrong[u], y.total[u], u))
			wrong += y.wrong[u]
		}
	}
	summary := strings.Join(parts, "; ") + " (" + extra + ")"
	if wrong > 0 {
		t.Errorf("%s\nfirst ones:\n  %s", summary, strings.Join(y.samples, "\n  "))
		return
	}
	t.Log(summary)
}

// twoIDRun sends n requests through rt to url, request i (from 0) as
// user(i), and tallies whom each was served as; servedAs reads that from
// the response body.
func twoIDRun(rt http.RoundTripper, url string, n int, user func(int) string, servedAs func(string) string) *twoIDTally {
	tally := &twoIDTally{}
	for i := 0; i < n; i++ {
		u := user(i)
		status, body, err := twoIDGet(rt, url, u)
		tally.add(i+1, u, status, servedAs(body), err)
	}
	return tally
}

func twoIDAliceOnly(int) string { return testserver.User }

// twoIDServedAs reads twoIDNTLMServer's body, "user=<name>".
func twoIDServedAs(body string) string { return strings.TrimPrefix(body, "user=") }

// TestNTLMTwoIdentitiesHTTPTest alternates alice and bob through one
// Transport against an httptest server that speaks enough NTLM to name
// the user of each connection's handshake (twoIDNTLMServer), and that
// forgets a connection's authentication after every 2 requests it
// served: the next request on that connection is challenged again, and
// the handshake runs again on it. Every request must be served as its
// own user, sequentially (20 each) and from 4 goroutines at once (10
// each, under -race). "alice only" is the control: one user through the
// same re-challenges.
func TestNTLMTwoIdentitiesHTTPTest(t *testing.T) {
	stats := func(srv *twoIDNTLMServer, cc *connCounter) string {
		return fmt.Sprintf("%d connections dialed, %d re-challenges of authenticated connections, %d handshakes",
			cc.dials.Load(), srv.rechallenges.Load(), srv.handshakes.Load())
	}
	t.Run("alice only", func(t *testing.T) {
		srv := newTwoIDNTLMServer(t, 2)
		tr, cc := twoIDTransport(t)
		twoIDRun(tr, srv.URL+"/whoami", 20, twoIDAliceOnly, twoIDServedAs).check(t, stats(srv, cc))
		if srv.rechallenges.Load() == 0 {
			t.Errorf("the server never challenged an authenticated connection again: the test did not exercise the re-handshake")
		}
	})
	t.Run("sequential", func(t *testing.T) {
		srv := newTwoIDNTLMServer(t, 2)
		tr, cc := twoIDTransport(t)
		twoIDRun(tr, srv.URL+"/whoami", 40, twoIDUserOf, twoIDServedAs).check(t, stats(srv, cc))
		if srv.rechallenges.Load() == 0 {
			t.Errorf("the server never challenged an authenticated connection again: the test did not exercise the re-handshake")
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		srv := newTwoIDNTLMServer(t, 2)
		tr, cc := twoIDTransport(t)
		var tally twoIDTally
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 10; i++ {
					user := twoIDUserOf(w + i)
					status, body, err := twoIDGet(tr, srv.URL+"/whoami", user)
					tally.add(w*10+i+1, user, status, twoIDServedAs(body), err)
				}
			}()
		}
		wg.Wait()
		tally.check(t, stats(srv, cc))
	})
}

// TestNTLMTwoIdentitiesApache alternates alice and bob, 20 requests each,
// through one Transport against the real NTLM Apache (mod_auth_gssapi
// with gss-ntlmssp, which checks the passwords).
//
// That Apache never challenges a request without Authorization on an
// authenticated connection (GssapiConnectionBound lets it in and
// MaxKeepAliveRequests is unlimited), so "direct" only guards that the
// two identities never share a connection. "forgetful" puts in front of
// it a relay (twoIDRelay) that moves each client connection to a new
// Apache connection after every 2 requests served: to the client, its
// authenticated connection is challenged again, and the handshake that
// follows on it, whose credentials Apache checks, must be the requesting
// user's. "forgetful, alice only" is the control: one user through the
// same relay, which must be served every time.
func TestNTLMTwoIdentitiesApache(t *testing.T) {
	srv := ntlmApache(t)
	path := testserver.PathNTLM + testserver.WhoamiPath
	forgetful := func(t *testing.T, n int, user func(int) string) {
		relay := startTwoIDRelay(t, strings.TrimPrefix(srv.URL, "http://"), 2)
		tr, cc := twoIDTransport(t)
		twoIDRun(tr, relay.url+path, n, user, remoteUser).check(t, fmt.Sprintf("%d connections dialed, %d Apache connections behind the relay",
			cc.dials.Load(), relay.upstreams.Load()))
		if relay.upstreams.Load() <= relay.clients.Load() {
			t.Errorf("the relay never moved a client connection to a new Apache connection: the test did not exercise the re-handshake")
		}
	}
	t.Run("direct", func(t *testing.T) {
		tr, cc := twoIDTransport(t)
		twoIDRun(tr, srv.URL+path, 40, twoIDUserOf, remoteUser).check(t, fmt.Sprintf("%d connections dialed", cc.dials.Load()))
	})
	t.Run("forgetful, alice only", func(t *testing.T) { forgetful(t, 20, twoIDAliceOnly) })
	t.Run("forgetful", func(t *testing.T) { forgetful(t, 40, twoIDUserOf) })
}

// twoIDNTLMServer is an httptest server that speaks enough NTLM to know
// who authenticated each connection; it does not check passwords.
type twoIDNTLMServer struct {
	*httptest.Server
	forgetAfter  int          // requests served per authentication
	handshakes   atomic.Int64 // authenticate messages accepted
	rechallenges atomic.Int64 // bare requests challenged on a connection that had been authenticated
}

// twoIDConnKey is the context key of a connection's twoIDConn.
type twoIDConnKey struct{}

// twoIDConn is the NTLM state of one server connection. Requests on a
// connection are sequential: the mutex is for the race detector's peace
// of mind only.
type twoIDConn struct {
	mu         sync.Mutex
	challenged bool   // a challenge message was sent, the authenticate message may come
	user       string // the user the connection is authenticated as, "" for none
	served     int    // requests served since the authentication
	wasAuthed  bool   // the connection was authenticated once
}

func newTwoIDNTLMServer(t *testing.T, forgetAfter int) *twoIDNTLMServer {
	s := &twoIDNTLMServer{forgetAfter: forgetAfter}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serveHTTP))
	s.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, twoIDConnKey{}, &twoIDConn{})
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func (s *twoIDNTLMServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	c := r.Context().Value(twoIDConnKey{}).(*twoIDConn)
	c.mu.Lock()
	defer c.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if auth == "" {
		if c.user == "" {
			if c.wasAuthed {
				s.rechallenges.Add(1)
			}
			c.challenged = false
			w.Header().Set("WWW-Authenticate", "NTLM")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.serve(w, c)
		return
	}
	scheme, token, _ := strings.Cut(auth, " ")
	msg, err := base64.StdEncoding.DecodeString(token)
	if !strings.EqualFold(scheme, "NTLM") || err != nil || len(msg) < 12 || string(msg[:8]) != "NTLMSSP\x00" {
		http.Error(w, "not an NTLM message", http.StatusBadRequest)
		return
	}
	// Any NTLM message starts the connection's authentication over.
	c.user, c.served = "", 0
	switch binary.LittleEndian.Uint32(msg[8:]) {
	case 1:
		c.challenged = true
		w.Header().Set("WWW-Authenticate", "NTLM "+base64.StdEncoding.EncodeToString(twoIDChallengeMessage()))
		w.WriteHeader(http.StatusUnauthorized)
	case 3:
		user, ok := twoIDAuthenticateUser(msg)
		if !c.challenged || !ok {
			// An authenticate message on a connection that got no
			// challenge message: the handshake was split.
			c.challenged = false
			w.Header().Set("WWW-Authenticate", "NTLM")
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		c.challenged, c.user, c.wasAuthed = false, user, true
		s.handshakes.Add(1)
		s.serve(w, c)
	default:
		http.Error(w, "unexpected NTLM message type", http.StatusBadRequest)
	}
}

// serve answers as c's user, and forgets the authentication after
// forgetAfter requests. c.mu is held.
func (s *twoIDNTLMServer) serve(w http.ResponseWriter, c *twoIDConn) {
	user := c.user
	c.served++
	if c.served >= s.forgetAfter {
		c.user, c.served = "", 0
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "user="+user)
}

// NTLM negotiate flags (MS-NLMP 2.2.2.5) of twoIDChallengeMessage.
const (
	twoIDFlagUnicode          = 0x00000001
	twoIDFlagRequestTarget    = 0x00000004
	twoIDFlagNTLM             = 0x00000200
	twoIDFlagAlwaysSign       = 0x00008000
	twoIDFlagTargetTypeDomain = 0x00010000
	twoIDFlagExtendedSession  = 0x00080000
	twoIDFlagTargetInfo       = 0x00800000
)

// twoIDChallengeMessage builds a CHALLENGE_MESSAGE (MS-NLMP 2.2.1.2):
// target name, flags, a random server challenge, and target info whose
// AV pairs end with MsvAvEOL.
func twoIDChallengeMessage() []byte {
	const header = 48
	target := twoIDUTF16(testserver.NTLMDomain)
	var info []byte
	av := func(id uint16, value []byte) {
		info = binary.LittleEndian.AppendUint16(info, id)
		info = binary.LittleEndian.AppendUint16(info, uint16(len(value)))
		info = append(info, value...)
	}
	av(2, target)                     // MsvAvNbDomainName
	av(1, twoIDUTF16("TWOIDWEB"))     // MsvAvNbComputerName
	av(4, twoIDUTF16("anyauth.test")) // MsvAvDnsDomainName
	av(0, nil)                        // MsvAvEOL
	msg := make([]byte, header, header+len(target)+len(info))
	copy(msg, "NTLMSSP\x00")
	binary.LittleEndian.PutUint32(msg[8:], 2)
	twoIDPutField(msg[12:], len(target), header)
	binary.LittleEndian.PutUint32(msg[20:], twoIDFlagUnicode|twoIDFlagRequestTarget|twoIDFlagNTLM|twoIDFlagAlwaysSign|
		twoIDFlagTargetTypeDomain|twoIDFlagExtendedSession|twoIDFlagTargetInfo)
	rand.Read(msg[24:32]) // the server challenge; 32..40 is reserved
	twoIDPutField(msg[40:], len(info), header+len(target))
	msg = append(msg, target...)
	return append(msg, info...)
}

// twoIDPutField writes a security buffer: length, maximum length, offset.
func twoIDPutField(b []byte, n, offset int) {
	binary.LittleEndian.PutUint16(b, uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(offset))
}

func twoIDUTF16(s string) []byte {
	var b []byte
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, u)
	}
	return b
}

// twoIDAuthenticateUser returns the UserName of an AUTHENTICATE_MESSAGE
// (MS-NLMP 2.2.1.3): its security buffer is at bytes 36..44, the
// negotiate flags at 60..64.
func twoIDAuthenticateUser(msg []byte) (string, bool) {
	if len(msg) < 64 || binary.LittleEndian.Uint32(msg[8:]) != 3 {
		return "", false
	}
	n := int(binary.LittleEndian.Uint16(msg[36:]))
	off := int(binary.LittleEndian.Uint32(msg[40:]))
	if n == 0 || off < 64 || off+n > len(msg) {
		return "", false
	}
	raw := msg[off : off+n]
	if binary.LittleEndian.Uint32(msg[60:])&twoIDFlagUnicode == 0 {
		return string(raw), true
	}
	if n%2 != 0 {
		return "", false
	}
	u := make([]uint16, n/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(raw[2*i:])
	}
	return string(utf16.Decode(u)), true
}

// twoIDRelay is an HTTP/1.1 relay in front of a server that binds
// authentication to connections. It forwards the requests of each client
// connection on one server connection, and after every forgetAfter
// requests served (any status but 401) it moves the client connection to
// a new server connection, which is not authenticated: to the client,
// the server forgot its connection's authentication. A negotiate message
// on a server connection that served a request also moves to a new one:
// mod_auth_gssapi 1.6 fails a handshake begun again on an established
// connection (a 401, "Mechanism needs continuation but neither
// GssapiConnectionBound nor GssapiUseSessions are configured"), where
// IIS starts it over, as twoIDNTLMServer does.
type twoIDRelay struct {
	url         string
	upstream    string
	forgetAfter int
	ln          net.Listener
	clients     atomic.Int64 // client connections accepted
	upstreams   atomic.Int64 // server connections dialed

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func startTwoIDRelay(t *testing.T, upstream string, forgetAfter int) *twoIDRelay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &twoIDRelay{url: "http://" + ln.Addr().String(), upstream: upstream, forgetAfter: forgetAfter, ln: ln, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *twoIDRelay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(c) {
			return
		}
		r.clients.Add(1)
		r.wg.Add(1)
		go r.relay(c)
	}
}

// track records c so that close closes it; it reports false, having
// closed c, once the relay is closed.
func (r *twoIDRelay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *twoIDRelay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
	c.Close()
}

func (r *twoIDRelay) relay(client net.Conn) {
	defer r.wg.Done()
	defer r.untrack(client)
	var up net.Conn
	var upr *bufio.Reader
	defer func() {
		if up != nil {
			r.untrack(up)
		}
	}()
	br := bufio.NewReader(client)
	served := 0 // requests served on up
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if up != nil && served > 0 && twoIDNegotiateMessage(req) {
			// A new handshake on an authenticated connection (see
			// twoIDRelay).
			r.untrack(up)
			up, upr, served = nil, nil, 0
		}
		if up == nil {
			c, err := net.Dial("tcp", r.upstream)
			if err != nil || !r.track(c) {
				return
			}
			r.upstreams.Add(1)
			up, upr = c, bufio.NewReader(c)
		}
		if err := req.Write(up); err != nil {
			return
		}
		resp, err := http.ReadResponse(upr, req)
		if err != nil {
			return
		}
		err = resp.Write(client)
		resp.Body.Close()
		if err != nil || resp.Close || req.Close {
			return
		}
		if resp.StatusCode != http.StatusUnauthorized {
			served++
			if served == r.forgetAfter {
				r.untrack(up)
				up, upr, served = nil, nil, 0
			}
		}
	}
}

// twoIDNegotiateMessage reports whether req carries an NTLM
// NEGOTIATE_MESSAGE, the first leg of a handshake.
func twoIDNegotiateMessage(req *http.Request) bool {
	_, token, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok {
		return false
	}
	msg, err := base64.StdEncoding.DecodeString(token)
	return err == nil && len(msg) >= 12 && string(msg[:8]) == "NTLMSSP\x00" && binary.LittleEndian.Uint32(msg[8:]) == 1
}

func (r *twoIDRelay) close() {
	r.ln.Close()
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
