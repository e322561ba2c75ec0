package credhelper_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
)

// writeScript writes an executable shell script into dir.
func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// readFile returns the file's content, "" when it does not exist.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// basicServer answers 200 "hello USER" to Basic user:pass in realm, and
// 401 with a Basic challenge otherwise. It counts its requests and keeps
// the Authorization headers they carried.
type basicServer struct {
	*httptest.Server
	user, realm string
	pass        atomic.Value // string
	requests    atomic.Int32

	mu             sync.Mutex
	authorizations []string // "" for a request without one
}

// sawAuthorizations returns the Authorization header of each request so
// far, "" for none.
func (s *basicServer) sawAuthorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.authorizations)
}

func newBasicServer(t *testing.T, tls bool, user, pass, realm string) *basicServer {
	t.Helper()
	s := &basicServer{user: user, realm: realm}
	s.pass.Store(pass)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		s.authorizations = append(s.authorizations, r.Header.Get("Authorization"))
		s.mu.Unlock()
		u, p, ok := r.BasicAuth()
		if !ok || u != s.user || p != s.pass.Load().(string) {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+s.realm+`"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("hello " + u))
	})
	if tls {
		s.Server = httptest.NewTLSServer(h)
	} else {
		s.Server = httptest.NewServer(h)
	}
	t.Cleanup(s.Close)
	return s
}

// get sends a GET through rt and returns the status and body.
func get(t *testing.T, rt http.RoundTripper, u string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

// spaceOf returns the protection space of a challenge from rawURL.
func spaceOf(t *testing.T, rawURL, authScheme, realm string) *anyauth.ProtectionSpace {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	return &anyauth.ProtectionSpace{AuthScheme: authScheme, URLScheme: u.Scheme, Host: u.Hostname(), Port: port, Realm: realm, Path: path}
}

// gitHome gives git a home of its own: no system configuration, a global
// one in a temporary HOME, and no askpass or terminal to prompt with.
// It returns HOME.
func gitHome(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, ".gitconfig"))
	t.Setenv("GIT_ASKPASS", "")
	t.Setenv("SSH_ASKPASS", "")
	return home
}

// gitConfig adds a value to git's global configuration.
func gitConfig(t *testing.T, key, value string) {
	t.Helper()
	if out, err := exec.Command("git", "config", "--global", "--add", key, value).CombinedOutput(); err != nil {
		t.Fatalf("git config %s: %v\n%s", key, err, out)
	}
}

// gitVersion returns git's major and minor version.
func gitVersion(t *testing.T) (int, int) {
	t.Helper()
	out, err := exec.Command("git", "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(out)) // git version 2.39.5
	parts := strings.SplitN(f[len(f)-1], ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return major, minor
}

// gone reports whether the process pid has exited (a zombie that no one
// reaped counts as gone).
func gone(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, after, _ := strings.Cut(string(stat), ") ")
	return strings.HasPrefix(after, "Z") || strings.HasPrefix(after, "X")
}

// waitGone waits up to 5 s for pid to be gone.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Errorf("process %d still runs", pid)
}

// pidIn reads a pid from a file, waiting up to 5 s for it.
func pidIn(t *testing.T, file string) int {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n, err := strconv.Atoi(strings.TrimSpace(readFile(t, file))); err == nil && n > 0 {
			return n
		}
	}
	t.Fatalf("no pid in %s", file)
	return 0
}
