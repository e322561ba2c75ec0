package sigv4

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// The fake S3 and Squid are started once per test binary, when a test
// first needs them, and closed by TestMain. Under CI=true a server that
// cannot start fails the test; elsewhere a missing one skips it.

var shared struct {
	mu       sync.Mutex
	s3       *testserver.S3rver
	s3Err    error
	squid    *testserver.Squid
	squidErr error
}

func TestMain(m *testing.M) {
	code := m.Run()
	shared.mu.Lock()
	shared.s3.Close()
	shared.squid.Close()
	shared.mu.Unlock()
	os.Exit(code)
}

// s3rver returns the shared fake S3.
func s3rver(t *testing.T) *testserver.S3rver {
	t.Helper()
	shared.mu.Lock()
	if shared.s3 == nil && shared.s3Err == nil {
		shared.s3, shared.s3Err = testserver.StartS3rver()
	}
	s, err := shared.s3, shared.s3Err
	shared.mu.Unlock()
	skipOrFail(t, "the fake S3 (s3rver, with node and npm)", err)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("s3rver log:\n%s", s.Log())
		}
	})
	return s
}

// squid returns the shared Squid.
func squid(t *testing.T) *testserver.Squid {
	t.Helper()
	shared.mu.Lock()
	if shared.squid == nil && shared.squidErr == nil {
		shared.squid, shared.squidErr = testserver.StartSquid(testserver.SquidOptions{})
	}
	s, err := shared.squid, shared.squidErr
	shared.mu.Unlock()
	skipOrFail(t, "Squid", err)
	return s
}

func skipOrFail(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, testserver.ErrNotInstalled) && !testserver.InCI() {
		t.Skipf("%s is not available (make test installs it): %v", what, err)
	}
	t.Fatalf("%s: %v", what, err)
}

// events returns the fake S3's events since the first n.
func events(s *testserver.S3rver, n int) []testserver.S3rverEvent {
	e := s.Events()
	if n > len(e) {
		return nil
	}
	return e[n:]
}

// trip is one round trip as the base transport saw it.
type trip struct {
	method, url   string
	date, auth    string
	contentSHA256 string
	status        int
}

// counting is a base RoundTripper that records every round trip.
type counting struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	trips []trip
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	tr := trip{method: req.Method, url: req.URL.String(), date: req.Header.Get("X-Amz-Date"),
		auth: req.Header.Get("Authorization"), contentSHA256: req.Header.Get("X-Amz-Content-Sha256")}
	if err == nil {
		tr.status = resp.StatusCode
	}
	c.mu.Lock()
	c.trips = append(c.trips, tr)
	c.mu.Unlock()
	return resp, err
}

func (c *counting) take() []trip {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.trips
	c.trips = nil
	return t
}

// logBuffer collects a Transport's log at Debug level, to check that no
// secret reaches it, and echoes it to the test's log.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.b.Write(p)
	l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog(t *testing.T) (*slog.Logger, *logBuffer) {
	b := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// readAll reads and closes resp's body.
func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
