package credhelper_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// The wrapper keeps the optional interfaces of what it wraps, and its
// name.
func TestWithChallengesKeepsInterfaces(t *testing.T) {
	bearer := schemes.NewStaticBearer("tok", "https://api.example.com")
	bearer.Preemptive = true
	w := credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}, bearer})
	if _, ok := w[0].(anyauth.Scoper); !ok {
		t.Error("Digest lost Scoper")
	}
	if _, ok := w[1].(anyauth.Scoper); ok {
		t.Error("Basic became a Scoper")
	}
	if v, ok := w[2].(anyauth.Volunteer); !ok || !v.Volunteers(mustURL(t, "https://api.example.com/x")) {
		t.Error("Bearer lost Volunteer")
	}
	for i, sc := range w {
		if sc.Name() != []string{"Digest", "Basic", "Bearer"}[i] {
			t.Errorf("name %s", sc.Name())
		}
	}
}

// Wrapped Digest still works: a stale nonce continues the session (the
// Digest session a refusal carries over reaches Digest as it is), and
// the credentials are approved once, by the Transport.
func TestWithChallengesDigestStale(t *testing.T) {
	home := gitHome(t)
	actions := actionLogger(t)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		switch {
		case auth == "":
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n1", qop="auth"`)
			w.WriteHeader(401)
		case strings.Contains(auth, `nonce="n1"`) && n.Add(1) == 1:
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n2", qop="auth", stale=true`)
			w.WriteHeader(401)
		default:
			w.Write([]byte("ok"))
		}
	}))
	defer srv.Close()
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(storeLine(srv.URL, "u", "p")+"\n"), 0o600)
	tr := &anyauth.Transport{
		Schemes:     credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}}),
		Credentials: &credhelper.Git{Origins: anyauth.Origins{srv.URL}},
	}
	if status, body := get(t, tr, srv.URL+"/x"); status != 200 || body != "ok" {
		t.Fatalf("%d %q", status, body)
	}
	if n.Load() != 1 {
		t.Errorf("the stale nonce was not met (%d answers with it)", n.Load())
	}
	if got := readFile(t, actions); got != "get\nstore\n" {
		t.Errorf("helper calls %q, want get then one store", got)
	}
}

// Nothing of this package prints or logs a password, a token or a
// header, and no error holds one.
func TestNoSecretsPrintedOrLogged(t *testing.T) {
	home := gitHome(t)
	gitConfig(t, "credential.helper", "store")
	srv := newBasicServer(t, true, "alice", "git-s3cret", "r")
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "https://", "https://alice:git-s3cret@", 1)+"\n"), 0o600)
	dir := t.TempDir()
	script := writeScript(t, dir, "goauth-cmd", fmt.Sprintf("printf '%%s/cmd/\\n\\nX-Token: header-s3cret\\n\\n' %q\n", srv.URL))
	g, err := credhelper.ParseGoAuth(script+" --key arg-s3cret;git "+home, anyauth.Origins{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	git := &credhelper.Git{Origins: anyauth.Origins{srv.URL}}
	dockerPath(t)
	d := &credhelper.Docker{Helper: "test", Registries: []string{"registry.example.com"}}
	if _, err := d.Credentials(context.Background(), spaceOf(t, "https://registry.example.com/", "Basic", "r")); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	tr := &anyauth.Transport{
		Base:        srv.Client().Transport,
		Schemes:     append(credhelper.WithChallenges([]anyauth.Scheme{schemes.Basic{}}), g.Schemes()...),
		Credentials: anyauth.Chain{git, g},
		Logger:      slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, path := range []string{"/x", "/cmd/y"} {
		if status, _ := get(t, tr, srv.URL+path); status != 200 {
			t.Fatalf("%s: status %d", path, status)
		}
	}
	// A failing fill, a failing command.
	bad := writeScript(t, dir, "bad-cmd", "echo 'X-Token: header-s3cret'; echo git-s3cret >&2; exit 3\n")
	g2, _ := credhelper.ParseGoAuth(bad+" arg-s3cret", nil)
	get(t, &anyauth.Transport{Base: srv.Client().Transport, Schemes: g2.Schemes(), Logger: tr.Logger}, srv.URL+"/z")
	_, fillErr := (&credhelper.Git{Origins: anyauth.Origins{"https://other.example.com"}}).Credentials(context.Background(), spaceOf(t, "https://other.example.com/", "Basic", "r"))

	secrets := []string{"git-s3cret", "header-s3cret", "arg-s3cret", "s3cret-docker", base64.StdEncoding.EncodeToString([]byte("alice:git-s3cret"))}
	var printed []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		for _, v := range []any{g, git, d, g.Schemes()[0], tr.Schemes[0]} {
			printed = append(printed, fmt.Sprintf(verb, v))
		}
	}
	printed = append(printed, log.String(), fmt.Sprint(fillErr))
	for _, s := range printed {
		for _, secret := range secrets {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %s", s, secret)
			}
		}
	}
	if !strings.Contains(log.String(), "credhelper: GOAUTH command failed") {
		t.Errorf("the failing command was not logged:\n%s", log.String())
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
