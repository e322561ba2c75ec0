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
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// verdicts records what an Approver is told.
type verdicts struct {
	mu   sync.Mutex
	list []string
}

func (v *verdicts) add(what string, space *anyauth.ProtectionSpace, up *anyauth.UserPassword) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.list = append(v.list, what+" "+space.AuthScheme+" "+up.Username+":"+up.Password)
	return nil
}

func (v *verdicts) Approve(_ context.Context, space *anyauth.ProtectionSpace, up *anyauth.UserPassword) error {
	return v.add("approve", space, up)
}

func (v *verdicts) Reject(_ context.Context, space *anyauth.ProtectionSpace, up *anyauth.UserPassword) error {
	return v.add("reject", space, up)
}

func (v *verdicts) String() string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return strings.Join(v.list, "; ")
}

// Digest through WithApproval: accepted once per session, refused when
// the password is wrong; nothing for a 404 or a challenge of another
// realm.
func TestWithApprovalDigest(t *testing.T) {
	srv := httptest.NewServer(httpbin.New())
	defer srv.Close()
	v := &verdicts{}
	tr := &anyauth.Transport{
		Schemes:     credhelper.WithApproval([]anyauth.Scheme{schemes.Digest{}}, v),
		Credentials: anyauth.ForOrigin(srv.URL, "user", "passwd"),
	}
	for range 3 {
		if status, _ := get(t, tr, srv.URL+"/digest-auth/auth/user/passwd/SHA-256"); status != 200 {
			t.Fatalf("status %d", status)
		}
	}
	if got := v.String(); got != "approve Digest user:passwd" {
		t.Errorf("after 3 requests: %s", got)
	}
	v.list = nil
	tr = &anyauth.Transport{
		Schemes:     credhelper.WithApproval([]anyauth.Scheme{schemes.Digest{}}, v),
		Credentials: anyauth.ForOrigin(srv.URL, "user", "wrong"),
	}
	if status, _ := get(t, tr, srv.URL+"/digest-auth/auth/user/passwd/SHA-256"); status != 401 {
		t.Fatalf("status %d", status)
	}
	if got := v.String(); got != "reject Digest user:wrong" {
		t.Errorf("wrong password: %s", got)
	}

	// Accepted, but a 404: neither.
	notFound := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="a"`)
			w.WriteHeader(401)
			return
		}
		w.WriteHeader(404)
	}))
	defer notFound.Close()
	v.list = nil
	tr = &anyauth.Transport{
		Schemes:     credhelper.WithApproval([]anyauth.Scheme{schemes.Basic{}}, v),
		Credentials: anyauth.ForOrigin(notFound.URL, "u", "p"),
	}
	if status, _ := get(t, tr, notFound.URL+"/"); status != 404 {
		t.Fatalf("status %d", status)
	}
	if got := v.String(); got != "" {
		t.Errorf("a 404: %s", got)
	}
}

// The wrapper keeps the optional interfaces of what it wraps.
func TestWithApprovalKeepsInterfaces(t *testing.T) {
	bearer := schemes.NewStaticBearer("tok", "https://api.example.com")
	bearer.Preemptive = true
	w := credhelper.WithApproval([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}, bearer}, &verdicts{})
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
		Schemes:     append(credhelper.WithApproval([]anyauth.Scheme{schemes.Basic{}}, g, git), g.Schemes()...),
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
