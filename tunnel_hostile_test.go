package anyauth_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// CONNECT proxies that misbehave: endless heads, dripping 407 bodies,
// closing after a 407 without saying so, 1xx before the answer. The
// CONNECT rides the same exchange loop as every request, so each of these
// is bounded where every round trip is.

const basicProxyChallenge = `Basic realm="proxy"`

// wantPP is the Basic answer of tunnelTransport's proxy credentials.
func wantPP(auth string) bool { return auth == "Basic cHU6cHA=" }

// getThrough sends GET origin through tr with a deadline.
func getThrough(tr http.RoundTripper, url string, d time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

// a proxy's endless response head (one endless header line, or
// endless header lines) is cut at 1 MiB with a clear error, in well under
// 5 s, and grows the heap by far less than 16 MiB.
func TestConnectEndlessHeadIsBounded(t *testing.T) {
	line := strings.Repeat("a", 64<<10)
	for name, write := range map[string]func(c net.Conn){
		"one endless line": func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nX-Long: ")
			for {
				if _, err := io.WriteString(c, line); err != nil {
					return
				}
			}
		},
		"endless lines": func(c net.Conn) {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\n")
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(c, "X-%d: %s\r\n", i, line[:1000]); err != nil {
					return
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := newConnectProxy(t, func(int, string) proxyAnswer {
				return proxyAnswer{raw: func(c net.Conn) bool { write(c); return true }}
			})
			origin := newTLSOrigin(t, nil)
			tr, _ := tunnelTransport(t, p.url(), origin.Server)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			_, err := getThrough(tr, origin.URL, 10*time.Second)
			runtime.ReadMemStats(&after)
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "longer than") {
				t.Fatalf("err %v, want the head-too-long error", err)
			}
			// What was allocated in all bounds what the heap could grow by.
			growth := float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
			t.Logf("%s: %v after %v, %.1f MiB allocated in all", name, err, took.Round(time.Millisecond), growth)
			if took > 5*time.Second {
				t.Errorf("took %v, want under 5 s", took)
			}
			if growth > 16 {
				t.Errorf("heap grew by %.1f MiB, want under 16", growth)
			}
		})
	}
}

// a 407 whose body drips (1 byte per 100 ms) is given up after
// a short wait: the answer goes on a new connection, and the tunnel opens
// in well under 2 s.
func TestConnectDrippingChallengeBody(t *testing.T) {
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if wantPP(auth) {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{raw: func(c net.Conn) bool {
			io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: "+basicProxyChallenge+"\r\nContent-Length: 100\r\n\r\n")
			for range 100 {
				if _, err := io.WriteString(c, "x"); err != nil {
					return true
				}
				time.Sleep(100 * time.Millisecond)
			}
			return true
		}}
	})
	origin := newTLSOrigin(t, nil)
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	start := time.Now()
	resp, err := getThrough(tr, origin.URL, 8*time.Second)
	took := time.Since(start)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	conns, connects, _ := p.counts()
	t.Logf("tunnel open after %v: %d CONNECTs on %d connections", took.Round(time.Millisecond), connects, conns)
	if took > 2*time.Second || conns != 2 {
		t.Errorf("took %v on %d connections, want under 2 s on 2", took, conns)
	}
}

// a proxy that closes its connection after a 407, saying so
// only with Proxy-Connection: close, or not at all: the answer goes on a
// new connection (2 CONNECTs in all).
func TestConnectProxyClosesAfter407(t *testing.T) {
	for name, head := range map[string]string{
		"no header":              "",
		"Proxy-Connection close": "Proxy-Connection: close\r\n",
		"HTTP/1.0":               "",
	} {
		t.Run(name, func(t *testing.T) {
			proto := "HTTP/1.1"
			if name == "HTTP/1.0" {
				proto = "HTTP/1.0"
			}
			p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
				if wantPP(auth) {
					return proxyAnswer{status: 200}
				}
				return proxyAnswer{raw: func(c net.Conn) bool {
					io.WriteString(c, proto+" 407 Proxy Authentication Required\r\nProxy-Authenticate: "+basicProxyChallenge+"\r\n"+head+"Content-Length: 0\r\n\r\n")
					return true
				}}
			})
			origin := newTLSOrigin(t, nil)
			tr, _ := tunnelTransport(t, p.url(), origin.Server)
			resp, err := getThrough(tr, origin.URL, 5*time.Second)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%v %v", resp, err)
			}
			if _, connects, _ := p.counts(); connects != 2 {
				t.Errorf("%d CONNECTs, want 2", connects)
			}
		})
	}
}

// 1xx responses before the 407 and before the 200 are skipped
// (RFC 9110 §15.2).
func TestConnectSkips1xx(t *testing.T) {
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if wantPP(auth) {
			return proxyAnswer{status: 200, interim: true}
		}
		return proxyAnswer{status: 407, challenges: []string{basicProxyChallenge}, interim: true}
	})
	origin := newTLSOrigin(t, nil)
	tr, _ := tunnelTransport(t, p.url(), origin.Server)
	resp, err := getThrough(tr, origin.URL, 5*time.Second)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%v %v", resp, err)
	}
	if conns, connects, _ := p.counts(); conns != 1 || connects != 2 {
		t.Errorf("%d CONNECTs on %d connections, want 2 on 1", connects, conns)
	}
}

// Base's CONNECT hooks work as with net/http alone: the proxy
// sees ProxyConnectHeader (or what GetProxyConnectHeader returns), and
// OnProxyConnectResponse sees every response, the 407 and the 200.
func TestConnectHonoursBaseHooks(t *testing.T) {
	p := newConnectProxy(t, func(n int, auth string) proxyAnswer {
		if wantPP(auth) {
			return proxyAnswer{status: 200}
		}
		return proxyAnswer{status: 407, challenges: []string{basicProxyChallenge}}
	})
	origin := newTLSOrigin(t, nil)
	t.Run("ProxyConnectHeader", func(t *testing.T) {
		tr, base := tunnelTransport(t, p.url(), origin.Server)
		base.ProxyConnectHeader = http.Header{"X-Corp": {"yes"}, "User-Agent": {"corp-agent/1"}}
		var mu sync.Mutex
		var statuses []int
		base.OnProxyConnectResponse = func(_ context.Context, proxy *url.URL, req *http.Request, resp *http.Response) error {
			mu.Lock()
			statuses = append(statuses, resp.StatusCode)
			mu.Unlock()
			return nil
		}
		if resp, err := getThrough(tr, origin.URL, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		p.mu.Lock()
		headers := append([]http.Header(nil), p.headers...)
		p.mu.Unlock()
		for i, h := range headers {
			if h.Get("X-Corp") != "yes" || h.Get("User-Agent") != "corp-agent/1" {
				t.Errorf("CONNECT %d carried %v, want X-Corp: yes and the Base's User-Agent", i+1, h)
			}
		}
		if fmt.Sprint(statuses) != "[407 200]" {
			t.Errorf("OnProxyConnectResponse saw %v, want [407 200]", statuses)
		}
	})
	t.Run("GetProxyConnectHeader", func(t *testing.T) {
		tr, base := tunnelTransport(t, p.url(), origin.Server)
		base.ProxyConnectHeader = http.Header{"X-Ignored": {"yes"}}
		calls := 0
		base.GetProxyConnectHeader = func(_ context.Context, proxy *url.URL, target string) (http.Header, error) {
			calls++
			return http.Header{"X-Target": {target}}, nil
		}
		if resp, err := getThrough(tr, origin.URL, 5*time.Second); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%v %v", resp, err)
		}
		p.mu.Lock()
		last := p.headers[len(p.headers)-1]
		p.mu.Unlock()
		if calls == 0 || last.Get("X-Target") == "" || last.Get("X-Ignored") != "" {
			t.Errorf("GetProxyConnectHeader called %d times; the proxy saw %v", calls, last)
		}
		// Its error fails the request, as with net/http.
		tr, base = tunnelTransport(t, p.url(), origin.Server)
		base.GetProxyConnectHeader = func(context.Context, *url.URL, string) (http.Header, error) {
			return nil, errors.New("no header today")
		}
		if _, err := getThrough(tr, origin.URL, 5*time.Second); err == nil || !strings.Contains(err.Error(), "no header today") {
			t.Errorf("err %v, want GetProxyConnectHeader's", err)
		}
	})
}

// each reason a CONNECT's 407 goes unanswered is told apart,
// with what to do.
func TestProxyConnectErrorReasons(t *testing.T) {
	origin := newTLSOrigin(t, nil)
	proxyWith := func(challenge string) *connectProxy {
		return newConnectProxy(t, func(n int, auth string) proxyAnswer {
			if wantPP(auth) {
				return proxyAnswer{status: 200}
			}
			return proxyAnswer{status: 407, challenges: []string{challenge}}
		})
	}
	cases := []struct {
		name      string
		challenge string
		setup     func(tr *anyauth.Transport, proxy string)
		reason    anyauth.ProxyConnectReason
		says      string
	}{
		{"no credentials", basicProxyChallenge, func(tr *anyauth.Transport, _ string) { tr.ProxyCredentials = nil }, anyauth.ProxyNoCredentials, "set Transport.ProxyCredentials"},
		{"credentials for origins only", basicProxyChallenge, func(tr *anyauth.Transport, proxy string) {
			tr.ProxyCredentials = nil
			tr.Credentials = anyauth.ForOrigin(proxy, "pu", "pp")
		}, anyauth.ProxyNoCredentials, "Transport.Credentials answer origins only"},
		{"wrong password", basicProxyChallenge, func(tr *anyauth.Transport, proxy string) {
			tr.ProxyCredentials = anyauth.ForOrigin(proxy, "pu", "wrong")
		}, anyauth.ProxyRefused, "check the proxy user name and password"},
		{"no scheme", `Foo realm="proxy"`, func(*anyauth.Transport, string) {}, anyauth.ProxyNoScheme, "(Foo)"},
		{"budget spent", `Digest realm="proxy", nonce="n", qop="auth", stale=true`, func(*anyauth.Transport, string) {}, anyauth.ProxyBudgetSpent, "MaxAnswers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := proxyWith(c.challenge)
			tr, _ := tunnelTransport(t, p.url(), origin.Server)
			tr.Schemes = []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}
			c.setup(tr, withoutUser(p.url()))
			_, err := getThrough(tr, origin.URL, 5*time.Second)
			var pe *anyauth.ProxyConnectError
			if !errors.As(err, &pe) {
				t.Fatalf("err %v, want a *ProxyConnectError", err)
			}
			if pe.Reason != c.reason || !strings.Contains(err.Error(), c.says) || !anyauth.IsPermanent(err) {
				t.Errorf("reason %q, error %q; want %q saying %q, permanent", pe.Reason, err, c.reason, c.says)
			}
		})
	}
}
