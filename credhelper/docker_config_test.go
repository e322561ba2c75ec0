package credhelper_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// writeDockerConfig writes config.json in dir and returns its path.
func writeDockerConfig(t *testing.T, dir, content string) string {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fakeDockerHelpers puts a directory on PATH holding
// docker-credential-NAME for each name of helpers: a helper that logs
// "NAME get SERVER" to $DOCKER_HELPER_LOG and answers every server with
// its user name and password, or, for an empty user name, answers none.
func fakeDockerHelpers(t *testing.T, helpers map[string]anyauth.UserPassword) {
	t.Helper()
	dir := t.TempDir()
	for name, up := range helpers {
		answer := `printf '{"ServerURL":"%s","Username":"` + up.Username + `","Secret":"` + up.Password + `"}\n' "$server"`
		if up.Username == "" {
			answer = `echo "credentials not found in native keychain"; exit 1`
		}
		writeScript(t, dir, "docker-credential-"+name, `read -r server
echo "`+name+` get $server" >>"$DOCKER_HELPER_LOG"
`+answer+"\n")
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// basicAuth is the Authorization header of Basic user:pass.
func basicAuth(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// hostPort is the registry address of a test server: "127.0.0.1:PORT".
func hostPort(s *basicServer) string {
	_, hp, _ := strings.Cut(s.URL, "://")
	return hp
}

// basicTransport answers Basic challenges with creds, trusting the test
// servers' certificate.
func basicTransport(s *basicServer, creds anyauth.CredentialProvider) *anyauth.Transport {
	return &anyauth.Transport{Base: s.Client().Transport, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: creds}
}

// credHelpers picks the helper for its registry, credsStore for the
// others, and auths only where no helper applies (a credHelpers entry
// of ""); a helper that has nothing answers nothing, the auths entry
// being ignored, as in docker. Each helper runs once for two requests.
func TestDockerConfigHelpersBeforeAuths(t *testing.T) {
	log := dockerPath(t)
	fakeDockerHelpers(t, map[string]anyauth.UserPassword{
		"pinned": {Username: "pinned-user", Password: "pinned-pw"},
		"store":  {Username: "store-user", Password: "store-pw"},
		"empty":  {},
	})
	pinned := newBasicServer(t, true, "pinned-user", "pinned-pw", "r")
	stored := newBasicServer(t, true, "store-user", "store-pw", "r")
	fileOnly := newBasicServer(t, true, "file-user", "file-pw", "r")
	helperHasNone := newBasicServer(t, true, "file-user", "file-pw", "r")
	servers := []*basicServer{pinned, stored, fileOnly, helperHasNone}
	auths := map[string]any{}
	var registries []string
	for _, s := range servers {
		auths[hostPort(s)] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("file-user:file-pw"))}
		registries = append(registries, hostPort(s))
	}
	path := writeDockerConfig(t, t.TempDir(), fmt.Sprintf(`{
		"credsStore": "store",
		"credHelpers": {%q: "pinned", %q: "", %q: "empty"},
		"auths": %s
	}`, hostPort(pinned), hostPort(fileOnly), hostPort(helperHasNone), jsonOf(t, auths)))
	tr := basicTransport(pinned, &credhelper.DockerConfig{Path: path, Registries: registries})

	for range 2 {
		for _, c := range []struct {
			srv  *basicServer
			user string
		}{{pinned, "pinned-user"}, {stored, "store-user"}, {fileOnly, "file-user"}} {
			if status, body := get(t, tr, c.srv.URL+"/v2/"); status != 200 || body != "hello "+c.user {
				t.Errorf("%s: %d %q, want 200 hello %s", c.user, status, body, c.user)
			}
		}
	}
	if status, _ := get(t, tr, helperHasNone.URL+"/v2/"); status != 401 {
		t.Errorf("a helper with nothing: status %d, want 401 (the auths entry is not tried)", status)
	}
	if saw := helperHasNone.sawAuthorizations(); slices.ContainsFunc(saw, func(a string) bool { return a != "" }) {
		t.Errorf("a helper with nothing: the server saw Authorization %q", saw)
	}
	want := fmt.Sprintf("pinned get %s\nstore get %s\nempty get %s\n", hostPort(pinned), hostPort(stored), hostPort(helperHasNone))
	if got := readFile(t, log); got != want {
		t.Errorf("helper runs:\n%s\nwant:\n%s", got, want)
	}
}

// auths entries answer with "auth" decoded, or "username" and
// "password"; their keys may carry a scheme and a path. An entry with an
// identity token answers nothing.
func TestDockerConfigAuths(t *testing.T) {
	plain := newBasicServer(t, false, "alice", "plain-pw", "r")
	secure := newBasicServer(t, true, "bob", "tls-pw", "r")
	tokenOnly := newBasicServer(t, true, "carol", "never-sent", "r")
	path := writeDockerConfig(t, t.TempDir(), fmt.Sprintf(`{"auths": {
		"http://%s/v2/": {"auth": %q},
		%q: {"username": "bob", "password": "tls-pw"},
		%q: {"auth": %q, "identitytoken": "identity-token-secret"},
		"https://index.docker.io/v1/": {"auth": %q},
		"https://registry.example.com/v1/": {"auth": %q}
	}}`, hostPort(plain), b64("alice:plain-pw"), hostPort(secure), hostPort(tokenOnly), b64("carol:"),
		b64("hubuser:hub-pw"), b64("reguser:reg-pw\x00\x00")))
	c := &credhelper.DockerConfig{Path: path, Registries: []string{
		"http://" + hostPort(plain), hostPort(secure), hostPort(tokenOnly), "docker.io", "registry.example.com"}}

	for _, s := range []struct {
		srv        *basicServer
		user, pass string
	}{{plain, "alice", "plain-pw"}, {secure, "bob", "tls-pw"}} {
		if status, body := get(t, basicTransport(s.srv, c), s.srv.URL+"/v2/"); status != 200 || body != "hello "+s.user {
			t.Errorf("%s: %d %q", s.srv.URL, status, body)
		}
		if saw := s.srv.sawAuthorizations(); len(saw) == 0 || saw[len(saw)-1] != basicAuth(s.user, s.pass) {
			t.Errorf("%s: the server saw Authorization %q, want %q", s.srv.URL, saw, basicAuth(s.user, s.pass))
		}
	}

	if status, _ := get(t, basicTransport(tokenOnly, c), tokenOnly.URL+"/v2/"); status != 401 {
		t.Errorf("identity token: status %d, want 401", status)
	}
	if saw := tokenOnly.sawAuthorizations(); !slices.Equal(saw, []string{""}) {
		t.Errorf("identity token: the server saw Authorization %q, want one request without", saw)
	}
	_, err := c.Credentials(context.Background(), spaceOf(t, tokenOnly.URL+"/v2/", "Basic", "r"))
	if !errors.Is(err, anyauth.ErrNoCredentials) || strings.Contains(err.Error(), "identity-token-secret") {
		t.Errorf("identity token: %v, want ErrNoCredentials without the token", err)
	}

	for u, want := range map[string]anyauth.UserPassword{
		"https://docker.io/v2/":            {Username: "hubuser", Password: "hub-pw"},
		"https://registry.example.com/v2/": {Username: "reguser", Password: "reg-pw"}, // NULs trimmed, as docker does
	} {
		if up, err := c.Credentials(context.Background(), spaceOf(t, u, "Basic", "r")); err != nil || *up != want {
			t.Errorf("%s: %v %v, want %v", u, up, err, want)
		}
	}
}

// A registry the user did not list gets nothing, though config.json has
// a helper and an auths entry for it: no helper runs, no Authorization is
// sent. A host:port listed without a scheme is https only.
func TestDockerConfigUnlistedRegistryGetsNothing(t *testing.T) {
	log := dockerPath(t)
	fakeDockerHelpers(t, map[string]anyauth.UserPassword{"store": {Username: "alice", Password: "store-pw"}})
	secure := newBasicServer(t, true, "alice", "store-pw", "r")
	plain := newBasicServer(t, false, "alice", "file-pw", "r")
	path := writeDockerConfig(t, t.TempDir(), fmt.Sprintf(`{
		"credHelpers": {%q: "store"},
		"auths": {%q: {"auth": %q}}
	}`, hostPort(secure), hostPort(plain), b64("alice:file-pw")))
	for _, c := range []struct {
		srv        *basicServer
		registries []string
	}{
		{secure, []string{"registry.example.com"}},
		{plain, []string{hostPort(plain)}}, // https://127.0.0.1:PORT, not http
	} {
		tr := basicTransport(c.srv, &credhelper.DockerConfig{Path: path, Registries: c.registries})
		if status, _ := get(t, tr, c.srv.URL+"/v2/"); status != 401 {
			t.Errorf("%s with Registries %q: status %d, want 401", c.srv.URL, c.registries, status)
		}
		if saw := c.srv.sawAuthorizations(); !slices.Equal(saw, []string{""}) {
			t.Errorf("%s with Registries %q: the server saw Authorization %q", c.srv.URL, c.registries, saw)
		}
	}
	if got := readFile(t, log); got != "" {
		t.Errorf("a helper ran for a registry not listed:\n%s", got)
	}
}

// A refusal makes DockerConfig read the file again, though it looks
// unchanged (same size, inode and modification time): the request after
// the refused one sends the new password. A file that changed is read
// again without a refusal.
func TestDockerConfigReadAgainAfterRefusal(t *testing.T) {
	srv := newBasicServer(t, true, "alice", "old-pass-1", "r")
	dir := t.TempDir()
	config := func(pass string) string {
		return fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, hostPort(srv), b64("alice:"+pass))
	}
	path := writeDockerConfig(t, dir, config("old-pass-1"))
	tr := basicTransport(srv, &credhelper.DockerConfig{Path: path, Registries: []string{hostPort(srv)}})
	if status, _ := get(t, tr, srv.URL+"/v2/"); status != 200 {
		t.Fatalf("status %d", status)
	}
	before, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}

	srv.pass.Store("new-pass-2")
	writeDockerConfig(t, dir, config("new-pass-2"))
	if err := os.Chtimes(path, time.Time{}, before.ModTime()); err != nil {
		t.Fatal(err)
	}
	// The Transport answers with the password it has; the registry
	// refuses it, and the Transport tells DockerConfig (Refused).
	if status, _ := get(t, tr, srv.URL+"/v2/"); status != 401 {
		t.Fatalf("the old password: status %d, want 401", status)
	}
	seen := len(srv.sawAuthorizations())
	if status, body := get(t, tr, srv.URL+"/v2/"); status != 200 || body != "hello alice" {
		t.Fatalf("after the refusal: %d %q, want 200", status, body)
	}
	if saw := srv.sawAuthorizations()[seen:]; len(saw) == 0 || saw[len(saw)-1] != basicAuth("alice", "new-pass-2") || slices.Contains(saw, basicAuth("alice", "old-pass-1")) {
		t.Errorf("after the refusal the server saw %q, want the new password only", saw)
	}

	srv.pass.Store("new-pass-3")
	writeDockerConfig(t, dir, config("new-pass-3"))
	if err := os.Chtimes(path, time.Time{}, before.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	seen = len(srv.sawAuthorizations())
	if status, _ := get(t, tr, srv.URL+"/v2/"); status != 200 {
		t.Fatalf("after the file changed: status %d", status)
	}
	if saw := srv.sawAuthorizations()[seen:]; len(saw) == 0 || saw[len(saw)-1] != basicAuth("alice", "new-pass-3") || slices.Contains(saw, basicAuth("alice", "new-pass-2")) {
		t.Errorf("after the file changed the server saw %q: the password of the old file", saw)
	}
}

// With no config.json, the registry's 401 comes back as it was sent, after
// one round trip.
func TestDockerConfigMissingFile(t *testing.T) {
	srv := newBasicServer(t, true, "alice", "pw", "r")
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	for _, c := range []*credhelper.DockerConfig{
		{Path: filepath.Join(t.TempDir(), "absent", "config.json"), Registries: []string{hostPort(srv)}},
		credhelper.DockerConfigFromEnv(hostPort(srv)),
		{Registries: []string{hostPort(srv)}}, // Path "": $DOCKER_CONFIG/config.json
	} {
		before := srv.requests.Load()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
		resp, err := basicTransport(srv, c).RoundTrip(req)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="r"` || srv.requests.Load()-before != 1 {
			t.Errorf("%v: %d %q after %d requests, want the 401 after 1", c, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), srv.requests.Load()-before)
		}
		if _, err := c.Credentials(context.Background(), spaceOf(t, srv.URL, "Basic", "r")); !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%v: %v, want ErrNoCredentials", c, err)
		}
	}
	if saw := srv.sawAuthorizations(); slices.ContainsFunc(saw, func(a string) bool { return a != "" }) {
		t.Errorf("the server saw Authorization %q", saw)
	}
}

// A config.json that cannot be parsed is an error, from Credentials and
// from the Transport's RoundTrip, that names the file and holds nothing
// of what it holds; no request carries a credential.
func TestDockerConfigMalformedFile(t *testing.T) {
	srv := newBasicServer(t, true, "alice", "pw", "r")
	host := hostPort(srv)
	for _, c := range []struct{ name, content, secret string }{
		{"syntax", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}, oops-secret}`, host, b64("alice:pw")), "oops-secret"},
		{"truncated", fmt.Sprintf(`{"auths": {%q: {"password": "half-secret`, host), "half-secret"},
		{"type", fmt.Sprintf(`{"auths": {%q: {"auth": 8675309}}}`, host), "8675309"},
		{"base64", fmt.Sprintf(`{"auths": {%q: {"auth": "!!raw-secret!!"}}}`, host), "raw-secret"},
		{"no colon", fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, b64("colonless-secret")), "colonless-secret"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeDockerConfig(t, t.TempDir(), c.content)
			dc := &credhelper.DockerConfig{Path: path, Registries: []string{host}}
			_, err := dc.Credentials(context.Background(), spaceOf(t, srv.URL, "Basic", "r"))
			if err == nil || errors.Is(err, anyauth.ErrNoCredentials) {
				t.Fatalf("%v, want an error other than ErrNoCredentials", err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "credhelper: docker config "+path+": ") || strings.Contains(msg, c.secret) || strings.Contains(msg, b64("alice:pw")) {
				t.Errorf("error %q: want the path, nothing of the file", msg)
			}
			t.Log(msg)
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v2/", nil)
			resp, err := basicTransport(srv, dc).RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("through the Transport: status %d, want the error", resp.StatusCode)
			}
			if !strings.Contains(err.Error(), path) || strings.Contains(err.Error(), c.secret) {
				t.Errorf("through the Transport: %q, want the path, nothing of the file", err)
			}
		})
	}
	if saw := srv.sawAuthorizations(); slices.ContainsFunc(saw, func(a string) bool { return a != "" }) {
		t.Errorf("the server saw Authorization %q", saw)
	}
}

// A helper that credHelpers names and that hangs is killed, with its
// child, when the request's context ends.
func TestDockerConfigHangingHelperIsBounded(t *testing.T) {
	dockerPath(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv("HANG_PIDFILE", pidFile)
	path := writeDockerConfig(t, t.TempDir(), `{"credsStore": "test", "credHelpers": {"registry.example.com": "hang"}}`)
	c := &credhelper.DockerConfig{Path: path, Registries: []string{"registry.example.com"}, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Credentials(ctx, spaceOf(t, "https://registry.example.com/v2/", "Basic", "r"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "docker-credential-hang") {
		t.Fatalf("%v, want a DeadlineExceeded naming docker-credential-hang", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("returned after %v", d)
	}
	waitGone(t, pidIn(t, pidFile))
}

// Concurrent questions about one registry run its helper once; String
// and every verb show the path, never a password.
func TestDockerConfigConcurrentAndPrinted(t *testing.T) {
	log := dockerPath(t)
	path := writeDockerConfig(t, t.TempDir(), fmt.Sprintf(`{"credsStore": "test", "auths": {"file.example.com": {"auth": %q}}}`, b64("alice:file-s3cret")))
	c := &credhelper.DockerConfig{Path: path, Registries: []string{"registry.example.com", "file.example.com"}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			up, err := c.Credentials(context.Background(), spaceOf(t, "https://registry.example.com/v2/", "Basic", "r"))
			if err != nil || up.Password != "s3cret-docker" {
				t.Errorf("%v %v", up, err)
			}
		})
	}
	wg.Wait()
	if got := readFile(t, log); got != "get registry.example.com\n" {
		t.Errorf("helper runs for 8 concurrent questions:\n%s", got)
	}
	printed := fmt.Sprintf("%v %+v %#v %s %q", c, c, c, c, c)
	if !strings.Contains(printed, path) || strings.Contains(printed, "s3cret") {
		t.Errorf("printed: %s", printed)
	}
}

// b64 is the standard base64 of s.
func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// jsonOf is v as JSON.
func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
