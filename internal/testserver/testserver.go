// Package testserver starts real HTTP servers (Debian's Apache httpd and
// lighttpd) protected by Basic and Digest authentication, for integration
// tests of the anyauth client.
//
// Each server is started from the distribution binary with a complete
// configuration generated in a fresh temporary directory (never the system
// configuration), listens on 127.0.0.1 only, on a free port chosen at start,
// and runs in its own process group, which Close terminates before removing
// the directory.
//
// Every protected location serves a static index.txt (also as the directory
// index) and a CGI endpoint "echo" that answers a POST or PUT with the
// SHA-256 of the request body and its length (see EchoReply). Both servers
// write an access log that Hits and Requests read, so that a test can count
// round trips, e.g. prove that N requests cost N+1 exchanges.
//
// StartApacheTLS serves the same locations over HTTPS with a certificate
// from a CA generated at start, and StartSquid starts an authenticating
// Squid proxy (one port per scheme: Basic, Digest, NTLM, Negotiate) that
// forwards requests and CONNECT tunnels to 127.0.0.1 only.
//
// StartOIDCProvider runs a real OAuth 2.0 authorization server
// (oidc-provider from npm, with node; npm ci installs it on first use)
// issuing RS256 JWT access tokens and rotating refresh tokens, and counts
// its token endpoint's answers; StartOpenIDCJWKS starts mod_auth_openidc
// verifying such tokens with its JWKS. StartDPoPResource (or
// StartDPoPStack, with an oidc-provider) runs a DPoP-enforcing resource
// server (RFC 9449, with server nonces) that publishes protected resource
// metadata (RFC 9728), built on Auth0's express-oauth2-jwt-bearer.
//
// StartOAuth1Verifier runs an OAuth 1.0 (RFC 5849) resource server:
// oauthlib's ResourceEndpoint (Debian's python3-oauthlib) behind Python's
// http.server, on http and https, refusing reused nonces.
//
// StartRegistry runs a Docker registry (Debian's docker-registry,
// distribution 2.8) with token authentication, trusting a token server
// that runs in process and records what it was asked (TokenRequests).
//
// When a binary is missing the Start functions return an error wrapping
// ErrNotInstalled; StartForTest (StartSquidForTest) turns that into t.Skip,
// or t.Fatal when the environment variable CI is "true".
package testserver

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// ErrNotInstalled is wrapped by the errors of the Start functions when the
// server binary (or the modules or helpers it needs) is not installed.
var ErrNotInstalled = errors.New("testserver: server not installed")

// User and Password are the only credentials every protected location
// accepts. The password contains a space on purpose.
const (
	User     = "alice"
	Password = "correct horse"
)

// Realms of the Apache server.
const (
	// RealmBasic is the realm of Apache's /basic/ (and lighttpd's /basic/).
	RealmBasic = "anyauth basic"
	// RealmDigest is the realm of Apache's /digest/, /digest-stale/ and
	// /multi/ (both the Digest and the Basic challenge of /multi/).
	RealmDigest = "anyauth digest"
)

// Realms of the lighttpd server, one per location.
const (
	// RealmMD5 is the realm of lighttpd's /md5/ (Digest MD5).
	RealmMD5 = "anyauth md5"
	// RealmSHA256 is the realm of lighttpd's /sha256/ (Digest SHA-256).
	RealmSHA256 = "anyauth sha256"
	// RealmSHA512_256 is the realm of lighttpd's /sha512-256/ (Digest
	// SHA-512-256).
	RealmSHA512_256 = "anyauth sha512-256"
	// RealmMulti is the realm of lighttpd's /multi/ (two Digest challenges,
	// SHA-256 then MD5).
	RealmMulti = "anyauth multi"
	// RealmUserhash is the realm of lighttpd's /userhash/ (Digest SHA-256,
	// userhash=true).
	RealmUserhash = "anyauth userhash"
	// RealmShared is the one realm of lighttpd's /shared-md5/,
	// /shared-sha256/ and /shared-sha512-256/: one realm, three
	// directories, each with its own algorithm.
	RealmShared = "anyauth shared"
)

// Protected path prefixes. Each serves index.txt and echo.
const (
	// PathBasic is Basic auth on both servers (realm RealmBasic).
	PathBasic = "/basic/"
	// PathDigest is Apache Digest MD5, qop=auth, AuthDigestNcCheck On
	// (realm RealmDigest).
	PathDigest = "/digest/"
	// PathDigestStale is Apache Digest MD5 whose nonces live only
	// StaleNonceLifetime (realm RealmDigest).
	PathDigestStale = "/digest-stale/"
	// PathMulti is, on Apache, Digest MD5 plus a second header line with a
	// Basic challenge (same realm RealmDigest); on lighttpd, two Digest
	// challenges SHA-256 and MD5 (realm RealmMulti).
	PathMulti = "/multi/"
	// PathMD5 is lighttpd Digest MD5 (realm RealmMD5).
	PathMD5 = "/md5/"
	// PathSHA256 is lighttpd Digest SHA-256 (realm RealmSHA256).
	PathSHA256 = "/sha256/"
	// PathSHA512_256 is lighttpd Digest SHA-512-256 (realm RealmSHA512_256).
	PathSHA512_256 = "/sha512-256/"
	// PathUserhash is lighttpd Digest SHA-256 with userhash=true (realm
	// RealmUserhash).
	PathUserhash = "/userhash/"
	// PathSharedMD5 is lighttpd Digest MD5 in realm RealmShared.
	PathSharedMD5 = "/shared-md5/"
	// PathSharedSHA256 is lighttpd Digest SHA-256 in realm RealmShared.
	PathSharedSHA256 = "/shared-sha256/"
	// PathSharedSHA512_256 is lighttpd Digest SHA-512-256 in realm
	// RealmShared.
	PathSharedSHA512_256 = "/shared-sha512-256/"
)

// StaleNonceLifetime is the AuthDigestNonceLifetime of Apache's
// /digest-stale/: a nonce older than that (measured from the request that
// got the 401) is answered with a fresh challenge carrying stale=true.
const StaleNonceLifetime = 2 * time.Second

// StaleNonceWait is how long a test should wait after receiving a
// /digest-stale/ nonce to be sure Apache calls it stale.
const StaleNonceWait = StaleNonceLifetime + 500*time.Millisecond

// Location describes one protected location of a Server.
type Location struct {
	Path  string // path prefix, e.g. "/digest/"
	Realm string // realm of its challenge(s)
	Auth  string // human description of what the server asks for
}

// Server is a running Apache httpd or lighttpd started by this package.
type Server struct {
	Name      string        // "apache", "apache-tls" or "lighttpd"
	URL       string        // "http://127.0.0.1:PORT" ("https://" for apache-tls), no trailing slash
	Dir       string        // temp dir with configs, documents and logs
	Locations []Location    // the protected locations it serves
	Startup   time.Duration // from exec until it first answered 200

	// CACertPEM is, for a server started with StartApacheTLS, the PEM
	// certificate of the throw-away CA that issued its certificate (see
	// CertPool and TLSConfig); nil for plain HTTP servers.
	CACertPEM []byte

	client *http.Client // for readiness and log sync requests

	proc
	errorLog  string // server error log file
	stderrLog string // stdout+stderr of the server process
	accessLog string // access log file

	syncSeq   atomic.Uint64
	closeOnce sync.Once
	closeErr  error
}

// Close stops the server's whole process group (SIGTERM, then SIGKILL after
// a grace period) and removes Dir. It is idempotent and safe to call on a
// nil Server.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		var errs []error
		if s.cmd != nil {
			errs = append(errs, s.stop())
		}
		if s.Dir != "" {
			errs = append(errs, os.RemoveAll(s.Dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// ErrorLog returns the server's error log and whatever the process wrote to
// stdout and stderr, for test failure messages.
func (s *Server) ErrorLog() string {
	var b strings.Builder
	for _, f := range []string{s.errorLog, s.stderrLog} {
		data, err := os.ReadFile(f)
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		fmt.Fprintf(&b, "==> %s <==\n%s", filepath.Base(f), data)
		if !bytes.HasSuffix(data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// AccessLog returns the access log after making sure that every request
// answered before the call has been logged (see Requests). Each line is
//
//	STATUS "METHOD TARGET PROTOCOL" BYTES "USER"
//
// Credentials are never logged; USER is the authenticated user name or "-".
func (s *Server) AccessLog() string {
	s.syncLog()
	data, _ := os.ReadFile(s.accessLog)
	return string(data)
}

// Hit is one access-log entry.
type Hit struct {
	Status int    // response status code
	Method string // request method
	Target string // request target as sent, e.g. "/digest/index.txt?x=1"
	User   string // authenticated user, "" if none
}

// Requests returns the access-log entries whose request target starts with
// pathPrefix, oldest first.
//
// A server logs a request only after it sent the response, so Requests first
// sends an unauthenticated sentinel request and waits until it shows up in
// the log: every request answered before the call is then included.
func (s *Server) Requests(pathPrefix string) []Hit {
	var hits []Hit
	for _, h := range parseAccessLog(s.AccessLog()) {
		if strings.HasPrefix(h.Target, pathPrefix) {
			hits = append(hits, h)
		}
	}
	return hits
}

// Hits counts the requests whose target starts with pathPrefix and, among
// them, those answered 401. See Requests.
func (s *Server) Hits(pathPrefix string) (total, unauthorized int) {
	for _, h := range s.Requests(pathPrefix) {
		total++
		if h.Status == http.StatusUnauthorized {
			unauthorized++
		}
	}
	return total, unauthorized
}

func parseAccessLog(log string) []Hit {
	var hits []Hit
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// STATUS "METHOD TARGET PROTOCOL" BYTES "USER"
		code, rest, _ := strings.Cut(sc.Text(), " ")
		status, err := strconv.Atoi(code)
		if err != nil || !strings.HasPrefix(rest, `"`) {
			continue
		}
		end := 1
		for end < len(rest) && rest[end] != '"' {
			if rest[end] == '\\' {
				end++
			}
			end++
		}
		if end >= len(rest) {
			continue
		}
		reqLine := strings.Fields(rest[1:end])
		if len(reqLine) < 2 {
			continue // e.g. "-" for a request that never got a request line
		}
		h := Hit{Status: status, Method: reqLine[0], Target: reqLine[1]}
		if f := strings.Fields(rest[end+1:]); len(f) > 0 {
			if u := strings.Trim(f[len(f)-1], `"`); u != "-" {
				h.User = u
			}
		}
		hits = append(hits, h)
	}
	return hits
}

// syncPath is an unprotected static file used as log sentinel.
const syncPath = "/_sync.txt"

// syncLog sends a sentinel request and waits (at most 5 s) until the server
// has logged it.
func (s *Server) syncLog() {
	token := fmt.Sprintf("%s?%d-%d", syncPath, time.Now().UnixNano(), s.syncSeq.Add(1))
	resp, err := s.client.Get(s.URL + token)
	if err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	needle := []byte(" " + token + " ")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if data, err := os.ReadFile(s.accessLog); err == nil && bytes.Contains(data, needle) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// EchoReply is the body the echo endpoints answer to a request with the
// given body: the lowercase hex SHA-256 of the body, a space, its length in
// bytes and a newline.
func EchoReply(body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("%s %d\n", hex.EncodeToString(sum[:]), len(body))
}

// echoScript is the CGI program installed as "echo" in every location.
const echoScript = `#!/bin/sh
# anyauth test endpoint: answers with the SHA-256 of the request body and
# its length, e.g. "e3b0c442...b855 0".
f=$(mktemp) || exit 1
trap 'rm -f "$f"' EXIT
cat >"$f"
sum=$(sha256sum <"$f")
len=$(wc -c <"$f")
printf 'Content-Type: text/plain\r\n\r\n%s %d\n' "${sum%% *}" "$len"
`

// IndexContent is the content of index.txt under the location path, e.g.
// "hello from /basic/\n".
func IndexContent(path string) string {
	return "hello from " + path + "\n"
}

// InCI reports whether the environment variable CI is "true", in which case
// StartForTest fails instead of skipping when a server is not installed.
func InCI() bool { return os.Getenv("CI") == "true" }

// StartForTest starts a server with start (StartApache or StartLighttpd),
// closes it when the test ends and, if the test failed, logs the server's
// error log. A server that is not installed skips the test, or fails it
// when InCI.
func StartForTest(t testing.TB, start func() (*Server, error)) *Server {
	t.Helper()
	return forTest(t, start, func(s *Server) string { return s.Name + " error log:\n" + s.ErrorLog() })
}

// forTest starts a server with start for t, closes it when the test
// ends and, if the test failed, logs what log(server) returns. A server
// that is not installed skips the test, or fails it when InCI. Every
// StartXForTest is this.
func forTest[S interface{ Close() error }](t testing.TB, start func() (S, error), log func(S) string) S {
	t.Helper()
	s, err := start()
	if err != nil {
		if errors.Is(err, ErrNotInstalled) && !InCI() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(log(s))
		}
		if err := s.Close(); err != nil {
			t.Errorf("closing: %v", err)
		}
	})
	return s
}

// noProxyClient talks to the test servers directly, whatever HTTP_PROXY
// says, and leaves no idle connection behind.
var noProxyClient = &http.Client{
	Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	Timeout:   10 * time.Second,
}

// unsupported, if set, is returned by every Start function.
var unsupported error

// findBinary returns the server binary: the path in the environment
// variable env if set, else the first of names found in PATH, else the
// first executable fallback.
func findBinary(env string, names []string, fallbacks ...string) (string, error) {
	if unsupported != nil {
		return "", unsupported
	}
	if p := os.Getenv(env); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s=%s is not an executable", ErrNotInstalled, env, p)
		}
		return p, nil
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	for _, p := range fallbacks {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: none of %v found in PATH or %v", ErrNotInstalled, names, fallbacks)
}

// runAs is the unprivileged account a server started as root switches to.
type runAs struct {
	User, Group string
	UID, GID    int
}

// dropPrivileges returns the account to run as when we are root, else nil.
func dropPrivileges() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, c := range [][2]string{{"www-data", "www-data"}, {"nobody", "nogroup"}} {
		u, err := user.Lookup(c[0])
		if err != nil {
			continue
		}
		g, err := user.LookupGroup(c[1])
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(g.Gid)
		return &runAs{User: c[0], Group: c[1], UID: uid, GID: gid}, nil
	}
	return nil, errors.New("testserver: running as root but neither www-data nor nobody exists")
}

// serverDir makes the temp dir of a server named name, owned by the
// account account() says it runs as (nil: the current one).
func serverDir(name string, account func() (*runAs, error)) (string, *runAs, error) {
	as, err := account()
	if err != nil {
		return "", nil, err
	}
	dir, err := makeDir(name, as)
	return dir, as, err
}

// makeDir creates the server's temp dir. When running as root the server's
// workers run as another user, so the dir and its ancestors must be
// traversable by everyone; if os.TempDir() is not, /tmp is used.
func makeDir(name string, as *runAs) (string, error) {
	base := os.TempDir()
	if as != nil && !worldTraversable(base) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "anyauth-"+name+"-")
	if err != nil {
		return "", err
	}
	if strings.ContainsAny(dir, " \t\n\"'\\$`") {
		os.RemoveAll(dir)
		return "", fmt.Errorf("testserver: temp dir %q has characters unsafe in a server config", dir)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

func worldTraversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// writeTree writes files (relative path -> content) under root. Paths named
// "echo" are executable. Directories are 0755 and files 0644 so that the
// unprivileged server workers can read them.
func writeTree(root string, files map[string]string) error {
	for rel, content := range files {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if filepath.Base(p) == "echo" {
			mode = 0o755
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask; be explicit.
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
	}
	return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			err = os.Chmod(p, 0o755)
		}
		return err
	})
}

// readyPath is an unprotected static file whose content is the server's
// Dir: the readiness probe checks it to be sure it talks to its own server.
const readyPath = "/_ready.txt"

// documents returns the document tree shared by both servers: a public
// index.txt, the sync and ready files, and index.txt plus echo under each
// location.
func documents(dir string, paths []string) map[string]string {
	files := map[string]string{
		"htdocs/index.txt":   IndexContent("/"),
		"htdocs" + syncPath:  "sync\n",
		"htdocs" + readyPath: dir + "\n",
	}
	for _, p := range paths {
		files["htdocs"+p+"index.txt"] = IndexContent(p)
		files["htdocs"+p+"echo"] = echoScript
	}
	return files
}

// freePort asks the kernel for a free TCP port on 127.0.0.1. The port is
// released before the server binds it; start retries on the rare race.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// launch describes how to start one server process.
type launch struct {
	name      string
	dir       string
	argv      []string
	errorLog  string
	accessLog string
	locations []Location
	// tls, if set, makes the server speak HTTPS with a certificate issued
	// by the CA in caCertPEM.
	tls       *tls.Config
	caCertPEM []byte
	// config writes the configuration for the given port.
	config func(port int) error
	// addrInUse reports whether the server's output says the port was taken.
	addrInUse func(log string) bool
}

// bindFailed reports whether a server's output says its port was taken
// (Apache's and lighttpd's wording).
func bindFailed(log string) bool { return strings.Contains(log, "Address already in use") }

// trusting returns l speaking TLS with a certificate from pki's CA, which
// the readiness check and Server.TLSConfig trust; l itself when pki is
// nil.
func (l launch) trusting(pki *testPKI) launch {
	if pki != nil {
		pool := x509.NewCertPool()
		pool.AddCert(pki.caCert)
		l.tls = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		l.caCertPEM = pki.CACertPEM
	}
	return l
}

// start runs the server, retrying with another port if the chosen one was
// taken meanwhile, and waits until it answers.
func start(l launch) (*Server, error) {
	var s *Server
	err := retryOnTakenPort(func(attempt int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		if err := l.config(port); err != nil {
			return false, err
		}
		s, err = startOnce(l, port, attempt)
		return s != nil && l.addrInUse(s.ErrorLog()), err
	})
	return s, err
}

// maxPortAttempts bounds how often a server is started again because
// another process took its port between freePort and the server's bind.
const maxPortAttempts = 5

// retryOnTakenPort calls try(attempt) until it succeeds, fails for
// another reason than a taken port (try reports taken), or
// maxPortAttempts attempts were made; it returns try's last error. Every
// starter chooses its ports inside try.
func retryOnTakenPort(try func(attempt int) (taken bool, err error)) error {
	var err error
	for attempt := 0; attempt < maxPortAttempts; attempt++ {
		var taken bool
		if taken, err = try(attempt); err == nil || !taken {
			return err
		}
	}
	return err
}

func startOnce(l launch, port, attempt int) (*Server, error) {
	scheme, client := "http", noProxyClient
	if l.tls != nil {
		scheme = "https"
		client = &http.Client{
			Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: l.tls},
			Timeout:   noProxyClient.Timeout,
		}
	}
	s := &Server{
		Name:      l.name,
		URL:       fmt.Sprintf("%s://127.0.0.1:%d", scheme, port),
		Locations: l.locations,
		CACertPEM: l.caCertPEM,
		client:    client,
		errorLog:  l.errorLog,
		stderrLog: filepath.Join(l.dir, "logs", fmt.Sprintf("stderr-%d.log", attempt)),
		accessLog: l.accessLog,
	}
	cmd := exec.Command(l.argv[0], l.argv[1:]...)
	cmd.Dir = l.dir
	cmd.Env = serverEnv()
	began := time.Now()
	if err := s.start(l.name, cmd, s.stderrLog); err != nil {
		return nil, err
	}
	if err := s.waitReady(l.dir+"\n", 15*time.Second); err != nil {
		return s, fmt.Errorf("testserver: %s did not come up: %w\n%s", l.name, err, s.ErrorLog())
	}
	s.Startup = time.Since(began)
	s.Dir = l.dir
	return s, nil
}

// serverEnv is a minimal environment for the servers: no proxies, no
// inherited Apache variables, a sane PATH for the CGI scripts.
func serverEnv() []string {
	return []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG=C",
		"TMPDIR=/tmp",
	}
}

// waitReady polls readyPath until it answers 200 with want, the process
// exits, or timeout passes.
func (s *Server) waitReady(want string, timeout time.Duration) error {
	c := &http.Client{Transport: s.client.Transport, Timeout: time.Second}
	return s.ready(timeout, func() error {
		resp, err := c.Get(s.URL + readyPath)
		if err != nil {
			return fmt.Errorf("%w: %v", errNotReady, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && string(body) == want {
			return nil
		}
		return fmt.Errorf("%w: GET %s: %s %q (another server on the port?)", errNotReady, readyPath, resp.Status, body)
	})
}
