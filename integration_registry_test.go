package anyauth_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// A real Docker registry (Debian's docker-registry, distribution 2.8)
// trusting the test's token server; started once per test binary.
var registryServer struct {
	once sync.Once
	r    *testserver.Registry
	err  error
}

func sharedRegistry(t *testing.T) *testserver.Registry {
	t.Helper()
	registryServer.once.Do(func() { registryServer.r, registryServer.err = testserver.StartRegistry(testserver.RegistryOptions{}) })
	if err := registryServer.err; err != nil {
		if testserver.InCI() || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("docker-registry: %v", err)
		}
		t.Skipf("docker-registry not installed (make test installs it): %v", err)
	}
	return registryServer.r
}

func closeRegistry() { registryServer.r.Close() }

// registryScheme answers reg's challenges, whose token server is on
// another origin (as auth.docker.io is for Docker Hub).
func registryScheme(reg *testserver.Registry) *schemes.Registry {
	u, _ := url.Parse(reg.TokenURL)
	return &schemes.Registry{Realms: anyauth.Origins{u.Scheme + "://" + u.Host}}
}

// tripCounter counts the round trips that reach the registry.
type tripCounter struct{ n atomic.Int64 }

func (c *tripCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// dockerConfigFor writes a config.json whose auths hold user and password
// for the registry, and returns a DockerConfig reading it for that
// registry only.
func dockerConfigFor(t *testing.T, reg *testserver.Registry, user, password string) *credhelper.DockerConfig {
	t.Helper()
	host := strings.TrimPrefix(reg.URL, "http://")
	cfg := map[string]any{"auths": map[string]any{host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))}}}
	data, _ := json.Marshal(cfg)
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return &credhelper.DockerConfig{Path: path, Registries: []string{reg.URL}}
}

// registryDo sends one request through tr and returns its status, the
// response's Location and body, and the round trips it took.
func registryDo(t *testing.T, tr http.RoundTripper, c *tripCounter, method, url, contentType string, body []byte) (int, string, []byte, int64) {
	t.Helper()
	before := c.n.Load()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("Accept", contentType)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), got, c.n.Load() - before
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestRegistryPushPullWithDockerConfig: with docker login's credentials
// read from a config.json (auths), the Transport pushes an image to a
// real registry (two blobs, then the manifest) and pulls it back,
// answering the registry's token challenges: one token for
// repository:team/app:pull,push (asked by the first upload), reused for
// the manifest's directory, and one for pull (asked by the blob GET);
// 12 round trips for 7 requests.
func TestRegistryPushPullWithDockerConfig(t *testing.T) {
	reg := sharedRegistry(t)
	c := &tripCounter{}
	tr := &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{registryScheme(reg)},
		Credentials: dockerConfigFor(t, reg, testserver.User, testserver.Password)}
	repo := fmt.Sprintf("%s/v2/team/app%d", reg.URL, len(reg.TokenRequests()))
	before := len(reg.TokenRequests())

	push := func(blob []byte) int64 {
		st, loc, body, trips1 := registryDo(t, tr, c, "POST", repo+"/blobs/uploads/", "", nil)
		if st != http.StatusAccepted || loc == "" {
			t.Fatalf("upload start: %d %s", st, body)
		}
		if !strings.HasPrefix(loc, "http") {
			loc = reg.URL + loc
		}
		sep := "?"
		if strings.Contains(loc, "?") {
			sep = "&"
		}
		st, _, body, trips2 := registryDo(t, tr, c, "PUT", loc+sep+"digest="+digestOf(blob), "application/octet-stream", blob)
		if st != http.StatusCreated {
			t.Fatalf("upload end: %d %s", st, body)
		}
		return trips1 + trips2
	}
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	layer := bytes.Repeat([]byte("anyauth layer "), 4096)
	tripsConfig := push(config)
	tripsLayer := push(layer)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
		"config": map[string]any{"mediaType": "application/vnd.docker.container.image.v1+json", "size": len(config), "digest": digestOf(config)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(layer), "digest": digestOf(layer)}},
	})
	const mt = "application/vnd.docker.distribution.manifest.v2+json"
	st, _, body, tripsPut := registryDo(t, tr, c, "PUT", repo+"/manifests/v1", mt, manifest)
	if st != http.StatusCreated {
		t.Fatalf("manifest PUT: %d %s", st, body)
	}
	st, _, got, tripsGet := registryDo(t, tr, c, "GET", repo+"/manifests/v1", mt, nil)
	if st != 200 || !bytes.Equal(got, manifest) {
		t.Fatalf("manifest GET: %d, %d bytes (want the %d pushed)", st, len(got), len(manifest))
	}
	st, _, got, tripsBlob := registryDo(t, tr, c, "GET", repo+"/blobs/"+digestOf(layer), "", nil)
	if st != 200 || !bytes.Equal(got, layer) {
		t.Fatalf("blob GET: %d, %d bytes", st, len(got))
	}
	tokens := reg.TokenRequests()[before:]
	t.Logf("round trips: config blob %d, layer blob %d, manifest PUT %d, manifest GET %d, blob GET %d; token requests %d:", tripsConfig, tripsLayer, tripsPut, tripsGet, tripsBlob, len(tokens))
	for _, tr := range tokens {
		t.Logf("  %s account %q scopes %q -> %d", tr.Method, tr.Account, tr.Scopes, tr.Status)
	}
	// The first upload: POST 401, POST 202, PUT 201 (its location is in
	// the POST's directory). The second: POST, PUT. The manifest PUT: 401
	// (a directory of its own; the pull,push token held), 201. Its GET:
	// 200. The blob GET: 401 asking for pull, a pull token, 200.
	if tripsConfig != 3 || tripsLayer != 2 || tripsPut != 2 || tripsGet != 1 || tripsBlob != 2 {
		t.Errorf("round trips %d, %d, %d, %d, %d; want 3, 2, 2, 1, 2", tripsConfig, tripsLayer, tripsPut, tripsGet, tripsBlob)
	}
	for _, tr := range tokens {
		if tr.Account != testserver.User || tr.Status != 200 {
			t.Errorf("token request %+v: want %s's, answered 200", tr, testserver.User)
		}
	}
	if len(tokens) != 2 {
		t.Errorf("%d token requests, want 2 (pull,push and pull)", len(tokens))
	}
}

// TestRegistryAnonymousAndRefusals, against the real registry: without
// credentials, a blob alice pushed under public/ is pulled with an
// anonymous token; an anonymous push meets insufficient_scope, asks for
// the scope once, and returns the registry's 401 in 3 round trips (no
// loop); a wrong
// password in config.json is the token server's 401 as a
// *schemes.RegistryTokenError.
func TestRegistryAnonymousAndRefusals(t *testing.T) {
	reg := sharedRegistry(t)
	c := &tripCounter{}
	alice := &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{registryScheme(reg)},
		Credentials: dockerConfigFor(t, reg, testserver.User, testserver.Password)}
	blob := []byte("public blob")
	repo := fmt.Sprintf("%s/v2/public/anon%d", reg.URL, len(reg.TokenRequests()))
	st, loc, body, _ := registryDo(t, alice, c, "POST", repo+"/blobs/uploads/", "", nil)
	if st != http.StatusAccepted {
		t.Fatalf("alice's upload: %d %s", st, body)
	}
	if !strings.HasPrefix(loc, "http") {
		loc = reg.URL + loc
	}
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	if st, _, body, _ := registryDo(t, alice, c, "PUT", loc+sep+"digest="+digestOf(blob), "application/octet-stream", blob); st != http.StatusCreated {
		t.Fatalf("alice's upload end: %d %s", st, body)
	}

	anon := &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{registryScheme(reg)}}
	before := len(reg.TokenRequests())
	st, _, got, trips := registryDo(t, anon, c, "GET", repo+"/blobs/"+digestOf(blob), "", nil)
	if st != 200 || !bytes.Equal(got, blob) || trips != 2 {
		t.Errorf("anonymous pull: %d, %q in %d round trips; want 200, the blob, 2", st, got, trips)
	}
	st, _, _, trips = registryDo(t, anon, c, "POST", repo+"/blobs/uploads/", "", nil)
	tokens := reg.TokenRequests()[before:]
	t.Logf("anonymous push: %d in %d round trips; token requests %+v", st, trips, tokens)
	// The pull token held for the blobs' directory goes first: 401
	// insufficient_scope for pull,push; an anonymous pull,push token (it
	// grants pull only): 401 again, the answer rejected; begun afresh with
	// the cached pull,push token: 401, and the Transport gives up.
	if st != 401 || trips != 3 || len(tokens) != 2 {
		t.Errorf("anonymous push: %d in %d round trips, %d token requests; want the registry's 401 in 3, 2 token requests", st, trips, len(tokens))
	}
	for _, tr := range tokens {
		if tr.Account != "" {
			t.Errorf("an anonymous token request carried the account %q", tr.Account)
		}
	}

	wrong := &anyauth.Transport{Base: c, Schemes: []anyauth.Scheme{registryScheme(reg)},
		Credentials: dockerConfigFor(t, reg, testserver.User, "SECRET-wrong")}
	req, _ := http.NewRequest("GET", repo+"/blobs/"+digestOf(blob), nil)
	_, err := wrong.RoundTrip(req)
	var te *schemes.RegistryTokenError
	t.Logf("wrong password: %v", err)
	if !errors.As(err, &te) || te.StatusCode != 401 || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("wrong password: %v, want a RegistryTokenError 401 without the password", err)
	}
}
