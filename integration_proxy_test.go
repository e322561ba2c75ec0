package anyauth_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// The Transport behind real Squid proxies (Basic and Digest ports), to
// plain-http targets and to https targets through CONNECT.

var (
	squidMu sync.Mutex
	squid   *testserver.Squid
)

// realSquid starts (once per test binary) and returns Squid. It is closed
// by TestMain through closeSquid.
func realSquid(t *testing.T) *testserver.Squid {
	t.Helper()
	squidMu.Lock()
	defer squidMu.Unlock()
	if squid != nil {
		return squid
	}
	s, err := testserver.StartSquid(testserver.SquidOptions{NTLM: true})
	if err != nil {
		if os.Getenv("CI") == "true" || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("squid: %v", err)
		}
		t.Skipf("squid not installed (run make test, which installs it): %v", err)
	}
	squid = s
	return s
}

func closeSquid() {
	squidMu.Lock()
	defer squidMu.Unlock()
	if squid != nil {
		squid.Close()
	}
}

func apacheTLS(t *testing.T) *testserver.Server {
	return realServer(t, "apache-tls", testserver.StartApacheTLS)
}

var proxyPorts = []string{testserver.SquidBasic, testserver.SquidDigest}

// proxyTransport is a Transport whose Base goes through Squid's port.
func proxyTransport(t *testing.T, sq *testserver.Squid, port string, tlsOrigin *testserver.Server, proxyPass string) *anyauth.Transport {
	proxy := sq.URL(port, nil)
	base := &http.Transport{Proxy: http.ProxyURL(proxy), DisableKeepAlives: true}
	if tlsOrigin != nil {
		base.TLSClientConfig = tlsOrigin.TLSConfig()
	}
	t.Cleanup(base.CloseIdleConnections)
	return &anyauth.Transport{
		Base:             base,
		Schemes:          []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.User, proxyPass),
		Logger:           testLogger(t),
	}
}

// squidHits waits until Squid has logged the tunnels and returns its
// count of method on port.
func squidHits(sq *testserver.Squid, port, method string) (total, refused int) {
	return sq.Count(port, method)
}

func TestSquidHTTPTarget(t *testing.T) {
	sq, origin := realSquid(t), apache(t)
	for _, port := range proxyPorts {
		t.Run(port, func(t *testing.T) {
			tr := proxyTransport(t, sq, port, nil, testserver.Password)
			before, before407 := squidHits(sq, port, "GET")
			for range 3 {
				mustGet(t, tr, origin.URL+"/index.txt", 200)
			}
			total, refused := squidHits(sq, port, "GET")
			if total-before != 4 || refused-before407 != 1 {
				t.Fatalf("Squid %s logged %d GETs (%d refused 407) for 3 requests, want 4 (1)", port, total-before, refused-before407)
			}
		})
	}
}

// TestSquidHTTPSTargetThroughConnect: each request opens a new tunnel
// (no keep-alive); the proxy's space is remembered, so N requests cost
// N+1 CONNECTs.
func TestSquidHTTPSTargetThroughConnect(t *testing.T) {
	sq, origin := realSquid(t), apacheTLS(t)
	const n = 5
	for _, port := range proxyPorts {
		t.Run(port, func(t *testing.T) {
			tr := proxyTransport(t, sq, port, origin, testserver.Password)
			before, before407 := squidHits(sq, port, "CONNECT")
			for range n {
				mustGet(t, tr, origin.URL+"/index.txt", 200)
			}
			tr.CloseIdleConnections()
			total, refused := squidHits(sq, port, "CONNECT")
			if total-before != n+1 || refused-before407 != 1 {
				t.Fatalf("Squid %s logged %d CONNECTs (%d refused 407) for %d https requests, want %d (1)", port, total-before, refused-before407, n, n+1)
			}
			for _, h := range sq.Hits() {
				if h.Method == "CONNECT" && h.Port == port {
					t.Logf("squid access log: %s %s/%d %s %s %s", h.Port, h.Result, h.Status, h.Method, h.Target, h.User)
				}
			}
		})
	}
}

// TestSquidProxyAndOriginInOneRequest: a plain-http request meets the
// proxy's 407, then the Digest origin's 401; both are answered.
func TestSquidProxyAndOriginInOneRequest(t *testing.T) {
	sq, origin := realSquid(t), apache(t)
	for _, port := range proxyPorts {
		t.Run(port, func(t *testing.T) {
			tr := proxyTransport(t, sq, port, nil, testserver.Password)
			tr.Credentials = anyauth.ForOrigin(origin.URL, testserver.User, testserver.Password)
			path := testserver.PathDigest + "index.txt?" + port
			originBefore, _ := origin.Hits(testserver.PathDigest)
			proxyBefore, proxy407 := squidHits(sq, port, "GET")
			mustGet(t, tr, origin.URL+path, 200)
			mustGet(t, tr, origin.URL+path, 200)
			proxyTotal, proxyRefused := squidHits(sq, port, "GET")
			originTotal, _ := origin.Hits(testserver.PathDigest)
			// 407, 401, 200, then 200 at once.
			if proxyTotal-proxyBefore != 4 || proxyRefused-proxy407 != 1 || originTotal-originBefore != 3 {
				t.Fatalf("proxy saw %d (%d refused), origin saw %d; want 4 (1) and 3", proxyTotal-proxyBefore, proxyRefused-proxy407, originTotal-originBefore)
			}
		})
	}
}

// TestSquidLargePostReplayed: a 300 KiB POST meets the proxy's 407 and
// the origin's 401, and is replayed whole. Squid stops answering when such
// a body is replayed on the connection of its 407; each attempt gets a
// connection of its own.
func TestSquidLargePostReplayed(t *testing.T) {
	sq, origin := realSquid(t), apache(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16)
	sum := sha256.Sum256(payload)
	for _, port := range proxyPorts {
		for _, kind := range []string{"GetBody", "stream"} {
			t.Run(port+"/"+kind, func(t *testing.T) {
				proxy := sq.URL(port, nil)
				base := &http.Transport{Proxy: http.ProxyURL(proxy)} // keep-alive on
				t.Cleanup(base.CloseIdleConnections)
				tr := &anyauth.Transport{
					Base:             base,
					Schemes:          []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
					Credentials:      anyauth.ForOrigin(origin.URL, testserver.User, testserver.Password),
					ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.User, testserver.Password),
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				var body io.Reader = bytes.NewReader(payload)
				if kind == "stream" {
					body = io.MultiReader(bytes.NewReader(payload)) // no GetBody, no Seek
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", origin.URL+testserver.PathBasic+"echo", body)
				start := time.Now()
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Fatalf("after %v: %v", time.Since(start), err)
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Logf("300 KiB POST through Squid %s (%s body): %d in %v", port, kind, resp.StatusCode, time.Since(start))
				if resp.StatusCode != 200 || !strings.Contains(string(got), hex.EncodeToString(sum[:])) {
					t.Fatalf("status %d, body %q", resp.StatusCode, got)
				}
			})
		}
	}
}

func TestSquidWrongProxyPassword(t *testing.T) {
	sq := realSquid(t)
	plain, tlsOrigin := apache(t), apacheTLS(t)
	for _, port := range proxyPorts {
		t.Run(port, func(t *testing.T) {
			tr := proxyTransport(t, sq, port, tlsOrigin, "wrong password")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			// A plain-http target: the proxy's last 407 comes back.
			req, _ := http.NewRequestWithContext(ctx, "GET", plain.URL+"/index.txt", nil)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 407 {
				t.Fatalf("http target: status %d, want 407", resp.StatusCode)
			}
			// An https target: a typed, permanent error.
			req, _ = http.NewRequestWithContext(ctx, "GET", tlsOrigin.URL+"/index.txt", nil)
			_, err = tr.RoundTrip(req)
			var pe *anyauth.ProxyConnectError
			if !errors.As(err, &pe) || pe.StatusCode != 407 || !anyauth.IsPermanent(err) || len(pe.Challenges) != 1 || pe.Header.Get("Proxy-Authenticate") == "" {
				t.Fatalf("https target: err = %v, want a permanent *ProxyConnectError with the 407's challenge", err)
			}
			if strings.Contains(err.Error(), "wrong password") {
				t.Fatal("the password is in the error")
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("took %v", took)
			}
		})
	}
}

// TestSquidHTTPSWithOriginDigest: through CONNECT to a TLS origin that
// wants Digest: the proxy is answered on the tunnel, the origin inside it.
func TestSquidHTTPSWithOriginDigest(t *testing.T) {
	sq, origin := realSquid(t), apacheTLS(t)
	tr := proxyTransport(t, sq, testserver.SquidDigest, origin, testserver.Password)
	tr.Credentials = anyauth.ForOrigin(origin.URL, testserver.User, testserver.Password)
	for range 3 {
		mustGet(t, tr, origin.URL+testserver.PathDigest+"index.txt", 200)
	}
	total, unauthorized := origin.Hits(testserver.PathDigest + "index.txt")
	if total != 4 || unauthorized != 1 {
		t.Fatalf("origin saw %d requests (%d refused), want 4 (1)", total, unauthorized)
	}
}

// testLogger sends the Transport's Debug records to t.Log, shown when a
// test fails or with -v.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t *testing.T }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
