package anyauth_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

func TestAllowDowngradeOptIn(t *testing.T) {
	srv, seen := recordingServer(t, func(n int, auth string) []string {
		if strings.HasPrefix(auth, "Basic") {
			return nil
		}
		return []string{`Strong nonce=1`, `Basic realm="r"`}
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}, fixedScheme{"Strong", 250, false}}, Credentials: anyCreds(), AllowDowngrade: true}
	if code, _ := get(t, tr, srv.URL+"/"); code != 200 || len(*seen) != 3 {
		t.Fatalf("status %d after %d round trips; with AllowDowngrade Basic follows the rejected Strong", code, len(*seen))
	}
}

// An https origin's credentials are not sent to http on the same host.
func TestHTTPSCredentialsNotSentToHTTP(t *testing.T) {
	plain := newBasicServer(t)
	secure := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="private"`)
			w.WriteHeader(401)
			return
		}
		http.Redirect(w, r, plain.URL+"/private/x", http.StatusFound)
	}))
	defer secure.Close()
	tr := &anyauth.Transport{Base: secure.Client().Transport, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(secure.URL, testUser, testPass)}
	client := &http.Client{Transport: tr}
	resp, err := client.Get(secure.URL + "/private/start")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want the http server's 401", resp.StatusCode)
	}
	plain.assertNoCredentials(t)
}

// endlessBody is a 401 body that never ends.
type endlessBody struct{ read atomic.Int64 }

func (e *endlessBody) Read(p []byte) (int, error) {
	e.read.Add(int64(len(p)))
	return len(p), nil
}
func (e *endlessBody) Close() error { return nil }

func TestEndless401BodyReadOnlyALittle(t *testing.T) {
	body := &endlessBody{}
	calls := 0
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			resp := fakeResponse(r, 401, "", "WWW-Authenticate", `Basic realm="r"`)
			resp.Body = body
			return resp, nil
		}
		return fakeResponse(r, 200, "ok"), nil
	})
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyCreds()}
	if code, _ := get(t, tr, "http://127.0.0.1:9/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if n := body.read.Load(); n > 128<<10 {
		t.Fatalf("read %d bytes of an endless 401 body", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeResponse answers r with status, the given header lines
// ("Name", "value", ...) and body.
func fakeResponse(r *http.Request, status int, body string, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}
}

// TestHostileChallengeHeaders sends huge and broken challenge headers
// through the Transport: each returns the 401 untouched, without a panic.
func TestHostileChallengeHeaders(t *testing.T) {
	headers := map[string][]string{
		"1 MiB realm":               {`Basic realm="` + strings.Repeat("a", 1<<20) + `"`},
		"20,000 challenges":         {strings.Repeat("Newauth realm=x, ", 20000)},
		"20,000 params":             {"Digest " + strings.Repeat("p=1, ", 20000)},
		"unbalanced quotes":         {strings.Repeat(`Digest realm="\`, 1000)},
		"invalid UTF-8 and control": {"Digest realm=\"\xff\xfe\x00\x01\", nonce=\x7f"},
		"many lines":                {strings.Repeat("x", 10), "Digest", "Basic", ",,,", `"`},
	}
	for name, values := range headers {
		t.Run(name, func(t *testing.T) {
			calls := 0
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls++
				resp := fakeResponse(r, 401, "no")
				resp.Header["Www-Authenticate"] = values
				return resp, nil
			})
			tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, Credentials: anyCreds()}
			code, body := get(t, tr, "http://127.0.0.1:9/")
			if code != 401 || body != "no" || calls > anyauth.DefaultMaxAnswers+1 {
				t.Fatalf("status %d %q after %d round trips", code, body, calls)
			}
		})
	}
}

// TestNoGoroutineLeak runs the main flows and checks that the goroutine
// count comes back once idle connections are closed.
func TestNoGoroutineLeak(t *testing.T) {
	srv := newBasicServer(t)
	base := &http.Transport{}
	before := runtime.NumGoroutine()
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass), MaxBodyBuffer: 8}
	for range 5 {
		get(t, tr, srv.URL+"/private/x")
		req, _ := http.NewRequest("POST", srv.URL+"/private/new", io.NopCloser(bytes.NewReader(make([]byte, 64))))
		if resp, err := tr.RoundTrip(req); err == nil {
			resp.Body.Close()
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req, _ = http.NewRequestWithContext(ctx, "GET", srv.URL+"/private/x", nil)
		tr.RoundTrip(req)
	}
	tr.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after\n%s", before, after, buf[:runtime.Stack(buf, true)])
	}
}

// FuzzTransport answers a fuzzed server: status, two challenge lines and
// Authentication-Info. RoundTrip must not panic, must stop within the
// budget, and must return a response or an error, never both.
func FuzzTransport(f *testing.F) {
	f.Add(401, `Digest realm="r", nonce="n", qop="auth, auth-int", algorithm=SHA-256`, `Basic realm="r"`, `nextnonce="x", rspauth="00"`)
	f.Add(401, `Digest realm="r", nonce="n", stale=true, algorithm=MD5-sess`, ``, ``)
	f.Add(407, `Basic realm="p"`, `Digest realm="p", nonce="1", domain="/a http://other/"`, ``)
	f.Add(200, `Negotiate abc==`, ``, `rspauth="zz"`)
	f.Fuzz(func(t *testing.T, status int, line1, line2, info string) {
		if status < 100 || status > 599 {
			status = 401
		}
		calls := 0
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			if r.Body != nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			return fakeResponse(r, status, "body",
				"Www-Authenticate", line1, "Www-Authenticate", line2,
				"Proxy-Authenticate", line1, "Proxy-Authenticate", line2,
				"Authentication-Info", info), nil
		})
		tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
			Credentials: anyCreds(), ProxyCredentials: anyCreds(), Proxy: http.ProxyURL(mustURL("http://127.0.0.1:3128"))}
		for range 2 {
			req, _ := http.NewRequest("POST", "http://127.0.0.1:9/a/b?q=1", strings.NewReader("payload"))
			resp, err := tr.RoundTrip(req)
			if (resp == nil) == (err == nil) {
				t.Fatalf("resp %v and err %v", resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		if calls > 2*(anyauth.DefaultMaxAnswers+1) {
			t.Fatalf("%d round trips for 2 requests", calls)
		}
	})
}
