package anyauth_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// fakeProxy is an http proxy that wants Basic proxy credentials and then
// plays the origin itself, wanting origin credentials of its own.
type fakeProxy struct {
	*httptest.Server
	mu   sync.Mutex
	seen []http.Header
}

func newFakeProxy(t *testing.T) *fakeProxy {
	p := &fakeProxy{}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.seen = append(p.seen, r.Header.Clone())
		p.mu.Unlock()
		if r.Header.Get("Proxy-Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("proxyuser:proxypass")) {
			w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		if u, pw, ok := r.BasicAuth(); !ok || u != testUser || pw != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="origin"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "through")
	}))
	t.Cleanup(p.Close)
	return p
}

func TestProxyAndOriginAnsweredSeparately(t *testing.T) {
	p := newFakeProxy(t)
	proxyURL, _ := url.Parse(p.URL)
	base := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer base.CloseIdleConnections()
	origin := "http://127.0.0.2:9" // never dialled: the proxy answers
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          []anyauth.Scheme{schemes.Basic{}},
		Credentials:      anyauth.ForOrigin(origin, testUser, testPass),
		ProxyCredentials: anyauth.ForOrigin(p.URL, "proxyuser", "proxypass"),
	}
	for range 2 {
		code, body := get(t, tr, origin+"/doc")
		if code != 200 || body != "through" {
			t.Fatalf("got %d %q", code, body)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	// 407, 401, 200, then 200 preemptively for both.
	if len(p.seen) != 4 {
		t.Fatalf("%d round trips, want 4", len(p.seen))
	}
	originCreds := "Basic " + base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPass))
	for i, h := range p.seen {
		if h.Get("Proxy-Authorization") == originCreds {
			t.Errorf("round trip %d: origin credentials sent as proxy credentials", i)
		}
		if a := h.Get("Authorization"); a != "" && a != originCreds {
			t.Errorf("round trip %d: Authorization %q", i, a)
		}
	}
	if p.seen[0].Get("Authorization") != "" || p.seen[1].Get("Authorization") != "" {
		t.Error("origin credentials sent before the origin asked")
	}
}

// headerRecorder is a Base that records the requests it is given and
// answers each with a fixed response.
type headerRecorder struct {
	mu      sync.Mutex
	headers []http.Header
	status  int
	header  string
	value   string
}

func (h *headerRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.headers = append(h.headers, r.Header.Clone())
	h.mu.Unlock()
	if r.Body != nil {
		r.Body.Close()
	}
	return fakeResponse(r, h.status, "", h.header, h.value), nil
}

func TestProxyAuthorizationNeverSetForHTTPS(t *testing.T) {
	rec := &headerRecorder{status: 407, header: "Proxy-Authenticate", value: `Basic realm="proxy"`}
	tr := &anyauth.Transport{
		Base:             rec,
		Proxy:            http.ProxyURL(&url.URL{Scheme: "http", Host: "127.0.0.1:3128"}),
		Schemes:          []anyauth.Scheme{schemes.Basic{}},
		ProxyCredentials: anyauth.CredentialTable{{Host: "*", Proxy: true, UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}},
	}
	// The same setup answers the 407 of a plain-http request...
	req, _ := http.NewRequest("GET", "http://127.0.0.1:8080/x", nil)
	if resp, err := tr.RoundTrip(req); err != nil || len(rec.headers) != 2 || rec.headers[1].Get("Proxy-Authorization") == "" {
		t.Fatalf("plain http 407 not answered: %v, %d round trips", err, len(rec.headers))
	} else {
		resp.Body.Close()
	}
	rec.headers = nil
	// ...but never that of an https one.
	req, _ = http.NewRequest("GET", "https://127.0.0.1:8443/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 407 || len(rec.headers) != 1 || rec.headers[0].Get("Proxy-Authorization") != "" {
		t.Fatalf("status %d after %d round trips: Proxy-Authorization must never ride inside a tunnel", resp.StatusCode, len(rec.headers))
	}
}

// A 407 from a server that is not our proxy (no proxy configured) is not
// answered: proxy credentials never go to an origin.
func TestOrigin407NotAnsweredWithProxyCredentials(t *testing.T) {
	var sent []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent = append(sent, r.Header.Get("Proxy-Authorization"))
		w.Header().Set("Proxy-Authenticate", `Basic realm="sneaky"`)
		w.WriteHeader(407)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, ProxyCredentials: anyCreds()}
	if code, _ := get(t, tr, srv.URL+"/"); code != 407 || len(sent) != 1 || sent[0] != "" {
		t.Fatalf("status %d, Proxy-Authorization sent: %q", code, sent)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// A corporate proxy configured with an http:// URL on a host that is not
// loopback (proxy.corp.example) gets Basic with its own credentials:
// writing http:// is the consent, as with curl -x. An origin's Basic still
// does not go in the clear to a host the user did not allow.
func TestNamedHTTPProxyIsAnsweredInTheClear(t *testing.T) {
	var seen []string
	var mu sync.Mutex
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Proxy-Authorization"))
		mu.Unlock()
		if u, pw, ok := parseProxyBasic(r); !ok || u != "proxyuser" || pw != "proxypass" {
			w.Header().Set("Proxy-Authenticate", `Basic realm="corp"`)
			w.WriteHeader(http.StatusProxyAuthRequired)
			return
		}
		if r.URL.Path == "/private" && r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="origin"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "through")
	}))
	defer p.Close()
	real := mustURL(p.URL).Host
	for _, how := range []string{"Base.Proxy", "Transport.Proxy"} {
		t.Run(how, func(t *testing.T) {
			base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, real)
			}}
			defer base.CloseIdleConnections()
			proxy := http.ProxyURL(mustURL("http://proxy.corp.example:3128"))
			tr := &anyauth.Transport{
				Base:             base,
				Schemes:          []anyauth.Scheme{schemes.Basic{}},
				Credentials:      anyauth.ForOrigin("http://origin.example", testUser, testPass),
				ProxyCredentials: anyauth.ForOrigin("http://proxy.corp.example:3128", "proxyuser", "proxypass"),
			}
			if how == "Base.Proxy" {
				base.Proxy = proxy
			} else {
				tr.Proxy = proxy
			}
			if code, body := get(t, tr, "http://origin.example/doc"); code != 200 || body != "through" {
				t.Fatalf("through the named proxy: %d %q", code, body)
			}
			// The origin's own Basic over plain http to origin.example
			// is still refused.
			req, _ := http.NewRequest("GET", "http://origin.example/private", nil)
			_, err := tr.RoundTrip(req)
			var ce *anyauth.CleartextError
			if !errors.As(err, &ce) || ce.Host != "origin.example" {
				t.Fatalf("origin Basic in the clear: err = %v, want a CleartextError for origin.example", err)
			}
		})
	}
}

func parseProxyBasic(r *http.Request) (user, pass string, ok bool) {
	r2 := &http.Request{Header: http.Header{"Authorization": r.Header.Values("Proxy-Authorization")}}
	return r2.BasicAuth()
}
