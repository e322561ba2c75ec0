package credhelper_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// gitTransport returns a Transport answering Basic and Digest with git's
// credentials, the schemes wrapped with WithChallenges. The Transport
// tells git whether they worked.
func gitTransport(git *credhelper.Git) *anyauth.Transport {
	return &anyauth.Transport{
		Schemes:     credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}),
		Credentials: git,
	}
}

// gitTransports are the ways a Git is given to a Transport: with the
// schemes wrapped by WithChallenges, bare (no wrapper at all), and in a
// Chain after a provider that has nothing for the origin.
var gitTransports = []struct {
	name string
	make func(git *credhelper.Git) *anyauth.Transport
}{
	{"WithChallenges", gitTransport},
	{"bare", func(git *credhelper.Git) *anyauth.Transport {
		return &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, Credentials: git}
	}},
	{"Chain", func(git *credhelper.Git) *anyauth.Transport {
		return &anyauth.Transport{
			Schemes:     []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
			Credentials: anyauth.Chain{anyauth.ForOrigin("https://elsewhere.example.com", "x", "y"), git},
		}
	}},
}

// actionLogger configures, before credential-store, a helper that answers
// nothing and appends each action git runs it with (get, store, erase) to
// the file it returns.
func actionLogger(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "actions.log")
	gitConfig(t, "credential.helper", writeScript(t, dir, "action-logger", fmt.Sprintf("echo \"$1\" >>%q\ncat >/dev/null\n", log)))
	gitConfig(t, "credential.helper", "store")
	return log
}

// storeLine is srv's line in credential-store's file for user:pass
// (credential-store percent-encodes the host's colon).
func storeLine(rawURL, user, pass string) string {
	u := strings.Replace(rawURL, "://", "://"+user+":"+pass+"@", 1)
	return strings.Replace(u, "127.0.0.1:", "127.0.0.1%3a", 1)
}

// gitRecorder returns a program that logs what each git run read on stdin
// (after a line "== ARGS") into log, then runs git with it.
func gitRecorder(t *testing.T, dir, log string) string {
	return writeScript(t, dir, "git-recorder", fmt.Sprintf(`in=$(mktemp)
cat >"$in"
{ echo "== $*"; cat "$in"; } >>%q
git "$@" <"$in"
status=$?
rm -f "$in"
exit $status
`, log))
}

// With credential-store configured in a temporary HOME, the credentials
// it keeps answer the server, and git runs once for many requests.
func TestGitCredentialStore(t *testing.T) {
	home := gitHome(t)
	gitConfig(t, "credential.helper", "store")
	srv := newBasicServer(t, false, "alice", "store-pw", "r")
	if err := os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "http://", "http://alice:store-pw@", 1)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(t.TempDir(), "git.log")
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}, Program: gitRecorder(t, t.TempDir(), log)}
	tr := gitTransport(git)
	for i := range 3 {
		if status, body := get(t, tr, srv.URL+"/repo/x"); status != 200 || body != "hello alice" {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
	if n := strings.Count(readFile(t, log), "== -c credential.interactive=false credential fill"); n != 1 {
		t.Errorf("git credential fill ran %d times for 3 requests, want 1", n)
	}
	if n := srv.requests.Load(); n != 4 {
		t.Errorf("%d round trips for 3 requests, want 4", n)
	}
}

// The challenge goes to "git credential fill" as a wwwauth[] line, with
// the protocol, host and path: the challenge as sent with
// WithChallenges, its scheme and realm without. git 2.39 does not hand
// it to the helpers (2.41 and later do); the fill works either way.
func TestGitWWWAuthPassed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wrap    func([]anyauth.Scheme) []anyauth.Scheme
		wwwauth string
	}{
		{"WithChallenges", credhelper.WithChallenges, `wwwauth[]=Basic realm="my repo", charset=UTF-8`},
		{"bare", func(s []anyauth.Scheme) []anyauth.Scheme { return s }, `wwwauth[]=Basic realm="my repo"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gitHome(t)
			dir := t.TempDir()
			helperLog := filepath.Join(dir, "helper.log")
			helper := writeScript(t, dir, "helper", fmt.Sprintf(`{ echo "== $1"; cat; } >>%q
[ "$1" = get ] && printf 'username=bob\npassword=helper-pw\n'
exit 0
`, helperLog))
			gitConfig(t, "credential.helper", helper)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != "bob" || p != "helper-pw" {
					w.Header().Set("WWW-Authenticate", `Basic realm="my repo", charset="UTF-8"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Write([]byte("hello bob"))
			}))
			defer srv.Close()
			log := filepath.Join(dir, "git.log")
			git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}, Program: gitRecorder(t, dir, log)}
			tr := &anyauth.Transport{Schemes: tc.wrap([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}), Credentials: git}
			if status, body := get(t, tr, srv.URL+"/org/repo.git/info/refs"); status != 200 || body != "hello bob" {
				t.Fatalf("%d %q", status, body)
			}
			host := strings.TrimPrefix(srv.URL, "http://")
			fill := readFile(t, log)
			for _, want := range []string{"protocol=http\n", "host=" + host + "\n", "path=org/repo.git/info\n", tc.wwwauth + "\n"} {
				if !strings.Contains(fill, want) {
					t.Errorf("git credential fill read no %q:\n%s", want, fill)
				}
			}
			got := readFile(t, helperLog)
			if !strings.Contains(got, "== get\n") || !strings.Contains(got, "host="+host+"\n") {
				t.Fatalf("the helper was not asked for %s:\n%s", host, got)
			}
			major, minor := gitVersion(t)
			forwards := major > 2 || (major == 2 && minor >= 41)
			if has := strings.Contains(got, "wwwauth[]="); has != forwards {
				t.Errorf("git %d.%d: helper got wwwauth[] %t, want %t:\n%s", major, minor, has, forwards, got)
			}
			t.Logf("git %d.%d: the helper got wwwauth[] lines: %t", major, minor, forwards)
		})
	}
}

// After a 200, "git credential approve" makes the helpers store what
// fill gave (here credential-store, behind a helper that only answers
// get), once for many requests: the Transport tells Git, with or without
// WithChallenges, and through a Chain; nothing else approves.
func TestGitApproveStores(t *testing.T) {
	for _, tc := range gitTransports {
		t.Run(tc.name, func(t *testing.T) {
			home := gitHome(t)
			dir := t.TempDir()
			helperLog := filepath.Join(dir, "helper.log")
			helper := writeScript(t, dir, "helper", fmt.Sprintf(`echo "$1" >>%q
cat >/dev/null
[ "$1" = get ] && printf 'username=carol\npassword=approved-pw\n'
exit 0
`, helperLog))
			gitConfig(t, "credential.helper", helper)
			gitConfig(t, "credential.helper", "store")
			srv := newBasicServer(t, false, "carol", "approved-pw", "r")
			store := filepath.Join(home, ".git-credentials")
			if got := readFile(t, store); got != "" {
				t.Fatalf("store not empty before: %q", got)
			}
			tr := tc.make(&credhelper.Git{Origins: anyauth.Origins{srv.URL}})
			for range 3 {
				if status, _ := get(t, tr, srv.URL+"/x"); status != 200 {
					t.Fatalf("status %d", status)
				}
			}
			if got, want := strings.TrimSpace(readFile(t, store)), storeLine(srv.URL, "carol", "approved-pw"); got != want {
				t.Errorf("credential-store holds %q after approve, want %q", got, want)
			}
			if calls := readFile(t, helperLog); calls != "get\nstore\n" {
				t.Errorf("helper calls %q, want get then one store", calls)
			}
		})
	}
}

// After a 401 to the credentials git gave, "git credential reject" makes
// the helpers erase them; the next request asks git again, which has
// none.
func TestGitRejectErases(t *testing.T) {
	for _, tc := range gitTransports {
		t.Run(tc.name, func(t *testing.T) {
			home := gitHome(t)
			actions := actionLogger(t)
			srv := newBasicServer(t, false, "alice", "right-pw", "r")
			store := filepath.Join(home, ".git-credentials")
			if err := os.WriteFile(store, []byte(storeLine(srv.URL, "alice", "wrong-pw")+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tr := tc.make(&credhelper.Git{Origins: anyauth.Origins{srv.URL}})
			if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
				t.Fatalf("status %d, want 401", status)
			}
			if got := readFile(t, store); strings.Contains(got, "wrong-pw") {
				t.Errorf("credential-store still holds the refused credential: %q", got)
			}
			if got := readFile(t, actions); got != "get\nerase\n" {
				t.Errorf("helper calls %q, want get, erase", got)
			}
			before := srv.requests.Load()
			if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
				t.Fatalf("second request: status %d, want 401", status)
			}
			if n := srv.requests.Load() - before; n != 1 {
				t.Errorf("second request took %d round trips, want 1 (no credentials left)", n)
			}
			if got := readFile(t, actions); got != "get\nerase\nget\n" {
				t.Errorf("helper calls %q, want get, erase, then get for the second request", got)
			}
		})
	}
}

// Digest as Basic: credential-store's credentials approved once for
// many requests, a wrong password rejected; a 404 to an answer is
// neither.
func TestGitVerdictsDigest(t *testing.T) {
	bin := httptest.NewServer(httpbin.New())
	defer bin.Close()
	// A Digest challenge, then 404 to any answer.
	notFound := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Digest realm="a", nonce="n1", qop="auth", algorithm=SHA-256`)
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(404)
	}))
	defer notFound.Close()
	const digestPath = "/digest-auth/auth/user/passwd/SHA-256"
	for _, tc := range []struct {
		name, origin, path, password string
		requests, status             int
		actions                      string
		kept                         bool
	}{
		{"accepted", bin.URL, digestPath, "passwd", 3, 200, "get\nstore\n", true},
		{"refused", bin.URL, digestPath, "wrong", 1, 401, "get\nerase\n", false},
		{"404", notFound.URL, "/x", "passwd", 1, 404, "get\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := gitHome(t)
			actions := actionLogger(t)
			store := filepath.Join(home, ".git-credentials")
			if err := os.WriteFile(store, []byte(storeLine(tc.origin, "user", tc.password)+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: &credhelper.Git{Origins: anyauth.Origins{tc.origin}}}
			for range tc.requests {
				if status, _ := get(t, tr, tc.origin+tc.path); status != tc.status {
					t.Fatalf("status %d, want %d", status, tc.status)
				}
			}
			if got := readFile(t, actions); got != tc.actions {
				t.Errorf("helper calls %q, want %q", got, tc.actions)
			}
			if got := readFile(t, store); strings.Contains(got, ":"+tc.password+"@") != tc.kept {
				t.Errorf("credential-store holds %q, want the credential kept: %t", got, tc.kept)
			}
		})
	}
}

// A helper is never run for an origin that is not allowed, nor for a
// proxy.
func TestGitOnlyAllowedOrigins(t *testing.T) {
	gitHome(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "git.log")
	git := &credhelper.Git{Origins: anyauth.Origins{"https://git.example.com"}, Program: gitRecorder(t, dir, log)}
	for _, space := range []*anyauth.ProtectionSpace{
		spaceOf(t, "https://other.example.com/", "Basic", "r"),
		spaceOf(t, "http://git.example.com/", "Basic", "r"),
		spaceOf(t, "https://git.example.com:8443/", "Basic", "r"),
		{Proxy: true, AuthScheme: "Basic", URLScheme: "https", Host: "git.example.com", Port: "443"},
	} {
		if _, err := git.Credentials(context.Background(), space); !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%s: %v, want ErrNoCredentials", space, err)
		}
	}
	if (&credhelper.Git{}).Origins.Allows(spaceOf(t, "https://git.example.com/", "Basic", "")) {
		t.Error("a Git without Origins allows an origin")
	}
	if _, err := os.Stat(log); err == nil {
		t.Errorf("git ran:\n%s", readFile(t, log))
	}
}

// With no helper, git would prompt: it does not, and the answer is "no
// credentials" at once.
func TestGitNeverPrompts(t *testing.T) {
	gitHome(t)
	git := &credhelper.Git{Origins: anyauth.Origins{"https://git.example.com"}}
	start := time.Now()
	_, err := git.Credentials(context.Background(), spaceOf(t, "https://git.example.com/", "Basic", "r"))
	if !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Fatalf("%v, want ErrNoCredentials", err)
	}
	if !strings.HasPrefix(err.Error(), "credhelper: ") || !strings.Contains(err.Error(), "prompts are disabled") {
		t.Errorf("error %q", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
}

// A helper that hangs is killed, with what it started, when the Timeout
// or the request's context ends.
func TestGitHelperThatHangsIsKilled(t *testing.T) {
	gitHome(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	helper := writeScript(t, dir, "helper", fmt.Sprintf(`sleep 60 &
echo $! >%q
wait
`, pidFile))
	gitConfig(t, "credential.helper", helper)
	space := spaceOf(t, "https://git.example.com/", "Basic", "r")
	for _, c := range []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration
	}{{"Timeout", 300 * time.Millisecond, time.Minute}, {"context", time.Minute, 300 * time.Millisecond}} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(pidFile)
			git := &credhelper.Git{Origins: anyauth.Origins{"https://git.example.com"}, Timeout: c.timeout}
			ctx, cancel := context.WithTimeout(context.Background(), c.ctx)
			defer cancel()
			start := time.Now()
			_, err := git.Credentials(ctx, space)
			if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, anyauth.ErrNoCredentials) {
				t.Fatalf("%v, want a DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("returned after %v", d)
			}
			t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
			waitGone(t, pidIn(t, pidFile))
		})
	}
}

// Requests that meet one space at once run one fill, and one approve.
func TestGitConcurrentRequestsRunOneFill(t *testing.T) {
	home := gitHome(t)
	gitConfig(t, "credential.helper", "store")
	srv := newBasicServer(t, false, "alice", "pw", "r")
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "http://", "http://alice:pw@", 1)+"\n"), 0o600)
	log := filepath.Join(t.TempDir(), "git.log")
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}, Program: gitRecorder(t, t.TempDir(), log)}
	space := spaceOf(t, srv.URL+"/", "Basic", "r")
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			up, err := git.Credentials(context.Background(), space)
			if err == nil && up.Password != "pw" {
				err = errors.New("wrong password")
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(readFile(t, log), "credential fill"); n != 1 {
		t.Errorf("%d fills for 16 concurrent questions, want 1", n)
	}
}
