package schemes_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// discoveryWorld is a resource server and an authorization server on
// httptest, each counting what it serves; its fields say what their
// metadata claims.
type discoveryWorld struct {
	rs, as                     *httptest.Server
	metaURL                    string // the resource_metadata the RS sends
	resource                   string // the "resource" its metadata claims
	asIssuer                   string // the "issuer" the AS metadata claims
	tokenEndpoint              string
	rsHits, metaHits, asMeta   atomic.Int64
	tokenHits                  atomic.Int64
	lastResourceParam, lastCID atomic.Value
}

func newDiscoveryWorld(t *testing.T) *discoveryWorld {
	w := &discoveryWorld{}
	w.as = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			http.NotFound(rw, r) // as oidc-provider: OpenID Connect discovery only
		case "/.well-known/openid-configuration":
			w.asMeta.Add(1)
			rw.Header().Set("Cache-Control", "max-age=300")
			json.NewEncoder(rw).Encode(map[string]any{"issuer": w.asIssuer, "token_endpoint": w.tokenEndpoint})
		case "/token":
			w.tokenHits.Add(1)
			r.ParseForm()
			id, _, _ := r.BasicAuth()
			w.lastCID.Store(id + r.Form.Get("client_id"))
			w.lastResourceParam.Store(r.Form.Get("resource"))
			json.NewEncoder(rw).Encode(map[string]any{"access_token": "disc-tok", "token_type": "Bearer", "expires_in": 3600})
		default:
			http.NotFound(rw, r)
		}
	}))
	w.rs = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/.well-known/oauth-protected-resource" {
			w.metaHits.Add(1)
			rw.Header().Set("Cache-Control", "max-age=300")
			json.NewEncoder(rw).Encode(map[string]any{"resource": w.resource, "authorization_servers": []string{w.as.URL}})
			return
		}
		w.rsHits.Add(1)
		if r.Header.Get("Authorization") != "Bearer disc-tok" {
			rw.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer resource_metadata=%q`, w.metaURL))
			rw.WriteHeader(401)
			return
		}
		fmt.Fprint(rw, "ok")
	}))
	t.Cleanup(w.rs.Close)
	t.Cleanup(w.as.Close)
	w.metaURL = w.rs.URL + "/.well-known/oauth-protected-resource"
	w.resource = w.rs.URL
	w.asIssuer = w.as.URL
	w.tokenEndpoint = w.as.URL + "/token"
	return w
}

func (w *discoveryWorld) transport(d *schemes.Discovery) *anyauth.Transport {
	if d == nil {
		d = &schemes.Discovery{ClientID: "cid", ClientSecret: "SECRET-cs", Issuers: []string{w.as.URL}}
	}
	return &anyauth.Transport{Schemes: []anyauth.Scheme{d}}
}

// TestDiscoveryFromTheChallenge: knowing only the resource URL, the
// client and the allowed issuer, a request gets its 200 in 2 round trips
// to the resource, 2 metadata fetches (resource, issuer; RFC 8414's URL
// answers 404 first) and 1 token request with the resource parameter; a
// second request fetches no metadata.
func TestDiscoveryFromTheChallenge(t *testing.T) {
	w := newDiscoveryWorld(t)
	tr := w.transport(nil)
	if st := getStatus(t, tr, w.rs.URL+"/api/x"); st != 200 {
		t.Fatalf("status %d", st)
	}
	t.Logf("first request: %d resource round trips, %d resource metadata, %d issuer metadata fetches, %d token requests", w.rsHits.Load(), w.metaHits.Load(), w.asMeta.Load(), w.tokenHits.Load())
	if w.rsHits.Load() != 2 || w.metaHits.Load() != 1 || w.asMeta.Load() != 1 || w.tokenHits.Load() != 1 {
		t.Errorf("want 2, 1, 1, 1")
	}
	if got := w.lastResourceParam.Load(); got != w.rs.URL {
		t.Errorf("resource parameter %q, want %q", got, w.rs.URL)
	}
	if st := getStatus(t, tr, w.rs.URL+"/api/y"); st != 200 {
		t.Fatalf("second request: status %d", st)
	}
	if w.rsHits.Load() != 3 || w.metaHits.Load() != 1 || w.asMeta.Load() != 1 || w.tokenHits.Load() != 1 {
		t.Errorf("second request: %d resource round trips in all, %d+%d metadata fetches, %d token requests; want 3, 1+1, 1",
			w.rsHits.Load(), w.metaHits.Load(), w.asMeta.Load(), w.tokenHits.Load())
	}
}

// TestDiscoveryRules: each security rule refuses with ErrDiscoveryRefused,
// and the client's credentials reach no token endpoint.
func TestDiscoveryRules(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(w *discoveryWorld, d *schemes.Discovery)
		want   string
	}{
		{"issuer not allowed", func(w *discoveryWorld, d *schemes.Discovery) { d.Issuers = []string{"https://as.other.example"} }, "Discovery.Issuers"},
		{"metadata on another origin", func(w *discoveryWorld, d *schemes.Discovery) {
			w.metaURL = w.as.URL + "/.well-known/oauth-protected-resource"
		}, "another origin"},
		{"metadata names another resource", func(w *discoveryWorld, d *schemes.Discovery) { w.resource = "https://api.other.example" }, "names the resource"},
		{"metadata naming a sibling path", func(w *discoveryWorld, d *schemes.Discovery) { w.resource = w.rs.URL + "/ap" }, "names the resource"},
		{"issuer metadata names another issuer", func(w *discoveryWorld, d *schemes.Discovery) { w.asIssuer = "https://evil.example" }, "names the issuer"},
		{"metadata over plain http to a remote host", func(w *discoveryWorld, d *schemes.Discovery) {
			w.metaURL, d.AllowCrossOriginMetadata = "http://metadata.example/.well-known/oauth-protected-resource", true
		}, "plain http"},
		{"token endpoint over plain http to a remote host", func(w *discoveryWorld, d *schemes.Discovery) { w.tokenEndpoint = "http://as.example/token" }, "plain http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newDiscoveryWorld(t)
			d := &schemes.Discovery{ClientID: "cid", ClientSecret: "SECRET-cs", Issuers: []string{w.as.URL}}
			tc.change(w, d)
			req, _ := http.NewRequest("GET", w.rs.URL+"/api/x", nil)
			resp, err := w.transport(d).RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("status %d, want an error", resp.StatusCode)
			}
			if !errors.Is(err, schemes.ErrDiscoveryRefused) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want ErrDiscoveryRefused saying %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("the secret is in the error")
			}
			if n := w.tokenHits.Load(); n != 0 {
				t.Errorf("%d token requests: the client's credentials were sent", n)
			}
		})
	}
}

// TestDiscoveryCrossOriginAllowed: the user may allow metadata elsewhere.
func TestDiscoveryCrossOriginAllowed(t *testing.T) {
	w := newDiscoveryWorld(t)
	meta := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		json.NewEncoder(rw).Encode(map[string]any{"resource": w.rs.URL, "authorization_servers": []string{w.as.URL}})
	}))
	defer meta.Close()
	w.metaURL = meta.URL + "/.well-known/oauth-protected-resource"
	d := &schemes.Discovery{ClientID: "cid", ClientSecret: "SECRET-cs", Issuers: []string{w.as.URL}, AllowCrossOriginMetadata: true}
	if st := getStatus(t, w.transport(d), w.rs.URL+"/api/x"); st != 200 {
		t.Fatalf("status %d", st)
	}
	if s := fmt.Sprintf("%v %+v %#v", d, d, d); strings.Contains(s, "SECRET") {
		t.Errorf("Discovery prints its secret: %s", s)
	}
}

// TestDiscoveryMetadataCache: a second Transport on the same Discovery
// (a new protection-space cache, so discovery runs again) reuses the
// metadata while its max-age lasts; "no-store" metadata is fetched anew.
func TestDiscoveryMetadataCache(t *testing.T) {
	for _, tc := range []struct {
		cacheControl string
		want         int64
	}{{"max-age=300", 1}, {"no-store", 2}} {
		w := newDiscoveryWorld(t)
		meta := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.metaHits.Add(1)
			rw.Header().Set("Cache-Control", tc.cacheControl)
			json.NewEncoder(rw).Encode(map[string]any{"resource": w.rs.URL, "authorization_servers": []string{w.as.URL}})
		}))
		defer meta.Close()
		w.metaURL = meta.URL + "/.well-known/oauth-protected-resource"
		d := &schemes.Discovery{ClientID: "cid", ClientSecret: "SECRET-cs", Issuers: []string{w.as.URL}, AllowCrossOriginMetadata: true}
		for range 2 {
			if st := getStatus(t, w.transport(d), w.rs.URL+"/api/x"); st != 200 {
				t.Fatalf("status %d", st)
			}
		}
		t.Logf("Cache-Control %s: %d resource metadata fetches for two Transports", tc.cacheControl, w.metaHits.Load())
		if n := w.metaHits.Load(); n != tc.want {
			t.Errorf("Cache-Control %s: %d fetches, want %d", tc.cacheControl, n, tc.want)
		}
	}
}

// TestDiscoveryCoversTheResource: once the metadata has named the
// resource (here the whole origin), a challenge that points to it covers
// every path of the resource: a third directory gets the token without a
// 401 first, where the first two each met one.
func TestDiscoveryCoversTheResource(t *testing.T) {
	w := newDiscoveryWorld(t)
	tr := w.transport(nil)
	for _, tc := range []struct {
		path  string
		trips int64
	}{{"/api/x", 2}, {"/other/z", 2}, {"/third/q", 1}, {"/api/y", 1}} {
		before := w.rsHits.Load()
		if st := getStatus(t, tr, w.rs.URL+tc.path); st != 200 {
			t.Fatalf("%s: status %d", tc.path, st)
		}
		if n := w.rsHits.Load() - before; n != tc.trips {
			t.Errorf("%s: %d round trips, want %d", tc.path, n, tc.trips)
		}
	}
	if w.tokenHits.Load() != 1 || w.metaHits.Load() != 1 {
		t.Errorf("%d token requests, %d metadata fetches; want 1, 1", w.tokenHits.Load(), w.metaHits.Load())
	}
}
