package credhelper_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// gitTransport returns a Transport answering Basic and Digest with git's
// credentials, approved and rejected.
func gitTransport(git *credhelper.Git) *anyauth.Transport {
	return &anyauth.Transport{
		Schemes:     credhelper.WithApproval([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, git),
		Credentials: git,
	}
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
// the protocol, host and path. git 2.39 does not hand it to the helpers
// (2.41 and later do); the fill works either way.
func TestGitWWWAuthPassed(t *testing.T) {
	gitHome(t)
	dir := t.TempDir()
	helperLog := filepath.Join(dir, "helper.log")
	helper := writeScript(t, dir, "helper", fmt.Sprintf(`{ echo "== $1"; cat; } >>%q
[ "$1" = get ] && printf 'username=bob\npassword=helper-pw\n'
exit 0
`, helperLog))
	gitConfig(t, "credential.helper", helper)
	srv := newBasicServer(t, false, "bob", "helper-pw", "my repo")
	log := filepath.Join(dir, "git.log")
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}, Program: gitRecorder(t, dir, log)}
	if status, body := get(t, gitTransport(git), srv.URL+"/org/repo.git/info/refs"); status != 200 || body != "hello bob" {
		t.Fatalf("%d %q", status, body)
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	fill := readFile(t, log)
	for _, want := range []string{"protocol=http\n", "host=" + host + "\n", "path=org/repo.git/info\n", `wwwauth[]=Basic realm="my repo"` + "\n"} {
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
}

// After a 200, "git credential approve" makes the helpers store what
// fill gave (here credential-store, behind a helper that only answers
// get), once for many requests.
func TestGitApproveStores(t *testing.T) {
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
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}}
	tr := gitTransport(git)
	for range 3 {
		if status, _ := get(t, tr, srv.URL+"/x"); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	// credential-store percent-encodes the host's colon.
	want := strings.Replace(strings.Replace(srv.URL, "http://", "http://carol:approved-pw@", 1), "127.0.0.1:", "127.0.0.1%3a", 1)
	if got := readFile(t, store); strings.TrimSpace(got) != want {
		t.Errorf("credential-store holds %q after approve, want %q", got, want)
	}
	if calls := readFile(t, helperLog); calls != "get\nstore\n" {
		t.Errorf("helper calls %q, want get then one store", calls)
	}
}

// After a 401 to the credentials git gave, "git credential reject" makes
// the helpers erase them; the next request asks git again, which has
// none.
func TestGitRejectErases(t *testing.T) {
	home := gitHome(t)
	gitConfig(t, "credential.helper", "store")
	srv := newBasicServer(t, false, "alice", "right-pw", "r")
	store := filepath.Join(home, ".git-credentials")
	wrong := strings.Replace(srv.URL, "http://", "http://alice:wrong-pw@", 1)
	if err := os.WriteFile(store, []byte(wrong+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}}
	tr := gitTransport(git)
	if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
		t.Fatalf("status %d, want 401", status)
	}
	if got := readFile(t, store); strings.Contains(got, "wrong-pw") {
		t.Errorf("credential-store still holds the refused credential: %q", got)
	}
	before := srv.requests.Load()
	if status, _ := get(t, tr, srv.URL+"/x"); status != 401 {
		t.Fatalf("second request: status %d, want 401", status)
	}
	if n := srv.requests.Load() - before; n != 1 {
		t.Errorf("second request took %d round trips, want 1 (no credentials left)", n)
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
