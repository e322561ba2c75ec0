package credhelper_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// dockerPath puts testdata's helpers first on PATH, and returns the log
// file the test helper writes.
func dockerPath(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	log := filepath.Join(t.TempDir(), "helper.log")
	t.Setenv("DOCKER_HELPER_LOG", log)
	return log
}

func TestDockerGet(t *testing.T) {
	log := dockerPath(t)
	d := &credhelper.Docker{Helper: "test", Registries: []string{"registry.example.com", "token.example.com", "missing.example.com", "docker.io"}}
	ctx := context.Background()

	up, err := d.Credentials(ctx, spaceOf(t, "https://registry.example.com/v2/", "Basic", "registry"))
	if err != nil || up.Username != "alice" || up.Password != "s3cret-docker" {
		t.Fatalf("registry.example.com: %v %v", up, err)
	}
	up, err = d.Credentials(ctx, spaceOf(t, "https://docker.io/v2/", "Basic", "registry"))
	if err != nil || up.Username != "hubuser" {
		t.Fatalf("docker.io: %v %v", up, err)
	}
	for _, u := range []string{"https://missing.example.com/", "https://token.example.com/", "https://other.example.com/", "http://registry.example.com/", "https://registry.example.com:5000/"} {
		if _, err := d.Credentials(ctx, spaceOf(t, u, "Basic", "r")); !errors.Is(err, anyauth.ErrNoCredentials) {
			t.Errorf("%s: %v, want ErrNoCredentials", u, err)
		} else if strings.Contains(err.Error(), "refresh-token-secret") || !strings.HasPrefix(err.Error(), "credhelper: ") {
			t.Errorf("%s: error %q", u, err)
		}
	}
	// Asked again: kept, the helper is not run.
	if _, err := d.Credentials(ctx, spaceOf(t, "https://registry.example.com/v2/", "Basic", "registry")); err != nil {
		t.Fatal(err)
	}
	want := "get registry.example.com\nget https://index.docker.io/v1/\nget missing.example.com\nget token.example.com\n"
	if got := readFile(t, log); got != want {
		t.Errorf("helper runs:\n%s\nwant:\n%s", got, want)
	}
	if _, err := (&credhelper.Docker{Helper: "absent", Registries: []string{"registry.example.com"}}).Credentials(ctx, spaceOf(t, "https://registry.example.com/", "Basic", "r")); err == nil || errors.Is(err, anyauth.ErrNoCredentials) {
		t.Errorf("a helper that is not installed: %v, want an error that is not ErrNoCredentials", err)
	}
	if _, err := (&credhelper.Docker{Helper: "../test", Registries: []string{"registry.example.com"}}).Get(ctx, "registry.example.com"); err == nil {
		t.Error("a helper name with a slash was run")
	}
}

// A registry's Basic challenge is answered through the Transport; a
// refusal (the Transport calls Refused, with no wrapper) makes the Docker
// ask the helper again.
func TestDockerThroughTransport(t *testing.T) {
	log := dockerPath(t)
	srv := newBasicServer(t, true, "alice", "s3cret-docker", "registry")
	d := &credhelper.Docker{Helper: "test", Registries: []string{strings.TrimPrefix(srv.URL, "https://")}}
	base := srv.Client().Transport
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: d}
	for range 2 {
		if status, body := get(t, tr, srv.URL+"/v2/"); status != 200 || body != "hello alice" {
			t.Fatalf("%d %q", status, body)
		}
	}
	if n := strings.Count(readFile(t, log), "get "); n != 1 {
		t.Errorf("helper ran %d times for 2 requests, want 1", n)
	}
	srv.pass.Store("rotated")
	if status, _ := get(t, tr, srv.URL+"/v2/"); status != 401 {
		t.Fatalf("status %d after the password changed", status)
	}
	srv.pass.Store("s3cret-docker")
	if status, _ := get(t, tr, srv.URL+"/v2/"); status != 200 {
		t.Fatalf("status %d", status)
	}
	if n := strings.Count(readFile(t, log), "get "); n != 2 {
		t.Errorf("helper ran %d times, want 2 (asked again after the refusal)", n)
	}
}

// A helper that hangs is killed, with its child, when the context or the
// Timeout ends.
func TestDockerHelperThatHangsIsKilled(t *testing.T) {
	dockerPath(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	t.Setenv("HANG_PIDFILE", pidFile)
	space := spaceOf(t, "https://registry.example.com/", "Basic", "r")
	for _, c := range []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration
	}{{"context", time.Minute, 300 * time.Millisecond}, {"Timeout", 300 * time.Millisecond, time.Minute}} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(pidFile)
			d := &credhelper.Docker{Helper: "hang", Registries: []string{"registry.example.com"}, Timeout: c.timeout}
			ctx, cancel := context.WithTimeout(context.Background(), c.ctx)
			defer cancel()
			start := time.Now()
			_, err := d.Credentials(ctx, space)
			if !errors.Is(err, context.DeadlineExceeded) {
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
