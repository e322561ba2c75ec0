package schemes

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
)

// This file holds helpers shared by the Digest tests.

// userPass is a CredentialProvider of one user name and password.
func userPass(user, pass string) anyauth.CredentialProvider {
	return anyauth.CredentialFunc(func(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		return &anyauth.UserPassword{Username: user, Password: pass}, nil
	})
}

// parseOne parses a header value that must hold exactly one challenge
// (an Authorization value parses as one).
func parseOne(t testing.TB, header string) *anyauth.Challenge {
	t.Helper()
	cs := anyauth.ParseChallenges(header)
	if len(cs) != 1 {
		t.Fatalf("%q parses into %d challenges, want 1", header, len(cs))
	}
	return &cs[0]
}

// begin starts a Digest session for challenge with the given credentials,
// for an origin space (or a proxy one when proxy is set).
func begin(t testing.TB, d Digest, challenge, user, pass string, proxy bool, logger *slog.Logger) *digestSession {
	t.Helper()
	c := parseOne(t, challenge)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/", nil)
	a := &anyauth.Attempt{
		Request:     req,
		Space:       anyauth.ProtectionSpace{Proxy: proxy, AuthScheme: "Digest", URLScheme: "http", Host: "example.org", Port: "80", Realm: c.Realm(), Path: "/"},
		Credentials: userPass(user, pass),
		Logger:      logger,
	}
	s, err := d.Begin(context.Background(), c, a)
	if err != nil {
		t.Fatalf("Begin(%q): %v", challenge, err)
	}
	return s.(*digestSession)
}

// params returns c's parameters as a map.
func params(c *anyauth.Challenge) map[string]string {
	m := make(map[string]string, len(c.Params))
	for _, p := range c.Params {
		m[p.Name] = p.Value
	}
	return m
}

// paramNames returns c's parameter names in order.
func paramNames(c *anyauth.Challenge) []string {
	var names []string
	for _, p := range c.Params {
		names = append(names, p.Name)
	}
	return names
}

// testLogger logs to t at Debug level.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// logBuffer captures log output for inspection.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLogger returns a Debug-level logger writing into a buffer.
func captureLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// The tests below the Transport drive a session through these shims,
// which keep the shape of per-request calls: Authorize runs a fresh Leg's
// Apply and remembers the Leg by the header it produced, so that Complete
// finds the Leg of the request a response answers, as the Transport does
// by keeping the Leg.

// shimLegs maps a header value that Authorize produced to its Leg.
var shimLegs sync.Map

// Authorize returns the header a fresh Leg applies to req.
func (s *digestSession) Authorize(req *http.Request) (string, error) {
	l := &digestLeg{s: s, lane: &s.digestLane}
	h, err := l.header(req)
	l.unhold() // the shim has no round trip to wait for
	if err == nil {
		shimLegs.Store(h, l)
	}
	return h, err
}

// Refresh is a Leg's Continue with challenge c.
func (s *digestSession) Refresh(c *anyauth.Challenge) bool { return s.adoptStale(&s.digestLane, c) }

// Complete is Finish on the Leg that produced resp.Request's answer; a
// rejection status is not passed on, as the Transport does not.
func (s *digestSession) Complete(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	if (s.proxy && resp.StatusCode == http.StatusProxyAuthRequired) || (!s.proxy && resp.StatusCode == http.StatusUnauthorized) {
		return nil
	}
	l := &digestLeg{s: s, lane: &s.digestLane}
	if resp.Request != nil {
		if v, ok := shimLegs.Load(resp.Request.Header.Get(s.answerHeader)); ok {
			l = v.(*digestLeg)
		}
	}
	if l.st == nil {
		l.st = s.state.Load() // nothing sent: Finish checks against nothing
	}
	return l.Finish(resp)
}
