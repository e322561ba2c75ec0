package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// runFetch runs fetch with args and returns its exit status, stdout and
// stderr.
func runFetch(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// -L follows a redirect from A (which asks Digest or Basic) to B, on
// another port (another origin), which asks too. -u's credentials go to A
// only; with -location-trusted, to B as well. Without -L, B is never
// reached.
func TestFetchLocation(t *testing.T) {
	b := newAuthServer("auth")
	b.basic = true
	srvB := httptest.NewServer(b)
	defer srvB.Close()
	a := newAuthServer("auth")
	a.basic = true
	a.ok = func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srvB.URL+"/landing", http.StatusFound)
	}
	srvA := httptest.NewServer(a)
	defer srvA.Close()
	start := srvA.URL + "/start"
	authorized := func(s *authServer) (with, without int) {
		for _, r := range s.requests() {
			if r.auth != "" {
				with++
			} else {
				without++
			}
		}
		return with, without
	}

	// Without -L: A's 302 is the answer (exit 0); B sees nothing.
	code, out, errOut := runFetch("-u", tCreds, start)
	if code != 0 || len(b.requests()) != 0 || !strings.Contains(errOut, "302 Found") {
		t.Fatalf("without -L: exit %d, B saw %d requests\n%s%s", code, len(b.requests()), out, errOut)
	}

	// -L: A is answered, B gets no credentials and its 401 comes back.
	code, _, errOut = runFetch("-L", "-u", tCreds, start)
	if code != 1 || !strings.Contains(errOut, "401 Unauthorized at "+srvB.URL+"/landing") {
		t.Fatalf("-L: exit %d, want 1 (B's 401)\n%s", code, errOut)
	}
	if with, _ := authorized(a); with == 0 {
		t.Fatal("-L: A got no Authorization")
	}
	if with, without := authorized(b); with != 0 || without == 0 {
		t.Fatalf("-L: B got %d requests with Authorization, %d without: want none with", with, without)
	}

	// -location-trusted: B is answered too (Digest, the stronger).
	a.reset()
	b.reset()
	code, out, errOut = runFetch("-location-trusted", "-u", tCreds, start)
	if code != 0 || out != "ok GET 0 bytes\n" {
		t.Fatalf("-location-trusted: exit %d, out %q\n%s", code, out, errOut)
	}
	for name, s := range map[string]*authServer{"A": a, "B": b} {
		if with, _ := authorized(s); with == 0 {
			t.Errorf("-location-trusted: %s got no Authorization", name)
		}
	}
	if last := b.requests()[len(b.requests())-1]; last.status != 200 || !strings.HasPrefix(last.auth, "Digest ") {
		t.Errorf("-location-trusted: B's last request %d with %q", last.status, last.auth)
	}

	// -i -L prints the head of the redirect, then the final response.
	code, out, _ = runFetch("-i", "-location-trusted", "-u", tCreds, start)
	if code != 0 || !regexp.MustCompile(`^`+head("302 Found")+head("200 OK")+`ok GET 0 bytes\n$`).MatchString(out) || !strings.Contains(out, "\r\nLocation: "+srvB.URL+"/landing\r\n") {
		t.Fatalf("-i -L: exit %d, out %q", code, out)
	}
}

// -L stops after 50 redirects, as curl (which exits 47; fetch 2).
func TestFetchLocationLimit(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("/loop/%d", hits.Add(1)), http.StatusFound)
	}))
	defer srv.Close()
	code, _, errOut := runFetch("-L", srv.URL)
	if code != 2 || !strings.Contains(errOut, "maximum (50) redirects followed") || hits.Load() != 51 {
		t.Fatalf("exit %d after %d requests\n%s", code, hits.Load(), errOut)
	}
}

// -o, -i, -I, -s, -f and -fail-with-body: outputs and exit statuses as
// curl's.
func TestFetchOutputFlags(t *testing.T) {
	var lastMethod atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lastMethod.Store(r.Method)
		w.Header().Set("X-Test", "yes")
		switch r.URL.Path {
		case "/ok":
			fmt.Fprint(w, "hello body\n")
		case "/chunked":
			w.(http.Flusher).Flush()
			fmt.Fprint(w, "streamed\n")
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, "not here\n")
		}
	}))
	defer srv.Close()
	ok, missing := srv.URL+"/ok", srv.URL+"/missing"
	dir := t.TempDir()
	file := func(name string) string { return filepath.Join(dir, name) }
	read := func(name string) string {
		b, err := os.ReadFile(file(name))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	head200 := regexp.MustCompile(`^` + head("200 OK") + `$`)
	withHeader := regexp.MustCompile(`\r\nX-Test: yes\r\n`)

	cases := []struct {
		name     string
		args     []string
		code     int
		out      string         // stdout, exactly (unless outRe)
		outRe    *regexp.Regexp // stdout matches
		outHas   *regexp.Regexp // and holds a match of this
		errWant  string         // stderr contains
		errEmpty bool
		check    func() string // "" or what is wrong
	}{
		{name: "plain", args: []string{ok}, out: "hello body\n", errWant: "< GET " + ok + ": 200 OK"},
		{name: "-o", args: []string{"-o", file("body"), ok}, check: func() string {
			if got := read("body"); got != "hello body\n" {
				return "file holds " + got
			}
			return ""
		}},
		{name: "-o -", args: []string{"-o", "-", ok}, out: "hello body\n"},
		{name: "-i", args: []string{"-i", ok}, outRe: regexp.MustCompile(`^` + head("200 OK") + `hello body\n$`), outHas: withHeader},
		{name: "-i chunked", args: []string{"-i", srv.URL + "/chunked"}, outRe: regexp.MustCompile(`^` + head("200 OK") + `streamed\n$`), outHas: regexp.MustCompile(`\r\nTransfer-Encoding: chunked\r\n`)},
		{name: "-i -o", args: []string{"-i", "-o", file("both"), ok}, check: func() string {
			if got := read("both"); !regexp.MustCompile(`^` + head("200 OK") + `hello body\n$`).MatchString(got) {
				return fmt.Sprintf("file holds %q", got)
			}
			return ""
		}},
		{name: "-I", args: []string{"-I", ok}, outRe: head200, outHas: withHeader, errWant: "< HEAD ", check: func() string {
			if m := lastMethod.Load(); m != http.MethodHead {
				return fmt.Sprintf("server saw %v", m)
			}
			return ""
		}},
		{name: "-I -X GET", args: []string{"-I", "-X", "GET", ok}, outRe: head200},
		{name: "-s", args: []string{"-s", ok}, out: "hello body\n", errEmpty: true},
		{name: "404", args: []string{missing}, code: 1, out: "not here\n"},
		{name: "-f 404", args: []string{"-f", missing}, code: 22, errWant: "fetch: (22) The requested URL returned error: 404"},
		{name: "-f -i 404", args: []string{"-f", "-i", missing}, code: 22},
		{name: "-s -f 404", args: []string{"-s", "-f", missing}, code: 22, errWant: "(22)"},
		{name: "-f -o 404", args: []string{"-f", "-o", file("none"), missing}, code: 22, check: func() string {
			if _, err := os.Stat(file("none")); !errors.Is(err, fs.ErrNotExist) {
				return fmt.Sprintf("-o file made: %v", err)
			}
			return ""
		}},
		{name: "-f 200", args: []string{"-f", ok}, out: "hello body\n"},
		{name: "-fail-with-body 404", args: []string{"-fail-with-body", missing}, code: 22, out: "not here\n", errWant: "(22) The requested URL returned error: 404"},
		{name: "-fail-with-body -o 404", args: []string{"--fail-with-body", "-o", file("failbody"), missing}, code: 22, check: func() string {
			if got := read("failbody"); got != "not here\n" {
				return "file holds " + got
			}
			return ""
		}},
		{name: "-f several", args: []string{"-f", "-n", "2", ok, missing}, code: 22, out: "hello body\n", errWant: "final statuses 2x200 2x404"},
		{name: "-proxy-anyauth", args: []string{"-proxy-anyauth", ok}, out: "hello body\n"},
		{name: "-f -fail-with-body", args: []string{"-f", "-fail-with-body", ok}, code: 2},
		{name: "-I -d", args: []string{"-I", "-d", "x", ok}, code: 2},
		{name: "-d -T", args: []string{"-d", "x", "-T", file("body"), ok}, code: 2},
		{name: "-T missing", args: []string{"-T", file("no-such-file"), ok}, code: 2},
		{name: "-o unwritable", args: []string{"-o", filepath.Join(dir, "no", "dir", "f"), ok}, code: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runFetch(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d\n%s", code, c.code, errOut)
			}
			switch {
			case c.outRe != nil:
				if !c.outRe.MatchString(out) {
					t.Errorf("stdout %q does not match %s", out, c.outRe)
				}
			case out != c.out:
				t.Errorf("stdout %q, want %q", out, c.out)
			}
			if c.outHas != nil && !c.outHas.MatchString(out) {
				t.Errorf("stdout %q lacks %s", out, c.outHas)
			}
			if !strings.Contains(errOut, c.errWant) {
				t.Errorf("stderr lacks %q:\n%s", c.errWant, errOut)
			}
			if c.errEmpty && errOut != "" {
				t.Errorf("stderr not empty: %q", errOut)
			}
			if strings.HasPrefix(c.name, "-s -f") && strings.Contains(errOut, "< GET") {
				t.Errorf("-s printed a status line: %q", errOut)
			}
			if c.check != nil {
				if msg := c.check(); msg != "" {
					t.Error(msg)
				}
			}
		})
	}

	// A wrong password: the server's final 401 is a failure for -f.
	d := httptest.NewServer(newAuthServer("auth"))
	defer d.Close()
	if code, out, errOut := runFetch("-f", "-u", tUser+":wrong", d.URL); code != 22 || out != "" {
		t.Errorf("-f with a wrong password: exit %d, out %q\n%s", code, out, errOut)
	}
}

// -T uploads a file with PUT, streamed: the Transport replays it after the
// Digest 401 by seeking, and the server, asking qop=auth-int, checks the
// hash of the body it got. Each attempt carries the whole file; the meter
// counts both.
func TestFetchUpload(t *testing.T) {
	s := newAuthServer("auth-int")
	srv := httptest.NewServer(s)
	defer srv.Close()
	payload := make([]byte, 3<<20) // over the 1 MiB replay buffer: it is seeked, not buffered
	for i := range payload {
		payload[i] = byte(i*7 + i>>9)
	}
	file := filepath.Join(t.TempDir(), "payload.bin")
	if err := os.WriteFile(file, payload, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runFetch("-T", file, "-u", tCreds, "-progress", srv.URL+"/up/")
	if code != 0 || out != fmt.Sprintf("ok PUT %d bytes\n", len(payload)) {
		t.Fatalf("exit %d, out %q\n%s", code, out, errOut)
	}
	reqs := s.requests()
	if len(reqs) != 2 || reqs[0].status != 401 || reqs[1].status != 200 {
		t.Fatalf("server saw %d requests: %+v", len(reqs), statuses(reqs))
	}
	for i, r := range reqs {
		if r.method != http.MethodPut || r.path != "/up/payload.bin" || !bytes.Equal(r.body, payload) {
			t.Errorf("request %d: %s %s with %d bytes, want PUT /up/payload.bin with the whole file", i, r.method, r.path, len(r.body))
		}
	}
	if !strings.Contains(reqs[1].auth, "qop=auth-int") {
		t.Errorf("accepted answer %q is not auth-int", reqs[1].auth)
	}
	if !strings.Contains(errOut, "6.0 MiB sent") {
		t.Errorf("meter does not count both attempts:\n%s", errOut)
	}

	// A file name that needs escaping in the URL.
	odd := filepath.Join(t.TempDir(), "100% sure.txt")
	os.WriteFile(odd, []byte("odd"), 0o600)
	s.reset()
	if code, _, errOut := runFetch("-T", odd, "-u", tCreds, srv.URL+"/up/"); code != 0 {
		t.Fatalf("-T %q: exit %d\n%s", odd, code, errOut)
	}
	if r := s.requests(); len(r) == 0 || r[len(r)-1].path != "/up/100% sure.txt" || string(r[len(r)-1].body) != "odd" {
		t.Fatalf("-T %q: server saw %+v", odd, r)
	}

	// With -n 3 the answer goes preemptively: one 401 in all.
	s.reset()
	if code, _, errOut := runFetch("-T", file, "-u", tCreds, "-n", "3", srv.URL+"/up/again"); code != 0 {
		t.Fatalf("-n 3: exit %d\n%s", code, errOut)
	}
	if got := fmt.Sprint(statuses(s.requests())); got != "[401 200 200 200]" {
		t.Errorf("-n 3: server saw %s", got)
	}
}

// head matches a response head with that status, as curl -i prints it.
func head(status string) string {
	return `HTTP/1\.1 ` + regexp.QuoteMeta(status) + `\r\n(?:[A-Z][-A-Za-z]*: [^\r\n]*\r\n)*\r\n`
}

func statuses(reqs []seenRequest) []int {
	var s []int
	for _, r := range reqs {
		s = append(s, r.status)
	}
	return s
}

// The progress meter: forced with -progress it shows the bytes, the rate
// and the time; -s turns it off; unforced, it shows once a transfer lasts
// longer than meterAfter.
func TestFetchProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			for range 6 {
				w.Write(make([]byte, 1000))
				w.(http.Flusher).Flush()
				time.Sleep(100 * time.Millisecond)
			}
			return
		}
		w.Write(make([]byte, 100<<10))
	}))
	defer srv.Close()
	meterLine := regexp.MustCompile(`\r  100\.0 KiB received, 0 B sent, [0-9.]+ [KMG]?i?B/s, [0-9.]+ s\n`)

	code, out, errOut := runFetch("-progress", srv.URL)
	if code != 0 || len(out) != 100<<10 || !meterLine.MatchString(errOut) {
		t.Fatalf("-progress: exit %d, %d bytes out; stderr %q", code, len(out), errOut)
	}
	// The meter's line is ended before the next line.
	if !strings.Contains(errOut, " s\n< GET ") && !strings.Contains(errOut, "200 OK\n\r  ") {
		t.Errorf("meter and status lines run together: %q", errOut)
	}
	if _, _, errOut := runFetch("-s", "-progress", srv.URL); errOut != "" {
		t.Errorf("-s -progress: stderr %q", errOut)
	}
	if _, _, errOut := runFetch(srv.URL); strings.Contains(errOut, "received") {
		t.Errorf("a short transfer showed the meter: %q", errOut)
	}

	defer func(d time.Duration) { meterAfter = d }(meterAfter)
	meterAfter = 200 * time.Millisecond
	if _, _, errOut := runFetch("-o", filepath.Join(t.TempDir(), "slow"), srv.URL+"/slow"); !strings.Contains(errOut, "5.9 KiB received") {
		t.Errorf("a slow transfer showed no meter: %q", errOut)
	}

	// Never when stdout is the terminal being written: /dev/null and
	// files are not terminals.
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(null) || isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Error("isTerminal is true for /dev/null, a file or a buffer")
	}
}

// Every flag is listed once by -h and once in README's "The fetch tool".
func TestFlagsDocumented(t *testing.T) {
	fs := newFlagSet(&options{}, io.Discard)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })

	var help bytes.Buffer
	if code := run([]string{"-h"}, io.Discard, &help); code != 0 {
		t.Fatalf("-h: exit %d", code)
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), "## The fetch tool\n\n```\n")
	section, _, _ = strings.Cut(section, "```")
	if !strings.Contains(section, "  -location-trusted ") {
		t.Fatalf("README's fetch flag list not found")
	}
	// A definition is a line "  -flag ARG  description": the flags of its
	// left column are defined there ("-d DATA | -d @FILE" defines -d).
	defined := map[string]int{}
	flagRe := regexp.MustCompile(`(?:^|[\s\[|])-([A-Za-z][-A-Za-z0-9]*)`)
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "  -") {
			continue
		}
		left, _, _ := strings.Cut(strings.TrimSpace(line), "  ")
		seen := map[string]bool{}
		for _, m := range flagRe.FindAllStringSubmatch(left, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				defined[m[1]]++
			}
		}
	}
	for _, name := range names {
		if n := len(regexp.MustCompile(`(?m)^  -`+regexp.QuoteMeta(name)+`[\s]`).FindAllString(help.String(), -1)); n != 1 {
			t.Errorf("-h lists -%s %d times", name, n)
		}
		if defined[name] != 1 {
			t.Errorf("README lists -%s %d times", name, defined[name])
		}
		delete(defined, name)
	}
	for name := range defined {
		t.Errorf("README lists -%s, which fetch does not have", name)
	}
}
