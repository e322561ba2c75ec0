package anyauth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
)

// NTLM against Apache mod_auth_gssapi with gss-ntlmssp, which checks the
// password and binds the authentication to the TCP connection.

func ntlmApache(t *testing.T) *testserver.Server {
	return realServer(t, "apache-ntlm", testserver.StartNTLMApache)
}

// connCounter counts the TCP connections a Base dials and, for requests
// made with its context, the round trips written on the wire (legs
// included, on any connection).
type connCounter struct {
	dials atomic.Int64
	trips atomic.Int64
}

// ctx returns a context whose requests count their round trips.
func (c *connCounter) ctx() context.Context {
	return httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { c.trips.Add(1) },
	})
}

func (c *connCounter) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c.dials.Add(1)
	return (&net.Dialer{}).DialContext(ctx, network, addr)
}

// ntlmTransport answers NTLM (both names) and Digest/Basic with creds.
func ntlmTransport(t *testing.T, creds anyauth.CredentialProvider) (*anyauth.Transport, *connCounter) {
	cc := &connCounter{}
	base := &http.Transport{DialContext: cc.dial}
	tr := &anyauth.Transport{
		Base:        base,
		Schemes:     append(ntlm.Schemes(ntlm.Options{}), schemes.Digest{}, schemes.Basic{}),
		Credentials: creds,
	}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(base.CloseIdleConnections)
	return tr, cc
}

// whoami GETs or POSTs url and returns the status and body; cc, if not
// nil, counts its round trips.
func whoami(t *testing.T, rt http.RoundTripper, cc *connCounter, method, url string, body []byte) (int, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	ctx := context.Background()
	if cc != nil {
		ctx = cc.ctx()
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, r)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

func TestNTLMApache(t *testing.T) {
	srv := ntlmApache(t)
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	for _, tc := range []struct {
		name    string
		schemes []anyauth.Scheme
		user    string
		want    string // the scheme that must have answered
	}{
		{"NTLM header, DOMAIN\\user", []anyauth.Scheme{ntlm.New(ntlm.Options{})}, testserver.NTLMDomain + `\` + testserver.User, "NTLM"},
		{"NTLM header, user@domain", []anyauth.Scheme{ntlm.New(ntlm.Options{})}, testserver.User + "@" + testserver.NTLMDomain, "NTLM"},
		{"NTLM header, domain from Options", []anyauth.Scheme{ntlm.New(ntlm.Options{Domain: testserver.NTLMDomain})}, testserver.User, "NTLM"},
		{"inside Negotiate", []anyauth.Scheme{ntlm.NewNegotiate(ntlm.Options{})}, testserver.NTLMDomain + `\` + testserver.User, "Negotiate"},
		{"both offered: plain NTLM ranks first", ntlm.Schemes(ntlm.Options{}), testserver.NTLMDomain + `\` + testserver.User, "NTLM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &connCounter{}
			logs := &logBuffer{}
			tr := &anyauth.Transport{
				Base:        &http.Transport{DialContext: cc.dial},
				Schemes:     tc.schemes,
				Credentials: anyauth.ForOrigin(srv.URL, tc.user, testserver.Password),
				Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}
			defer tr.CloseIdleConnections()
			status, body := whoami(t, tr, cc, "GET", url, nil)
			if status != 200 || remoteUser(body) != testserver.User {
				t.Fatalf("got %d %q, want 200 %q", status, body, testserver.User)
			}
			after := cc.trips.Load()
			t.Logf("first request: %d round trips, %d connections", after, cc.dials.Load())
			if after != 3 {
				t.Errorf("first request took %d round trips, want 3 (bare, then negotiate and authenticate on an owned connection)", after)
			}
			// The next requests ride the authenticated connection.
			for i := 0; i < 3; i++ {
				if status, body := whoami(t, tr, cc, "GET", url, nil); status != 200 || remoteUser(body) != testserver.User {
					t.Fatalf("request %d: %d %q", i+2, status, body)
				}
			}
			if n := cc.trips.Load() - after; n != 3 {
				t.Errorf("3 more requests took %d round trips, want 3", n)
			}
			if d := cc.dials.Load(); d != 2 {
				t.Errorf("%d connections dialed, want 2 (the bare request's, and the authenticated one)", d)
			}
			if want := "msg=\"anyauth: chosen\" scheme=" + tc.want + " "; !strings.Contains(logs.String(), want) {
				t.Errorf("no %q in the log:\n%s", want, logs)
			}
		})
	}
}

// remoteUser returns the user name the whoami CGI printed, without the
// NetBIOS domain that gss-ntlmssp puts before it.
func remoteUser(body string) string {
	first, _, _ := strings.Cut(body, "\n")
	return strings.TrimPrefix(first, testserver.NTLMDomain+`\`)
}

// logBuffer collects a Transport's debug log.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestNTLMRefusals(t *testing.T) {
	srv := ntlmApache(t)
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	for _, tc := range []struct{ name, user, pass string }{
		{"wrong password", testserver.NTLMDomain + `\` + testserver.User, "not the password"},
		{"unknown user", testserver.NTLMDomain + `\mallory`, testserver.Password},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, cc := ntlmTransport(t, anyauth.ForOrigin(srv.URL, tc.user, tc.pass))
			tr.Logger = testLogger(t)
			req, _ := http.NewRequest("GET", url, nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatalf("want the server's 401, got error %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("got %s %q, want 401", resp.Status, body)
			}
			// Plain NTLM was refused; Negotiate-NTLM ranks lower and is
			// not tried (no downgrade), so one handshake was made.
			t.Logf("refused after %d connections", cc.dials.Load())
			if d := cc.dials.Load(); d != 2 {
				t.Errorf("%d connections, want 2 (the bare request, one handshake)", d)
			}
			// The refused connection was not kept: the next request
			// goes bare again and is refused again.
			if status, _ := whoami(t, tr, nil, "GET", url, nil); status != 401 {
				t.Errorf("second request: %d, want 401", status)
			}
		})
	}
}

func TestNTLMLargeChallengeBody(t *testing.T) {
	srv := ntlmApache(t)
	tr, cc := ntlmTransport(t, anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password))
	status, body := whoami(t, tr, nil, "GET", srv.URL+testserver.PathNTLMBig+testserver.WhoamiPath, nil)
	if status != 200 || remoteUser(body) != testserver.User {
		t.Fatalf("got %d %q, want 200 alice (401 bodies of %d bytes)", status, truncateBody(body), testserver.NTLMBig401Size)
	}
	t.Logf("%d connections for a handshake whose 401s carry %d KiB", cc.dials.Load(), testserver.NTLMBig401Size>>10)
	if d := cc.dials.Load(); d != 2 {
		t.Errorf("%d connections, want 2: the owned connection must survive the long 401 bodies", d)
	}
}

func truncateBody(s string) string {
	if len(s) > 4000 {
		return s[:4000] + "…"
	}
	return s
}

func TestNTLMPostBodyReplayed(t *testing.T) {
	srv := ntlmApache(t)
	tr, cc := ntlmTransport(t, anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16) // 300 KiB
	sum := sha256.Sum256(payload)
	want := fmt.Sprintf("body %d %s", len(payload), hex.EncodeToString(sum[:]))
	for i := 0; i < 2; i++ { // the first handshakes, the second rides the connection
		status, body := whoami(t, tr, cc, "POST", srv.URL+testserver.PathNTLM+testserver.WhoamiPath, payload)
		if status != 200 || !strings.Contains(body, want) {
			t.Fatalf("POST %d: %d %q, want 200 with %q", i+1, status, body, want)
		}
	}
	t.Logf("two 300 KiB POSTs: %d round trips", cc.trips.Load())
	if n := cc.trips.Load(); n != 4 {
		t.Errorf("%d round trips, want 4 (bare, negotiate without the body, authenticate; then 1)", n)
	}
}

func TestNTLMConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("64 × 10 requests")
	}
	srv := ntlmApache(t)
	tr, cc := ntlmTransport(t, anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password))
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	const workers, each = 64, 10
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				req, _ := http.NewRequestWithContext(cc.ctx(), "GET", url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || remoteUser(string(b)) != testserver.User {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%s %q", resp.Status, b))
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d × %d requests: %d failed, %d round trips, %d connections dialed", workers, each, failed.Load(), cc.trips.Load(), cc.dials.Load())
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d failed; first: %v\nserver error log:\n%s", n, workers*each, firstErr.Load(), truncateBody(srv.ErrorLog()[max(0, len(srv.ErrorLog())-3000):]))
	}
}

// TestNTLMIdentitiesNeverShareAConnection runs alice and bob through one
// Transport at once: the credentials come from each request's context.
// The server names the user its connection authenticated, so a request
// that rode the other identity's connection would say so.
func TestNTLMIdentitiesNeverShareAConnection(t *testing.T) {
	srv := ntlmApache(t)
	type userKey struct{}
	creds := anyauth.CredentialFunc(func(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		if u, ok := ctx.Value(userKey{}).(*anyauth.UserPassword); ok {
			return u, nil
		}
		return nil, anyauth.ErrNoCredentials
	})
	tr, cc := ntlmTransport(t, creds)
	users := map[string]*anyauth.UserPassword{
		testserver.User:           {Username: testserver.NTLMDomain + `\` + testserver.User, Password: testserver.Password},
		testserver.NTLMSecondUser: {Username: testserver.NTLMDomain + `\` + testserver.NTLMSecondUser, Password: testserver.NTLMSecondPassword},
	}
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	var wrong atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				name := testserver.User
				if (w+i)%2 == 1 {
					name = testserver.NTLMSecondUser
				}
				ctx := context.WithValue(context.Background(), userKey{}, users[name])
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := remoteUser(string(b)); resp.StatusCode != 200 || got != name {
					wrong.Add(1)
					t.Errorf("request as %s: %s, server says %q", name, resp.Status, got)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("160 requests as two users: %d answered as the wrong user, %d connections", wrong.Load(), cc.dials.Load())
}

func TestNTLMNeedsAnHTTPTransportBase(t *testing.T) {
	srv := ntlmApache(t)
	tr := &anyauth.Transport{
		Base:        roundTripFunc(http.DefaultTransport.RoundTrip),
		Schemes:     ntlm.Schemes(ntlm.Options{}),
		Credentials: anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password),
	}
	status, _ := whoami(t, tr, nil, "GET", srv.URL+testserver.PathNTLM+testserver.WhoamiPath, nil)
	if status != 401 {
		t.Fatalf("got %d, want the server's 401 untouched: NTLM cannot own connections over this Base", status)
	}
}

// TestNTLMInsideNegotiateWhenKerberosHasNoTicket: Kerberos ranks first
// for "Negotiate", has no ticket and steps aside; NTLM inside Negotiate
// answers the same challenge.
func TestNTLMInsideNegotiateWhenKerberosHasNoTicket(t *testing.T) {
	srv := ntlmApache(t)
	logs := &logBuffer{}
	cc := &connCounter{}
	tr := &anyauth.Transport{
		Base: &http.Transport{DialContext: cc.dial},
		Schemes: []anyauth.Scheme{
			&negotiate.Kerberos{CCache: "FILE:" + filepath.Join(t.TempDir(), "no-such-ccache"), IgnoreTransportCredentials: true},
			ntlm.NewNegotiate(ntlm.Options{}),
		},
		Credentials: anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password),
		Logger:      slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	defer tr.CloseIdleConnections()
	status, body := whoami(t, tr, cc, "GET", srv.URL+testserver.PathNTLM+testserver.WhoamiPath, nil)
	if status != 200 || remoteUser(body) != testserver.User {
		t.Fatalf("got %d %q\n%s", status, body, logs)
	}
	log := logs.String()
	// Without a ticket Kerberos does not even rank (its Strength says
	// so, without blocking); NTLM inside Negotiate is the only candidate.
	for _, want := range []string{"msg=\"anyauth: skipped\" scheme=Negotiate why=\"scheme cannot answer this challenge\"", "order=Negotiate[279]", "msg=\"anyauth: chosen\" scheme=Negotiate strength=279"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if n := cc.trips.Load(); n != 3 {
		t.Errorf("%d round trips, want 3", n)
	}
}

// TestNTLMOverHTTPS: the handshake rides an owned TLS connection (ALPN
// http/1.1) and the authenticated connection is reused.
func TestNTLMOverHTTPS(t *testing.T) {
	srv := realServer(t, "apache-ntlm-tls", testserver.StartNTLMApacheTLS)
	cc := &connCounter{}
	base := &http.Transport{DialContext: cc.dial, TLSClientConfig: srv.TLSConfig(), ForceAttemptHTTP2: true}
	tr := &anyauth.Transport{
		Base:        base,
		Schemes:     ntlm.Schemes(ntlm.Options{}),
		Credentials: anyauth.ForOrigin(srv.URL, testserver.NTLMDomain+`\`+testserver.User, testserver.Password),
	}
	defer tr.CloseIdleConnections()
	defer base.CloseIdleConnections()
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	for i := 0; i < 3; i++ {
		if status, body := whoami(t, tr, cc, "GET", url, nil); status != 200 || remoteUser(body) != testserver.User {
			t.Fatalf("request %d: %d %q", i+1, status, body)
		}
	}
	t.Logf("3 https requests: %d round trips, %d TCP connections", cc.trips.Load(), cc.dials.Load())
	if n, d := cc.trips.Load(), cc.dials.Load(); n != 5 || d != 2 {
		t.Errorf("%d round trips on %d connections, want 5 on 2", n, d)
	}
}
