package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetchArgsEnv makes the test binary a fetch process: TestMain runs fetch
// with the JSON list of arguments it holds.
const fetchArgsEnv = "ANYAUTH_TEST_FETCH_ARGS"

func runFromEnv(args string) int {
	var list []string
	if err := json.Unmarshal([]byte(args), &list); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	return run(list, os.Stdout, os.Stderr)
}

// fetchProcess runs fetch with args in a process of its own.
func fetchProcess(t *testing.T, args []string, env ...string) (code int, stdout, stderr string) {
	t.Helper()
	data, _ := json.Marshal(args)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), fetchArgsEnv+"="+string(data)), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// Four fetch processes with the same -oauth2-* flags and -token-cache, run
// at once against mod_auth_openidc, fetch one token between them; a fifth
// with the key in $ANYAUTH_TOKEN_CACHE_KEY uses it too; a sixth with
// another key cannot read it, says so, and fetches its own.
func TestFetchTokenCacheSharesOneToken(t *testing.T) {
	srv, r := sharedOpenIDC(t), sharedRedis(t)
	url := srv.URL + testserver.PathBearer + "whoami"
	var fetches atomic.Int64
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, secret, ok := r.BasicAuth(); !ok || id != "fleet" || secret != "fleet-secret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fetches.Add(1)
		time.Sleep(200 * time.Millisecond) // long enough for the others to wait on the lease
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": time.Now().Add(time.Hour).Unix()}),
			"token_type":   "Bearer", "expires_in": 3600,
		})
	}))
	defer issuer.Close()
	dir := t.TempDir()
	keyA, keyB := filepath.Join(dir, "a.key"), filepath.Join(dir, "b.key")
	os.WriteFile(keyA, []byte(strings.Repeat("a1", 32)+"\n"), 0o600)
	os.WriteFile(keyB, []byte(strings.Repeat("b2", 32)+"\n"), 0o600)
	args := func(key string) []string {
		return []string{"-s", "-oauth2-token-url", issuer.URL, "-oauth2-client", "fleet:fleet-secret",
			"-token-cache", "redis://" + r.Addr + "/3", "-token-cache-key", key, url}
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			code, out, errOut := fetchProcess(t, args(keyA))
			if code != 0 || strings.TrimSpace(out) != testserver.User {
				t.Errorf("process %d: exit %d, out %q\n%s", i, code, out, errOut)
			}
		})
	}
	wg.Wait()
	t.Logf("4 fetch processes at once: %d token fetches", fetches.Load())
	if f := fetches.Load(); f != 1 {
		t.Errorf("%d token fetches for 4 processes, want 1", f)
	}

	// The key from the environment works like the file.
	withEnv := append(args(keyA)[:len(args(keyA))-3], url)
	code, out, errOut := fetchProcess(t, withEnv, tokenCacheKeyEnv+"="+strings.Repeat("a1", 32))
	if code != 0 || strings.TrimSpace(out) != testserver.User || fetches.Load() != 1 {
		t.Errorf("key from $%s: exit %d, out %q, %d fetches (want still 1)\n%s", tokenCacheKeyEnv, code, out, fetches.Load(), errOut)
	}
	code, out, errOut = fetchProcess(t, args(keyB))
	if code != 0 || strings.TrimSpace(out) != testserver.User {
		t.Fatalf("other key: exit %d, out %q\n%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "stored token ignored") || fetches.Load() != 2 {
		t.Errorf("other key: %d fetches, stderr %q; want a second fetch and a warning", fetches.Load(), errOut)
	}

	for _, s := range []string{errOut, out} {
		if strings.Contains(s, "eyJ") || strings.Contains(s, strings.Repeat("a1", 32)) {
			t.Errorf("a token or key was printed: %q", s)
		}
	}
}

// -token-cache without a key, with a bad key, or without -oauth2-*: a
// usage error, exit 2, and nothing sent.
func TestFetchTokenCacheUsage(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	base := []string{"-oauth2-token-url", "http://127.0.0.1:1/token", "-oauth2-client", "a:b"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(append([]string{}, base...), "-token-cache", "redis://127.0.0.1:1/0", "http://127.0.0.1:1/"), "-token-cache-key"},
		{append(append([]string{}, base...), "-token-cache", "redis://127.0.0.1:1/0", "-token-cache-key", bad, "http://127.0.0.1:1/"), "not 32 bytes"},
		{append(append([]string{}, base...), "-token-cache", "ftp://x", "-token-cache-plaintext", "http://127.0.0.1:1/"), "redis://"},
		{[]string{"-token-cache", "redis://127.0.0.1:1/0", "http://127.0.0.1:1/"}, "-oauth2-client"},
	} {
		t.Setenv(tokenCacheKeyEnv, "")
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
}
