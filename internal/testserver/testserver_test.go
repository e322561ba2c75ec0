package testserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

var client = &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}

// do sends a request and returns the response with its body read.
func do(t *testing.T, method, url string, body string, auth func(*http.Request)) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		auth(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func basic(req *http.Request) { req.SetBasicAuth(User, Password) }

// challenges GETs url unauthenticated, expects 401 and returns (and logs)
// the WWW-Authenticate lines.
func challenges(t *testing.T, s *Server, path string) []string {
	t.Helper()
	resp, _ := do(t, "GET", s.URL+path, "", nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s: %s, want 401", path, resp.Status)
	}
	lines := resp.Header.Values("WWW-Authenticate")
	for _, l := range lines {
		t.Logf("%s %s 401 WWW-Authenticate: %s", s.Name, path, l)
	}
	if c := resp.Header.Get("Connection"); c != "" {
		t.Logf("%s %s 401 Connection: %s", s.Name, path, c)
	}
	return lines
}

// params parses the auth-params of one challenge line (one challenge per
// line, as both servers send), lowercasing the names.
func params(challenge string) (scheme string, p map[string]string) {
	scheme, rest, _ := strings.Cut(challenge, " ")
	p = map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(name))
		after = strings.TrimLeft(after, " ")
		var val string
		if strings.HasPrefix(after, `"`) {
			end := 1
			for end < len(after) && after[end] != '"' {
				if after[end] == '\\' {
					end++
				}
				end++
			}
			val = strings.ReplaceAll(after[1:min(end, len(after))], `\`, ``)
			after = after[min(end+1, len(after)):]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
			val = strings.TrimSpace(val)
		}
		p[name] = val
		_, rest, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(rest)
	}
	return scheme, p
}

// digestAuth is a minimal RFC 7616 response for the tests of this package
// (qop=auth only); the real client lives in package schemes.
func digestAuth(method, uri string, ch map[string]string, nc int, userhash bool) func(*http.Request) {
	alg := ch["algorithm"]
	if alg == "" {
		alg = "MD5"
	}
	realm, nonce, cnonce := ch["realm"], ch["nonce"], "0a4f113b"
	ha1 := hexHash(alg, User+":"+realm+":"+Password)
	ha2 := hexHash(alg, method+":"+uri)
	ncs := fmt.Sprintf("%08x", nc)
	resp := hexHash(alg, strings.Join([]string{ha1, nonce, ncs, cnonce, "auth", ha2}, ":"))
	user := User
	if userhash {
		user = Userhash(User, realm, alg)
	}
	h := fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=%s, response="%s", qop=auth, nc=%s, cnonce="%s"`,
		user, realm, nonce, uri, alg, resp, ncs, cnonce)
	if o, ok := ch["opaque"]; ok {
		h += fmt.Sprintf(`, opaque="%s"`, o)
	}
	if userhash {
		h += ", userhash=true"
	}
	return func(req *http.Request) { req.Header.Set("Authorization", h) }
}

// digestChallenge returns the params of the Digest challenge of path with
// the given algorithm ("" for the first Digest line).
func digestChallenge(t *testing.T, s *Server, path, alg string) map[string]string {
	t.Helper()
	for _, l := range challenges(t, s, path) {
		scheme, p := params(l)
		if strings.EqualFold(scheme, "Digest") && (alg == "" || p["algorithm"] == alg) {
			return p
		}
	}
	t.Fatalf("%s: no Digest %s challenge", path, alg)
	return nil
}

func wantStatus(t *testing.T, what string, resp *http.Response, body string, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Errorf("%s: %s %q, want %d", what, resp.Status, body, want)
	}
}

func checkStatic(t *testing.T, s *Server, path string, auth func(*http.Request)) {
	t.Helper()
	for _, p := range []string{path + "index.txt", path} {
		resp, body := do(t, "GET", s.URL+p, "", auth)
		wantStatus(t, "GET "+p, resp, body, 200)
		if body != IndexContent(path) {
			t.Errorf("GET %s: body %q, want %q", p, body, IndexContent(path))
		}
	}
}

func checkEcho(t *testing.T, s *Server, path string, auth func(*http.Request)) {
	t.Helper()
	body := strings.Repeat("echo body with spaces\n", 1000)
	for _, method := range []string{"POST", "PUT"} {
		resp, got := do(t, method, s.URL+path+"echo", body, auth)
		wantStatus(t, method+" "+path+"echo", resp, got, 200)
		if got != EchoReply([]byte(body)) {
			t.Errorf("%s %secho: %q, want %q", method, path, got, EchoReply([]byte(body)))
		}
	}
	// Chunked request body (unknown length), as http.Client sends for a
	// plain io.Reader.
	req, _ := http.NewRequest("POST", s.URL+path+"echo", io.MultiReader(strings.NewReader(body)))
	auth(req)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantStatus(t, "chunked POST "+path+"echo", resp, string(got), 200)
	if string(got) != EchoReply([]byte(body)) {
		t.Errorf("chunked POST %secho: %q, want %q", path, got, EchoReply([]byte(body)))
	}
}

func checkStopped(t *testing.T, s *Server) {
	t.Helper()
	pid := s.cmd.Process.Pid
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if live := liveGroupMembers(pid); len(live) > 0 {
		t.Errorf("process group %d: %v still alive after Close", pid, live)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", s.Dir, err)
	}
	if _, err := client.Get(s.URL + "/index.txt"); err == nil {
		t.Errorf("%s still answers after Close", s.URL)
	}
}

func TestApache(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, StartApache)
	t.Logf("apache at %s in %s, started in %v", s.URL, s.Dir, s.Startup)

	// Challenges.
	for _, path := range []string{PathBasic, PathDigest, PathDigestStale, PathMulti} {
		lines := challenges(t, s, path+"index.txt")
		var schemes []string
		for _, l := range lines {
			scheme, p := params(l)
			schemes = append(schemes, scheme)
			wantRealm := RealmDigest
			if path == PathBasic {
				wantRealm = RealmBasic
			}
			if p["realm"] != wantRealm {
				t.Errorf("%s: realm %q, want %q", path, p["realm"], wantRealm)
			}
			if scheme == "Digest" && (p["algorithm"] != "MD5" || p["qop"] != "auth" || p["domain"] != path || p["nonce"] == "") {
				t.Errorf("%s: unexpected Digest challenge %q", path, l)
			}
		}
		want := map[string]string{PathBasic: "Basic", PathDigest: "Digest", PathDigestStale: "Digest", PathMulti: "Basic Digest"}[path]
		if got := strings.Join(schemes, " "); got != want {
			t.Errorf("%s: challenge schemes %q, want %q", path, got, want)
		}
	}

	// Basic.
	resp, body := do(t, "GET", s.URL+PathBasic+"index.txt", "", func(r *http.Request) { r.SetBasicAuth(User, "wrong") })
	wantStatus(t, "wrong password", resp, body, 401)
	checkStatic(t, s, PathBasic, basic)
	checkEcho(t, s, PathBasic, basic)

	// /multi/ also takes Basic, since its Basic line is a real alternative
	// only in the eyes of the client: Apache checks Digest and refuses it.
	resp, _ = do(t, "GET", s.URL+PathMulti+"index.txt", "", basic)
	t.Logf("apache %s with Basic credentials: %s", PathMulti, resp.Status)

	// Digest with nonce-count checking.
	ch := digestChallenge(t, s, PathDigest, "")
	uri := PathDigest + "index.txt"
	resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, 1, false))
	wantStatus(t, "digest nc=1", resp, body, 200)
	t.Logf("apache %s 200 Authentication-Info: %s", PathDigest, resp.Header.Get("Authentication-Info"))
	if ai := resp.Header.Get("Authentication-Info"); !strings.Contains(ai, "rspauth=") {
		t.Errorf("no rspauth in Authentication-Info %q", ai)
	}
	resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, 1, false))
	wantStatus(t, "digest replayed nc=1 (AuthDigestNcCheck)", resp, body, 401)
	t.Logf("apache %s replayed nc 401 WWW-Authenticate: %s", PathDigest, resp.Header.Get("WWW-Authenticate"))
	resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, 2, false))
	wantStatus(t, "digest nc=2", resp, body, 200)
	resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, 7, false))
	wantStatus(t, "digest nc=7 (skipping counts)", resp, body, 200)
	for _, p := range []string{PathDigest, PathDigest + "index.txt"} {
		ch := digestChallenge(t, s, p, "")
		resp, body := do(t, "GET", s.URL+p, "", digestAuth("GET", p, ch, 1, false))
		wantStatus(t, "digest GET "+p, resp, body, 200)
		if body != IndexContent(PathDigest) {
			t.Errorf("GET %s: %q", p, body)
		}
	}
	ch = digestChallenge(t, s, PathMulti, "")
	uri = PathMulti + "echo"
	resp, body = do(t, "POST", s.URL+uri, "x", digestAuth("POST", uri, ch, 1, false))
	wantStatus(t, "digest POST "+uri, resp, body, 200)
	if body != EchoReply([]byte("x")) {
		t.Errorf("POST %s: %q", uri, body)
	}

	// Stale nonce.
	ch = digestChallenge(t, s, PathDigestStale, "")
	uri = PathDigestStale + "index.txt"
	issued := time.Now()
	resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, 1, false))
	wantStatus(t, "digest-stale fresh", resp, body, 200)
	t.Logf("apache %s 200 Authentication-Info: %s", PathDigestStale, resp.Header.Get("Authentication-Info"))
	for nc := 2; ; nc++ {
		time.Sleep(100 * time.Millisecond)
		resp, body = do(t, "GET", s.URL+uri, "", digestAuth("GET", uri, ch, nc, false))
		if resp.StatusCode == 200 {
			if time.Since(issued) > StaleNonceWait {
				t.Fatalf("nonce still accepted %v after it was issued", time.Since(issued))
			}
			continue
		}
		wantStatus(t, "digest-stale expired", resp, body, 401)
		t.Logf("apache %s: nonce stale after %v: WWW-Authenticate: %s", PathDigestStale,
			time.Since(issued).Round(10*time.Millisecond), resp.Header.Get("WWW-Authenticate"))
		if _, p := params(resp.Header.Get("WWW-Authenticate")); p["stale"] != "true" {
			t.Errorf("expired nonce: no stale=true in %q", resp.Header.Get("WWW-Authenticate"))
		}
		break
	}

	// Hit counting: one 401 and one 200 per new request above, exactly.
	before, before401 := s.Hits(PathBasic)
	for i := 0; i < 3; i++ {
		do(t, "GET", s.URL+PathBasic+"index.txt", "", nil)
		do(t, "GET", s.URL+PathBasic+"index.txt", "", basic)
	}
	total, unauth := s.Hits(PathBasic)
	if total-before != 6 || unauth-before401 != 3 {
		t.Errorf("Hits(%s): +%d total, +%d 401, want +6, +3\n%s", PathBasic, total-before, unauth-before401, s.AccessLog())
	}
	hits := s.Requests(PathBasic)
	if last := hits[len(hits)-1]; last.Status != 200 || last.User != User || last.Method != "GET" || last.Target != PathBasic+"index.txt" {
		t.Errorf("last hit %+v", last)
	}
	if strings.Contains(s.AccessLog(), Password) {
		t.Error("access log contains the password")
	}

	checkStopped(t, s)
}

func TestLighttpd(t *testing.T) {
	t.Parallel()
	s := StartForTest(t, StartLighttpd)
	t.Logf("lighttpd at %s in %s, started in %v", s.URL, s.Dir, s.Startup)

	want := map[string][]string{
		PathBasic:      {"Basic " + RealmBasic},
		PathMD5:        {"Digest MD5 " + RealmMD5},
		PathSHA256:     {"Digest SHA-256 " + RealmSHA256},
		PathSHA512_256: {"Digest SHA-512-256 " + RealmSHA512_256},
		PathMulti:      {"Digest SHA-256 " + RealmMulti, "Digest MD5 " + RealmMulti},
		PathUserhash:   {"Digest SHA-256 " + RealmUserhash},
		// One realm over three directories, each with its own algorithm.
		PathSharedMD5:        {"Digest MD5 " + RealmShared},
		PathSharedSHA256:     {"Digest SHA-256 " + RealmShared},
		PathSharedSHA512_256: {"Digest SHA-512-256 " + RealmShared},
	}
	for _, loc := range s.Locations {
		var got []string
		for _, l := range challenges(t, s, loc.Path+"index.txt") {
			scheme, p := params(l)
			if scheme == "Basic" {
				got = append(got, scheme+" "+p["realm"])
				continue
			}
			got = append(got, scheme+" "+p["algorithm"]+" "+p["realm"])
			if p["qop"] != "auth" || p["charset"] != "UTF-8" || p["nonce"] == "" {
				t.Errorf("%s: unexpected challenge %q", loc.Path, l)
			}
			if (p["userhash"] == "true") != (loc.Path == PathUserhash) {
				t.Errorf("%s: userhash in %q", loc.Path, l)
			}
		}
		if strings.Join(got, "|") != strings.Join(want[loc.Path], "|") {
			t.Errorf("%s: challenges %q, want %q", loc.Path, got, want[loc.Path])
		}
	}

	// Basic.
	resp, body := do(t, "GET", s.URL+PathBasic+"index.txt", "", func(r *http.Request) { r.SetBasicAuth(User, "wrong") })
	wantStatus(t, "wrong password", resp, body, 401)
	checkStatic(t, s, PathBasic, basic)
	checkEcho(t, s, PathBasic, basic)

	// Digest, every algorithm.
	for _, c := range []struct {
		path, alg string
		userhash  bool
	}{
		{PathMD5, "MD5", false},
		{PathSHA256, "SHA-256", false},
		{PathSHA512_256, "SHA-512-256", false},
		{PathMulti, "SHA-256", false},
		{PathMulti, "MD5", false},
		{PathUserhash, "SHA-256", true},
		{PathUserhash, "SHA-256", false},
	} {
		ch := digestChallenge(t, s, c.path, c.alg)
		for _, p := range []string{c.path, c.path + "index.txt"} {
			resp, body := do(t, "GET", s.URL+p, "", digestAuth("GET", p, ch, 1, c.userhash))
			wantStatus(t, fmt.Sprintf("digest %s userhash=%v GET %s", c.alg, c.userhash, p), resp, body, 200)
			if ai := resp.Header.Get("Authentication-Info"); ai != "" {
				t.Logf("lighttpd %s 200 Authentication-Info: %s", p, ai)
			}
		}
		uri := c.path + "echo"
		resp, body := do(t, "POST", s.URL+uri, "abc", digestAuth("POST", uri, ch, 2, c.userhash))
		wantStatus(t, "digest POST "+uri, resp, body, 200)
		if body != EchoReply([]byte("abc")) {
			t.Errorf("POST %s: %q", uri, body)
		}
	}
	// Nonce ageing, with forged nonces (no nonce secret configured).
	ch := digestChallenge(t, s, PathMulti, "MD5")
	for _, c := range []struct {
		age        time.Duration
		status     int
		nextnonce  bool
		staleLines []string
	}{
		{LighttpdNextnonceAge + 2*time.Second, 200, true, nil},
		{LighttpdNonceLifetime + 2*time.Second, 401, false, []string{"MD5 true"}},
	} {
		aged := map[string]string{}
		for k, v := range ch {
			aged[k] = v
		}
		aged["nonce"] = LighttpdNonce(time.Now().Add(-c.age))
		resp, body := do(t, "GET", s.URL+PathMulti, "", digestAuth("GET", PathMulti, aged, 1, false))
		wantStatus(t, fmt.Sprintf("nonce aged %v", c.age), resp, body, c.status)
		ai := resp.Header.Get("Authentication-Info")
		if strings.Contains(ai, "nextnonce=") != c.nextnonce {
			t.Errorf("nonce aged %v: Authentication-Info %q", c.age, ai)
		}
		var got []string
		for _, l := range resp.Header.Values("WWW-Authenticate") {
			t.Logf("lighttpd nonce aged %v: 401 WWW-Authenticate: %s", c.age, l)
			_, p := params(l)
			got = append(got, p["algorithm"]+" "+p["stale"])
		}
		if ai != "" {
			t.Logf("lighttpd nonce aged %v: 200 Authentication-Info: %s", c.age, ai)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.staleLines) {
			t.Errorf("nonce aged %v: challenges %q, want %q", c.age, got, c.staleLines)
		}
	}

	// Wrong algorithm for the realm.
	ch = digestChallenge(t, s, PathSHA256, "")
	ch["algorithm"] = "MD5"
	resp, body = do(t, "GET", s.URL+PathSHA256, "", digestAuth("GET", PathSHA256, ch, 1, false))
	wantStatus(t, "MD5 answer to a SHA-256 challenge", resp, body, 401)

	// Hit counting.
	before, before401 := s.Hits(PathBasic)
	for i := 0; i < 3; i++ {
		do(t, "GET", s.URL+PathBasic+"index.txt", "", nil)
		do(t, "GET", s.URL+PathBasic+"index.txt", "", basic)
	}
	total, unauth := s.Hits(PathBasic)
	if total-before != 6 || unauth-before401 != 3 {
		t.Errorf("Hits(%s): +%d total, +%d 401, want +6, +3\n%s", PathBasic, total-before, unauth-before401, s.AccessLog())
	}
	hits := s.Requests(PathBasic)
	if last := hits[len(hits)-1]; last.Status != 200 || last.User != User || last.Target != PathBasic+"index.txt" {
		t.Errorf("last hit %+v", last)
	}
	if strings.Contains(s.AccessLog(), Password) {
		t.Error("access log contains the password")
	}

	checkStopped(t, s)
}

func TestParseAccessLog(t *testing.T) {
	got := parseAccessLog(`401 "GET /digest/ HTTP/1.1" 381 "-"
200 "POST /digest/echo?x=1 HTTP/1.1" 67 "alice"
garbage
400 "-" 0 "-"
`)
	want := []Hit{
		{401, "GET", "/digest/", ""},
		{200, "POST", "/digest/echo?x=1", "alice"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestHtdigestLine(t *testing.T) {
	// htdigest -c f "anyauth digest" alice, password "correct horse".
	if got, want := HtdigestLine(User, RealmDigest, Password, "MD5", false), "alice:anyauth digest:c1e90bee6c28d95c0be6f4c9edf34bd8\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func benchmarkStart(b *testing.B, start func() (*Server, error)) {
	var total time.Duration
	for i := 0; i < b.N; i++ {
		s, err := start()
		if errors.Is(err, ErrNotInstalled) && !InCI() {
			b.Skip(err)
		}
		if err != nil {
			b.Fatal(err)
		}
		total += s.Startup
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms-to-ready/op")
}

// BenchmarkStartApache measures start (until the first 200) plus Close.
func BenchmarkStartApache(b *testing.B) { benchmarkStart(b, StartApache) }

// BenchmarkStartLighttpd measures start (until the first 200) plus Close.
func BenchmarkStartLighttpd(b *testing.B) { benchmarkStart(b, StartLighttpd) }
