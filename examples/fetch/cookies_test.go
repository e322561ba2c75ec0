package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// A server that keeps its Digest nonce in the session cookie of its 401,
// as Flask-HTTPAuth does, accepts only answers that come back with that
// cookie: fetch's jar, given to the Transport, carries it on the replay
// and on the preemptive answers after it.
func TestFetchCookieBoundNonce(t *testing.T) {
	s := newAuthServer("auth")
	s.sessionNonce = true
	srv := httptest.NewServer(s)
	defer srv.Close()

	// The server is strict: a Transport without a jar cannot get in.
	bare := &http.Client{Transport: &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Digest{}},
		Credentials: anyauth.ForOrigin(srv.URL, tUser, tPass),
	}}
	resp, err := bare.Get(srv.URL + "/nojar")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without a jar: %d, want 401", resp.StatusCode)
	}
	s.reset()

	code, out, errOut := runFetch("-u", tCreds, "-n", "10", srv.URL+"/flask")
	if code != 0 || out != "ok GET 0 bytes\n" || !strings.Contains(errOut, "fetch: 10 requests, final statuses 10x200, 11 round trips") {
		t.Fatalf("exit %d, out %q\n%s", code, out, errOut)
	}
	reqs := s.requests()
	if got := fmt.Sprint(statuses(reqs)); got != "[401 200 200 200 200 200 200 200 200 200 200]" {
		t.Fatalf("server saw %s", got)
	}
	for i, r := range reqs[1:] {
		if !strings.Contains(r.cookie, "session=") || !strings.Contains(r.auth, fmt.Sprintf("nc=%08x", i+1)) {
			t.Errorf("request %d: cookie %q, authorization %q", i+2, r.cookie, r.auth)
		}
	}
}

// -c writes the run's cookies to a Netscape cookie file; -b reads them
// back, and the server gets them; -b FILE -c FILE updates the file.
func TestFetchCookieFiles(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/set":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "abc123", Path: "/"})
			http.SetCookie(w, &http.Cookie{Name: "pref", Value: "dark", Path: "/", MaxAge: 3600, HttpOnly: true})
			http.SetCookie(w, &http.Cookie{Name: "scoped", Value: "s", Path: "/app"})
			http.SetCookie(w, &http.Cookie{Name: "old", Value: "1", Path: "/", Expires: time.Now().Add(-time.Hour)})
			http.SetCookie(w, &http.Cookie{Name: "tld", Value: "1", Path: "/", Domain: "com"})
		case "/logout":
			http.SetCookie(w, &http.Cookie{Name: "sid", Value: "", Path: "/", MaxAge: -1})
		}
		fmt.Fprintf(w, "cookies: %s\n", r.Header.Get("Cookie"))
	}))
	defer srv.Close()
	jar := filepath.Join(t.TempDir(), "cookies.txt")

	if code, _, errOut := runFetch("-c", jar, srv.URL+"/set"); code != 0 {
		t.Fatalf("-c: exit %d\n%s", code, errOut)
	}
	file, err := os.ReadFile(jar)
	if err != nil {
		t.Fatal(err)
	}
	text := string(file)
	if fi, _ := os.Stat(jar); fi.Mode().Perm() != 0o600 {
		t.Errorf("cookie file mode %v, want 0600", fi.Mode().Perm())
	}
	host := strings.TrimPrefix(srv.URL, "http://")
	host = host[:strings.LastIndex(host, ":")]
	if !strings.HasPrefix(text, "# Netscape HTTP Cookie File\n") ||
		!strings.Contains(text, "\n"+host+"\tFALSE\t/\tFALSE\t0\tsid\tabc123\n") ||
		!strings.Contains(text, "\n"+host+"\tFALSE\t/app\tFALSE\t0\tscoped\ts\n") ||
		strings.Contains(text, "\told\t") || strings.Contains(text, "\ttld\t") {
		t.Fatalf("cookie file:\n%s", text)
	}
	m := regexp.MustCompile(`\n#HttpOnly_` + regexp.QuoteMeta(host) + `\tFALSE\t/\tFALSE\t(\d+)\tpref\tdark\n`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no HttpOnly pref line:\n%s", text)
	}
	if exp, _ := strconv.ParseInt(m[1], 10, 64); exp < time.Now().Add(59*time.Minute).Unix() || exp > time.Now().Add(61*time.Minute).Unix() {
		t.Errorf("pref expires at %d, want in an hour", exp)
	}

	// -b sends them back, by path.
	code, out, _ := runFetch("-b", jar, srv.URL+"/echo")
	if code != 0 || !strings.Contains(out, "sid=abc123") || !strings.Contains(out, "pref=dark") || strings.Contains(out, "scoped") {
		t.Fatalf("-b: exit %d, server got %q", code, out)
	}
	if _, out, _ := runFetch("-b", jar, srv.URL+"/app/echo"); !strings.Contains(out, "scoped=s") {
		t.Fatalf("-b on /app/: server got %q", out)
	}

	// -b and -c on one file: the server's deletion is written back.
	if code, _, errOut := runFetch("-b", jar, "-c", jar, srv.URL+"/logout"); code != 0 {
		t.Fatalf("-b -c: exit %d\n%s", code, errOut)
	}
	file, _ = os.ReadFile(jar)
	if strings.Contains(string(file), "\tsid\t") || !strings.Contains(string(file), "\tpref\tdark\n") {
		t.Fatalf("after logout:\n%s", file)
	}

	// A file written by hand (or by curl): comments, CRLF, a domain cookie,
	// an expired one, a malformed line, an empty value, a Secure one (sent:
	// localhost is a secure origin for cookiejar, as for browsers).
	hand := filepath.Join(t.TempDir(), "hand.txt")
	os.WriteFile(hand, []byte("# Netscape HTTP Cookie File\r\n"+
		"# a comment\tTRUE\t/\tFALSE\t0\tcomment\tno\r\n"+
		".localhost\tTRUE\t/\tFALSE\t0\tdom\tv\r\n"+
		"localhost\tFALSE\t/\tFALSE\t1\texpired\tno\r\n"+
		"localhost\tFALSE\t/\tTRUE\t0\tsecure\tyes\r\n"+
		"not a cookie line\r\n"+
		"#HttpOnly_localhost\tFALSE\t/\tFALSE\t0\tempty\t\r\n"), 0o600)
	local := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	code, out, _ = runFetch("-b", hand, local+"/echo")
	if code != 0 || out != "cookies: dom=v; secure=yes; empty=\n" {
		t.Fatalf("hand-written -b: exit %d, server got %q", code, out)
	}

	// -b NAME=VALUE sends that, and a missing -b file is no cookies.
	if _, out, _ := runFetch("-b", "a=1; b=2", srv.URL+"/echo"); out != "cookies: a=1; b=2\n" {
		t.Fatalf("-b a=1; b=2: server got %q", out)
	}
	if code, out, _ := runFetch("-b", filepath.Join(t.TempDir(), "missing"), srv.URL+"/echo"); code != 0 || out != "cookies: \n" {
		t.Fatalf("missing -b file: exit %d, server got %q", code, out)
	}
}

func TestCookieDomain(t *testing.T) {
	for _, c := range []struct {
		host, attr, domain string
		hostOnly, ok       bool
	}{
		{"www.example.com", "", "www.example.com", true, true},
		{"www.example.com", ".Example.com", "example.com", false, true},
		{"www.example.com", "www.example.com", "www.example.com", false, true},
		{"www.example.com", "com", "", false, false},
		{"www.example.com", "other.com", "", false, false},
		{"www.example.com", "ww.example.com", "", false, false},
		{"127.0.0.1", "127.0.0.1", "127.0.0.1", true, true},
		{"127.0.0.1", "0.0.1", "", false, false},
		{"localhost", "localhost", "localhost", false, true},
		{"shop.example.co.uk", "co.uk", "", false, false}, // a public suffix
		{"shop.example.co.uk", "example.co.uk", "example.co.uk", false, true},
	} {
		d, hostOnly, ok := cookieDomain(c.host, c.attr)
		if d != c.domain || hostOnly != c.hostOnly || ok != c.ok {
			t.Errorf("cookieDomain(%q, %q) = %q, %t, %t; want %q, %t, %t", c.host, c.attr, d, hostOnly, ok, c.domain, c.hostOnly, c.ok)
		}
	}
}
