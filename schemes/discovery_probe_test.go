package schemes_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// probeWorld is a resource whose challenge names no resource_metadata
// ("Bearer realm=api"), its metadata served at the well-known URL paths
// lists, and an authorization server, on httptest. It records every
// metadata request.
type probeWorld struct {
	rs, as  *httptest.Server
	serveAt []string // the well-known paths that answer
	mu      sync.Mutex
	fetched []string
	tokens  int
}

func newProbeWorld(t *testing.T, serveAt ...string) *probeWorld {
	w := &probeWorld{serveAt: serveAt}
	w.as = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			json.NewEncoder(rw).Encode(map[string]any{"issuer": w.as.URL, "token_endpoint": w.as.URL + "/token"})
		case "/token":
			w.mu.Lock()
			w.tokens++
			w.mu.Unlock()
			json.NewEncoder(rw).Encode(map[string]any{"access_token": "probe-tok", "token_type": "Bearer", "expires_in": 3600})
		}
	}))
	w.rs = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/.well-known/") {
			w.mu.Lock()
			w.fetched = append(w.fetched, r.URL.Path)
			w.mu.Unlock()
			if !slices.Contains(w.serveAt, r.URL.Path) {
				http.NotFound(rw, r)
				return
			}
			rw.Header().Set("Cache-Control", "max-age=300")
			json.NewEncoder(rw).Encode(map[string]any{"resource": w.rs.URL + "/mcp", "authorization_servers": []string{w.as.URL}})
			return
		}
		if r.Header.Get("Authorization") != "Bearer probe-tok" {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			rw.WriteHeader(401)
			return
		}
		fmt.Fprint(rw, "ok")
	}))
	t.Cleanup(w.rs.Close)
	t.Cleanup(w.as.Close)
	return w
}

func (w *probeWorld) discovery() *schemes.Discovery {
	return &schemes.Discovery{ClientID: "cid", ClientSecret: "SECRET-cs", Issuers: []string{w.as.URL}}
}

func (w *probeWorld) metadataFetches() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.fetched)
}

// TestDiscoveryProbesWellKnown: a challenge without resource_metadata
// makes Discovery try the path-inserted well-known URL, then the root
// one (RFC 9728 §3.1, the MCP order), and answer from the first that has
// the metadata. A second Transport sharing the Discovery asks nothing: the
// metadata is cached by its max-age, and a URL that answered 404 is not
// asked again.
func TestDiscoveryProbesWellKnown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		serveAt string
		first   []string // metadata requests of the first request
	}{
		{"path-inserted", "/.well-known/oauth-protected-resource/mcp/a", []string{"/.well-known/oauth-protected-resource/mcp/a"}},
		{"root", "/.well-known/oauth-protected-resource", []string{"/.well-known/oauth-protected-resource/mcp/a", "/.well-known/oauth-protected-resource"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newProbeWorld(t, tc.serveAt)
			d := w.discovery()
			if st := getStatus(t, &anyauth.Transport{Schemes: []anyauth.Scheme{d}}, w.rs.URL+"/mcp/a"); st != 200 {
				t.Fatalf("status %d", st)
			}
			first := w.metadataFetches()
			if st := getStatus(t, &anyauth.Transport{Schemes: []anyauth.Scheme{d}}, w.rs.URL+"/mcp/a"); st != 200 {
				t.Fatalf("second Transport: status %d", st)
			}
			second := w.metadataFetches()[len(first):]
			t.Logf("metadata requests: first %q, then %q; %d token", first, second, w.tokens)
			if !slices.Equal(first, tc.first) || len(second) != 0 || w.tokens != 1 {
				t.Errorf("metadata requests %q then %q, %d tokens; want %q then none, 1", first, second, w.tokens, tc.first)
			}
		})
	}
}

// TestDiscoveryProbeFindsNothing: with no metadata anywhere the server's
// 401 comes back, the skip says why (ErrNoCredentials), and the next
// request asks no well-known URL again; NoProbe asks none at all.
func TestDiscoveryProbeFindsNothing(t *testing.T) {
	w := newProbeWorld(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{w.discovery()}}
	for i := range 2 {
		d := &anyauth.Diagnosis{}
		req, _ := http.NewRequestWithContext(anyauth.WithDiagnosis(t.Context(), d), "GET", w.rs.URL+"/mcp/a", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		t.Logf("request %d: %d; %v; metadata requests %q", i, resp.StatusCode, d.Err(), w.metadataFetches())
		if resp.StatusCode != 401 || !strings.Contains(fmt.Sprint(d.Err()), "no metadata at") {
			t.Errorf("request %d: %d, %v; want the 401 and why", i, resp.StatusCode, d.Err())
		}
	}
	if n := len(w.metadataFetches()); n != 2 {
		t.Errorf("%d metadata requests for two requests, want 2 (the first request's)", n)
	}
	d := w.discovery()
	d.NoProbe = true
	w2 := newProbeWorld(t, "/.well-known/oauth-protected-resource")
	if st := getStatus(t, &anyauth.Transport{Schemes: []anyauth.Scheme{d}}, w2.rs.URL+"/mcp/a"); st != 401 || len(w2.metadataFetches()) != 0 {
		t.Errorf("NoProbe: %d, %d metadata requests; want 401, none", st, len(w2.metadataFetches()))
	}
}

// TestDiscoveryProbeYieldsToBearer: a Bearer configured for the origin
// answers its challenge; Discovery does not probe.
func TestDiscoveryProbeYieldsToBearer(t *testing.T) {
	w := newProbeWorld(t, "/.well-known/oauth-protected-resource")
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{w.discovery(), schemes.NewStaticBearer("probe-tok", w.rs.URL)}}
	if st := getStatus(t, tr, w.rs.URL+"/mcp/a"); st != 200 || len(w.metadataFetches()) != 0 {
		t.Errorf("%d, %d metadata requests; want 200 from the Bearer, none", st, len(w.metadataFetches()))
	}
}

// TestDiscoveryProbeOtherResource: the root metadata names /mcp; a
// challenge of /other/x is not answered with it (RFC 9728 §3.3), and the
// server's 401 comes back, not an error: the probe found another
// resource's metadata, not a forgery.
func TestDiscoveryProbeOtherResource(t *testing.T) {
	w := newProbeWorld(t, "/.well-known/oauth-protected-resource")
	req, _ := http.NewRequest("GET", w.rs.URL+"/other/x", nil)
	resp, err := (&anyauth.Transport{Schemes: []anyauth.Scheme{w.discovery()}}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || w.tokens != 0 {
		t.Errorf("%d, %d token requests; want the 401, none", resp.StatusCode, w.tokens)
	}
}
