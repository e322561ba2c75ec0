package main

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth/internal/testserver"
)

func TestDemoRunsAndExitsZero(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 0 {
		t.Fatalf("demo exit %d\n%s", code, errOut.String())
	}
	trace := errOut.String()
	for _, want := range []string{
		`ranking order="Digest[231](SHA-256) > Digest[201](MD5) > Basic[100]"`,
		"chosen scheme=Digest strength=231",
		`authorization="Digest (preemptive)"`,
		"skipped scheme=Basic why=\"weaker than an answer already rejected (no downgrade)\"",
	} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace lacks %q", want)
		}
	}
	basic := base64.StdEncoding.EncodeToString([]byte("demo:correct horse"))
	for _, line := range strings.Split(trace, "\n") {
		if strings.HasPrefix(line, "* ") && (strings.Contains(line, "correct horse") || strings.Contains(line, basic)) {
			t.Errorf("a trace line shows the password: %s", line)
		}
	}
	if !strings.Contains(out.String(), "nc=00000003") {
		t.Errorf("third request did not reuse the nonce: %s", out.String())
	}
}

func TestExitStatus(t *testing.T) {
	srv := httptest.NewServer(&demoServer{nonces: map[string]bool{}})
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "body")
	os.WriteFile(file, []byte("from a file"), 0o600)
	cases := []struct {
		args []string
		want int
		out  string
	}{
		{[]string{"-u", "demo:correct horse", srv.URL + "/protected/"}, 0, "Digest SHA-256"},
		{[]string{"-u", "demo:correct horse", "-d", "@" + file, srv.URL + "/basic/up"}, 0, `"from a file"`},
		{[]string{"-u", "demo:nope", srv.URL + "/protected/"}, 1, "401"},
		{[]string{srv.URL + "/protected/"}, 1, "401"},
		{[]string{"-u", "nocolon", srv.URL + "/protected/"}, 2, ""},
		{[]string{"-bogus"}, 2, ""},
		{[]string{"ftp://x"}, 2, ""},
		{[]string{"a", "b"}, 2, ""},
		{[]string{"-bearer", "tok", "-oauth2-token-url", "http://127.0.0.1:1/", "-oauth2-client", "a:b", srv.URL}, 2, ""},
		{[]string{"-oauth2-token-url", "http://127.0.0.1:1/", srv.URL}, 2, ""},
		{[]string{"-oauth2-token-url", "http://127.0.0.1:1/", "-oauth2-client", "nocolon", srv.URL}, 2, ""},
		{[]string{"http://127.0.0.1:1/"}, 2, ""},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		if got := run(c.args, &out, &errOut); got != c.want {
			t.Errorf("fetch %q: exit %d, want %d\n%s", c.args, got, c.want, errOut.String())
		}
		if !strings.Contains(out.String(), c.out) {
			t.Errorf("fetch %q: output %q lacks %q", c.args, out.String(), c.out)
		}
	}
}

// A redirect to another origin gets no credentials from -u; without -L,
// the redirect is not followed at all.
func TestUserScopedToOrigin(t *testing.T) {
	var got []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.Header().Set("WWW-Authenticate", `Basic realm="other"`)
		w.WriteHeader(401)
	}))
	defer other.Close()
	home := httptest.NewServer(http.RedirectHandler(other.URL+"/x", http.StatusFound))
	defer home.Close()
	var out, errOut bytes.Buffer
	if code := run([]string{"-u", "a:b", home.URL}, &out, &errOut); code != 0 || len(got) != 0 {
		t.Fatalf("without -L: exit %d, other origin hit %d times", code, len(got))
	}
	if code := run([]string{"-L", "-u", "a:b", home.URL}, &out, &errOut); code != 1 || len(got) == 0 {
		t.Fatalf("-L: exit %d, other origin hit %d times", code, len(got))
	}
	for _, a := range got {
		if a != "" {
			t.Fatalf("other origin got %q", a)
		}
	}
}

// The acceptance runs, against the real servers: five GETs on
// Apache's Digest location cost one 401 and five 200s; lighttpd's two
// challenges (SHA-256 and MD5) are answered with SHA-256.
func TestFetchAgainstRealServers(t *testing.T) {
	apache := sharedApache(t)
	var out, errOut bytes.Buffer
	// A query of its own: the Apache is shared with other tests.
	target := testserver.PathDigest + "index.txt?acceptance"
	url := apache.URL + target
	if code := run([]string{"-u", testserver.User + ":" + testserver.Password, "-n", "5", url}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	var statuses []int
	for i := 0; i < 20 && len(statuses) < 6; i++ { // log lines may lag
		statuses = statuses[:0]
		for _, h := range apache.Requests(target) {
			statuses = append(statuses, h.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if fmt.Sprint(statuses) != "[401 200 200 200 200 200]" {
		t.Fatalf("Apache saw %v, want one 401 and five 200s", statuses)
	}

	lighttpd := sharedLighttpd(t)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-v", "-u", testserver.User + ":" + testserver.Password, lighttpd.URL + testserver.PathMulti}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	for _, want := range []string{"ranking order=\"Digest[231](SHA-256) > Digest[201](MD5)\"", "chosen scheme=Digest strength=231"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("trace lacks %q:\n%s", want, errOut.String())
		}
	}
}
