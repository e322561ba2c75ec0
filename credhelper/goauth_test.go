package credhelper_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// tokenServer answers 200 with the X-Token and X-Extra headers it got,
// "token|extra"; want, when set, makes it answer status to any other
// token.
type tokenServer struct {
	*httptest.Server
	want     string
	status   int
	requests atomic.Int32
}

func newTokenServer(t *testing.T, tls bool, want string, status int) *tokenServer {
	s := &tokenServer{want: want, status: status}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		if s.want != "" && r.Header.Get("X-Token") != s.want {
			w.Header().Set("WWW-Authenticate", `Bearer realm="goauth"`)
			w.Header().Set("X-Why", "expired")
			w.WriteHeader(s.status)
			return
		}
		fmt.Fprintf(w, "%s|%s", r.Header.Get("X-Token"), r.Header.Get("X-Extra"))
	})
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// goauthTransport returns a Transport answering with g (Basic and Digest
// for its netrc and git entries, its scheme for its commands) through
// base.
func goauthTransport(g *credhelper.GoAuth, base http.RoundTripper) *anyauth.Transport {
	return &anyauth.Transport{
		Base:        base,
		Schemes:     append(credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}), g.Schemes()...),
		Credentials: g,
	}
}

// A command's headers go to the https requests under its URL prefixes,
// the longest prefix winning, compared by path segment; the command runs
// once for many requests; a header the caller set is left alone.
func TestGoAuthCommandHeadersByPrefix(t *testing.T) {
	srv := newTokenServer(t, true, "", 0)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf(`echo "run $#" >>%q
cat <<END
%[2]s/a
%[2]s/other/

X-Token: a

%[2]s/a/b/

X-Token: ab
X-Extra: e

%[3]s/

X-Token: cleartext

END
`, runs, srv.URL, strings.Replace(srv.URL, "https:", "http:", 1)))
	g, err := credhelper.ParseGoAuth(script+" 'first arg'", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := goauthTransport(g, srv.Client().Transport)
	for path, want := range map[string]string{
		"/a":       "a|",
		"/a/x":     "a|",
		"/a/b":     "ab|e",
		"/a/b/c/d": "ab|e",
		"/ab":      "|",
		"/other/z": "a|",
		"/":        "|",
		"/b/a":     "|",
	} {
		if status, body := get(t, tr, srv.URL+path); status != 200 || body != want {
			t.Errorf("%s: %d %q, want %q", path, status, body, want)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/a/b", nil)
	req.Header.Set("X-Token", "mine")
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if got := string(body); got != "mine|e" {
		t.Errorf("caller's X-Token: got %q", got)
	}
	if got := readFile(t, runs); got != "run 1\n" {
		t.Errorf("command runs %q, want one, with its one argument", got)
	}
}

// GOAUTH headers never go over plain http, not even to loopback, and
// the commands are not even run for it.
func TestGoAuthHTTPSOnly(t *testing.T) {
	srv := newTokenServer(t, false, "", 0)
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	https := strings.Replace(srv.URL, "http:", "https:", 1)
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf("echo run >>%q\nprintf '%%s\\n%%s\\n\\nX-Token: t\\n\\n' %q %q\n", runs, https, srv.URL))
	g, err := credhelper.ParseGoAuth(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, goauthTransport(g, nil), srv.URL+"/x"); status != 200 || body != "|" {
		t.Errorf("%d %q, want no header", status, body)
	}
	if got := readFile(t, runs); got != "" {
		t.Errorf("the command ran for plain http: %q", got)
	}
}

// On a 401 the command runs again with the URL as its last argument and
// the response's head on stdin; the request is replayed with what it
// gives, once.
func TestGoAuthRerunOn401(t *testing.T) {
	srv := newTokenServer(t, true, "fresh", http.StatusUnauthorized)
	dir := t.TempDir()
	args, stdin := filepath.Join(dir, "args"), filepath.Join(dir, "stdin")
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf(`token=stale
if [ $# -gt 0 ]; then
	echo "$*" >>%q
	cat >>%q
	token=fresh
fi
printf '%%s/\n\nX-Token: %%s\n\n' %q "$token"
`, args, stdin, srv.URL))
	g, err := credhelper.ParseGoAuth(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := goauthTransport(g, srv.Client().Transport)
	if status, body := get(t, tr, srv.URL+"/repo/x?go-get=1"); status != 200 || body != "fresh|" {
		t.Fatalf("%d %q", status, body)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d round trips, want 2", n)
	}
	if got, want := readFile(t, args), srv.URL+"/repo/x?go-get=1\n"; got != want {
		t.Errorf("command arguments %q, want %q", got, want)
	}
	in := readFile(t, stdin)
	if !strings.HasPrefix(in, "HTTP/1.1 401 Unauthorized\n") || !strings.HasSuffix(in, "\n\n") ||
		!strings.Contains(in, "\nWww-Authenticate: Bearer realm=\"goauth\"\n") || !strings.Contains(in, "\nX-Why: expired\n") {
		t.Errorf("command's stdin:\n%s", in)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), nil)
	if err != nil || resp.StatusCode != 401 || resp.Header.Get("X-Why") != "expired" {
		t.Errorf("stdin does not parse with http.ReadResponse: %v", err)
	}
	// The fresh token now serves the next request at once.
	if status, body := get(t, tr, srv.URL+"/repo/y"); status != 200 || body != "fresh|" {
		t.Fatalf("%d %q", status, body)
	}
	if n := srv.requests.Load(); n != 3 {
		t.Errorf("%d round trips after the second request, want 3", n)
	}
}

// A server that refuses every token gets one rerun and one replay per
// request, and its 401 comes back.
func TestGoAuthRerunOncePerRequest(t *testing.T) {
	srv := newTokenServer(t, true, "never", http.StatusUnauthorized)
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf(`n=0
if [ $# -gt 0 ]; then echo "$*" >>%q; cat >/dev/null; n=$(wc -l <%q); fi
printf '%%s/\n\nX-Token: t%%s\n\n' %q "$n"
`, args, args, srv.URL))
	g, err := credhelper.ParseGoAuth(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := goauthTransport(g, srv.Client().Transport)
	for i := 1; i <= 2; i++ {
		if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
			t.Fatalf("status %d", status)
		}
		if n := strings.Count(readFile(t, args), "\n"); n != i {
			t.Errorf("after %d requests the command ran %d times with the URL", i, n)
		}
		if n := srv.requests.Load(); n != int32(2*i) {
			t.Errorf("after %d requests, %d round trips, want %d", i, n, 2*i)
		}
	}
}

// Another 4xx (a private repository's 404) runs the command with it, and
// the request is sent again with its new headers, as the go command does:
// one request, two round trips, 200.
func TestGoAuthRerunOn404(t *testing.T) {
	srv := newTokenServer(t, true, "fresh", http.StatusNotFound)
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf(`if [ $# -gt 0 ]; then echo "$*" >>%q; head -1 >>%q; printf '%%s/private/\n\nX-Token: fresh\n\n' %q; fi
`, args, args, srv.URL))
	g, err := credhelper.ParseGoAuth(script, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := goauthTransport(g, srv.Client().Transport)
	if status, body := get(t, tr, srv.URL+"/private/repo"); status != 200 || body != "fresh|" {
		t.Fatalf("%d %q, want 200 after the rerun", status, body)
	}
	if got, want := readFile(t, args), srv.URL+"/private/repo\nHTTP/1.1 404 Not Found\n"; got != want {
		t.Errorf("command got %q, want %q", got, want)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d round trips, want 2 (the 404, the replay)", n)
	}
}

// netrc answers the Basic challenges of https origins, never plain http;
// an earlier entry wins over a later one.
func TestGoAuthNetrc(t *testing.T) {
	home := gitHome(t)
	srv := newBasicServer(t, true, "alice", "netrc-pw", "r")
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password netrc-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("NETRC", netrc)
	gitConfig(t, "credential.helper", "store")
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "https://", "https://alice:git-pw@", 1)+"\n"), 0o600)

	g, err := credhelper.ParseGoAuth("netrc; git "+home, anyauth.Origins{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, goauthTransport(g, srv.Client().Transport), srv.URL+"/x"); status != 200 || body != "hello alice" {
		t.Fatalf("%d %q", status, body)
	}
	plain := newBasicServer(t, false, "alice", "netrc-pw", "r")
	g, err = credhelper.ParseGoAuth("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.String(); got != "credhelper.GoAuth{netrc}" {
		t.Errorf("GOAUTH= is %s, want netrc", got)
	}
	if status, _ := get(t, goauthTransport(g, nil), plain.URL+"/x"); status != 401 {
		t.Errorf("plain http: status %d, want 401", status)
	}
}

// "git DIR" runs git credential fill in DIR for the origins given.
func TestGoAuthGit(t *testing.T) {
	home := gitHome(t)
	gitConfig(t, "credential.helper", "store")
	srv := newBasicServer(t, true, "alice", "git-pw", "r")
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "https://", "https://alice:git-pw@", 1)+"\n"), 0o600)
	t.Setenv("NETRC", filepath.Join(home, "none"))
	g, err := credhelper.ParseGoAuth("netrc;git "+home, anyauth.Origins{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if status, body := get(t, goauthTransport(g, srv.Client().Transport), srv.URL+"/x"); status != 200 || body != "hello alice" {
		t.Fatalf("%d %q", status, body)
	}
	other := newBasicServer(t, true, "alice", "git-pw", "r")
	if status, _ := get(t, goauthTransport(g, other.Client().Transport), other.URL+"/x"); status != 401 {
		t.Errorf("an origin not given: status %d, want 401", status)
	}
}

// The Transport tells GoAuth how its git entry's credentials fared, with
// no wrapper: approved after a 200 (once), rejected after a 401; netrc's
// credentials tell git nothing.
func TestGoAuthGitVerdicts(t *testing.T) {
	home := gitHome(t)
	actions := actionLogger(t)
	srv := newBasicServer(t, true, "alice", "git-pw", "r")
	store := filepath.Join(home, ".git-credentials")
	os.WriteFile(store, []byte(storeLine(srv.URL, "alice", "git-pw")+"\n"), 0o600)
	t.Setenv("NETRC", filepath.Join(home, "none"))
	g, err := credhelper.ParseGoAuth("netrc;git "+home, anyauth.Origins{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tr := &anyauth.Transport{Base: srv.Client().Transport, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: g}
	for range 2 {
		if status, body := get(t, tr, srv.URL+"/x"); status != 200 || body != "hello alice" {
			t.Fatalf("%d %q", status, body)
		}
	}
	if got := readFile(t, actions); got != "get\nstore\n" {
		t.Errorf("after 200s: helper calls %q, want get then one store", got)
	}
	srv.pass.Store("rotated")
	if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
		t.Fatalf("status %d after the password changed, want 401", status)
	}
	if got := readFile(t, actions); got != "get\nstore\nerase\n" {
		t.Errorf("after a 401: helper calls %q, want get, store, erase", got)
	}
	if got := readFile(t, store); strings.Contains(got, "git-pw") {
		t.Errorf("credential-store still holds the refused credential: %q", got)
	}

	// netrc answers first: git is not asked, and told nothing.
	home2 := gitHome(t)
	actions2 := actionLogger(t)
	os.WriteFile(filepath.Join(home2, ".git-credentials"), []byte(storeLine(srv.URL, "alice", "rotated")+"\n"), 0o600)
	netrc := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password rotated\n"), 0o600)
	t.Setenv("NETRC", netrc)
	g2, err := credhelper.ParseGoAuth("netrc;git "+home2, anyauth.Origins{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	tr = &anyauth.Transport{Base: srv.Client().Transport, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: g2}
	if status, _ := get(t, tr, srv.URL+"/x"); status != 200 {
		t.Fatalf("netrc: status %d", status)
	}
	if got := readFile(t, actions2); got != "" {
		t.Errorf("netrc's credentials: git ran %q", got)
	}
}

// off sends nothing, whatever netrc holds.
func TestGoAuthOff(t *testing.T) {
	var auth atomic.Value
	auth.Store("")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	netrc := filepath.Join(t.TempDir(), "netrc")
	os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password pw\n"), 0o600)
	t.Setenv("NETRC", netrc)
	g, err := credhelper.ParseGoAuth("off", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(g.Schemes()) != 0 {
		t.Error("off has a scheme")
	}
	if _, err := g.Credentials(context.Background(), spaceOf(t, srv.URL, "Basic", "r")); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Errorf("off: %v", err)
	}
	if status, _ := get(t, goauthTransport(g, srv.Client().Transport), srv.URL+"/"); status != 401 || auth.Load() != "" {
		t.Errorf("off: status %d, Authorization %q", status, auth.Load())
	}
}

func TestParseGoAuth(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	origins := anyauth.Origins{"https://git.example.com"}
	for _, bad := range []string{
		"netrc;", ";netrc", "off;netrc", "netrc; off",
		"git", "git relative/dir", "git " + dir + " extra", "git " + file, "git " + filepath.Join(dir, "none"),
		"cmd 'unterminated",
	} {
		if _, err := credhelper.ParseGoAuth(bad, origins); err == nil || !strings.HasPrefix(err.Error(), "credhelper: ") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := credhelper.ParseGoAuth("git "+dir, nil); err == nil {
		t.Error("git without origins accepted")
	}
	if _, err := credhelper.ParseGoAuth("netrc", anyauth.Origins{"ftp://x"}); err == nil {
		t.Error("a bad origin accepted")
	}
	g, err := credhelper.ParseGoAuth(`netrc; /bin/tool --token "s3cret value"; git `+dir, origins)
	if err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		if s := fmt.Sprintf(verb, g); strings.Contains(s, "s3cret") || !strings.Contains(s, "command /bin/tool") {
			t.Errorf("%s: %s", verb, s)
		}
	}
}

func TestGoAuthFromEnv(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "env")
	os.WriteFile(envFile, []byte("GOPROXY=direct\nGOAUTH=off\n"), 0o600)
	t.Setenv("GOENV", envFile)
	t.Setenv("GOAUTH", "")
	g, err := credhelper.GoAuthFromEnv(nil)
	if err != nil || g.String() != "credhelper.GoAuth{off}" {
		t.Errorf("from go env: %v %v", g, err)
	}
	t.Setenv("GOAUTH", "netrc")
	if g, err := credhelper.GoAuthFromEnv(nil); err != nil || g.String() != "credhelper.GoAuth{netrc}" {
		t.Errorf("from $GOAUTH: %v %v", g, err)
	}
	t.Setenv("GOAUTH", "")
	t.Setenv("GOENV", "off")
	if g, err := credhelper.GoAuthFromEnv(nil); err != nil || g.String() != "credhelper.GoAuth{netrc}" {
		t.Errorf("default: %v %v", g, err)
	}
}
