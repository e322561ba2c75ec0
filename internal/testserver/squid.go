package testserver

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// squidHelpers is where Debian installs Squid's authentication helpers.
const squidHelpers = "/usr/lib/squid"

// Realms of the Squid proxy's Basic and Digest ports.
const (
	ProxyRealmBasic  = "anyauth proxy basic"
	ProxyRealmDigest = "anyauth proxy digest"
)

// Names of the Squid proxy's ports (ProxyHit.Port, Squid.URL). Each port
// requires one authentication scheme and offers only that one in its 407
// answers.
const (
	// SquidBasic asks for Basic (basic_ncsa_auth, realm ProxyRealmBasic):
	//	Proxy-Authenticate: Basic realm="anyauth proxy basic"
	SquidBasic = "basic"
	// SquidDigest asks for Digest (digest_file_auth, realm
	// ProxyRealmDigest), MD5 without an algorithm parameter, no opaque,
	// nonce-count checked; a nonce lives at most 30 minutes or 50 uses:
	//	Proxy-Authenticate: Digest realm="anyauth proxy digest", nonce="...", qop="auth", stale=false
	SquidDigest = "digest"
	// SquidNTLM asks for NTLM (ntlm_fake_auth: any user name and password
	// is accepted once the three-message handshake completes on one
	// connection):
	//	Proxy-Authenticate: NTLM
	SquidNTLM = "ntlm"
	// SquidNegotiate asks for Negotiate (negotiate_kerberos_auth with the
	// keytab of SquidOptions.Negotiate):
	//	Proxy-Authenticate: Negotiate
	SquidNegotiate = "negotiate"
)

// SquidOptions selects the optional ports of StartSquid. The Basic and
// Digest ports are always there.
type SquidOptions struct {
	// NTLM adds the port SquidNTLM.
	NTLM bool
	// Negotiate, if not nil, adds the port SquidNegotiate.
	Negotiate *SquidNegotiateConfig
	// Env is added to the environment of Squid and so of its helpers, e.g.
	// "KRB5_CONFIG=/path/krb5.conf" for negotiate_kerberos_auth.
	Env []string
}

// SquidNegotiateConfig configures negotiate_kerberos_auth.
type SquidNegotiateConfig struct {
	// Keytab is the keytab holding the proxy's service key (-k). It must
	// be readable by the user Squid runs as ("proxy" when started as root).
	Keytab string
	// Principal is the service principal the helper accepts (-s), e.g.
	// "HTTP/localhost@EXAMPLE.TEST"; "" accepts any principal in Keytab
	// (GSS_C_NO_NAME).
	Principal string
}

// Squid is a running Squid proxy started by StartSquid: one squid process
// (plus its helpers) listening on one 127.0.0.1 port per authentication
// scheme.
//
// It forwards requests and CONNECT tunnels, to any port, only to the host
// written literally as 127.0.0.1; any other target is refused with 403
// before authentication, without a DNS lookup. Nothing is cached: every
// request reaches the origin server.
type Squid struct {
	// Proxy URLs "http://127.0.0.1:PORT" of each port; "" when the port
	// was not asked for.
	BasicURL, DigestURL, NTLMURL, NegotiateURL string

	Dir     string        // temp dir with squid.conf, password files and logs
	Startup time.Duration // from exec until every port answered

	ports    map[string]string // port number -> name
	hostname string            // visible_hostname, unique to this instance
	proc
	cacheLog  string
	stderrLog string
	accessLog string
	syncSeq   atomic.Uint64
	closeOnce sync.Once
	closeErr  error
}

// URL returns the proxy URL of the named port (SquidBasic, ...), with the
// given user info (nil for none), or nil if Squid does not have that port.
// http.Transport sends user info of a proxy URL as Basic
// Proxy-Authorization, on CONNECT too.
func (s *Squid) URL(port string, userinfo *url.Userinfo) *url.URL {
	for p, name := range s.ports {
		if name == port {
			return &url.URL{Scheme: "http", Host: "127.0.0.1:" + p, User: userinfo}
		}
	}
	return nil
}

// ProxyHit is one entry of Squid's access log.
type ProxyHit struct {
	Port   string // name of the port it came in on: SquidBasic, ...
	Result string // Squid's result code: "TCP_DENIED", "TCP_MISS", "TCP_TUNNEL", ...
	Status int    // status sent to the client; 0 when none was sent
	Method string // request method, e.g. "GET" or "CONNECT"
	Target string // absolute URL, or "host:port" for CONNECT
	// User is the user Squid authenticated, "" if none. Credentials of a
	// scheme the port does not ask for are checked anyway: a 407 can carry
	// a User.
	User string
}

// Hits returns the access-log entries, oldest first, after making sure that
// every request answered before the call has been logged (as
// Server.Requests does).
//
// Squid logs a request when its transaction ends: a CONNECT only when the
// tunnel is closed, so close the client's connections (e.g.
// Transport.CloseIdleConnections) before counting CONNECTs that succeeded.
func (s *Squid) Hits() []ProxyHit {
	s.syncLog()
	data, _ := os.ReadFile(s.accessLog)
	var hits []ProxyHit
	for _, h := range s.parseAccessLog(string(data)) {
		if !strings.HasPrefix(h.Target, "http://"+squidSyncHost+"/") {
			hits = append(hits, h)
		}
	}
	return hits
}

// Count counts the hits on port (any port if "") with method (any if ""),
// and among them those answered 407. See Hits.
func (s *Squid) Count(port, method string) (total, proxyAuthRequired int) {
	for _, h := range s.Hits() {
		if (port == "" || h.Port == port) && (method == "" || h.Method == method) {
			total++
			if h.Status == http.StatusProxyAuthRequired {
				proxyAuthRequired++
			}
		}
	}
	return total, proxyAuthRequired
}

// AccessLog returns the raw access log (after the sync Hits does), one line
// per transaction:
//
//	PORT RESULT/STATUS METHOD TARGET USER
//
// with the local port number, STATUS on three digits (000 when nothing was
// sent), USER URL-encoded or "-". Credentials are never logged.
func (s *Squid) AccessLog() string {
	s.syncLog()
	data, _ := os.ReadFile(s.accessLog)
	return string(data)
}

func (s *Squid) parseAccessLog(log string) []ProxyHit {
	var hits []ProxyHit
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			continue
		}
		result, code, ok := strings.Cut(f[1], "/")
		status, err := strconv.Atoi(code)
		if !ok || err != nil {
			continue
		}
		h := ProxyHit{Port: s.ports[f[0]], Result: result, Status: status, Method: f[2], Target: f[3]}
		if f[4] != "-" {
			if u, err := url.PathUnescape(f[4]); err == nil {
				h.User = u
			} else {
				h.User = f[4]
			}
		}
		hits = append(hits, h)
	}
	return hits
}

// ErrorLog returns Squid's cache.log and what the process wrote to stdout
// and stderr, for test failure messages.
func (s *Squid) ErrorLog() string {
	var b strings.Builder
	for _, f := range []string{s.cacheLog, s.stderrLog} {
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

// Close stops Squid and its helpers (its process group: SIGTERM, which
// Squid takes about 2 to 3 s to obey, then SIGKILL after 10 s) and removes
// Dir. It is idempotent and safe to call on a nil Squid.
func (s *Squid) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		var errs []error
		if s.cmd != nil {
			errs = append(errs, s.stop())
		}
		errs = append(errs, s.removeSharedMemory())
		if s.Dir != "" {
			errs = append(errs, os.RemoveAll(s.Dir))
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// removeSharedMemory removes the shared-memory segments named after this
// instance's unique service name, which Squid leaves behind when it is
// stopped before it finished starting.
func (s *Squid) removeSharedMemory() error {
	if s.hostname == "" {
		return nil
	}
	shm, _ := filepath.Glob("/dev/shm/" + s.hostname + "-*")
	var errs []error
	for _, f := range shm {
		if err := os.Remove(f); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// squidSyncHost is the host of the sentinel requests (readiness probe and
// log sync): Squid refuses them with 403 before anything else, without
// authentication nor DNS.
const squidSyncHost = "anyauth-sync.invalid"

// probe sends the sentinel GET http://anyauth-sync.invalid/path through the
// proxy port and checks that this very Squid answered it.
func (s *Squid) probe(port, path string, timeout time.Duration) error {
	c := &http.Client{
		Transport: &http.Transport{
			Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: "127.0.0.1:" + port}),
			DisableKeepAlives: true,
		},
		Timeout: timeout,
	}
	resp, err := c.Get("http://" + squidSyncHost + path)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("Via"), " "+s.hostname+" ") {
		return fmt.Errorf("port %s: %s, Via %q (another server on the port?)", port, resp.Status, resp.Header.Get("Via"))
	}
	return nil
}

// syncLog sends a sentinel request and waits (at most 5 s) until Squid has
// logged it.
func (s *Squid) syncLog() {
	var port string
	for p := range s.ports {
		port = p
		break
	}
	path := fmt.Sprintf("/sync-%d-%d", time.Now().UnixNano(), s.syncSeq.Add(1))
	if s.probe(port, path, 10*time.Second) != nil {
		return
	}
	needle := []byte(" http://" + squidSyncHost + path + " ")
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if data, err := os.ReadFile(s.accessLog); err == nil && bytes.Contains(data, needle) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// StartSquid starts Debian's Squid (squid from PATH or /usr/sbin/squid, or
// $TESTSERVER_SQUID; helpers from /usr/lib/squid) as one process, in the
// foreground, with a configuration, password files, logs, pid file and
// shared-memory names of its own (nothing of /etc/squid), no disk cache,
// and one 127.0.0.1 port per scheme: Basic and Digest always, NTLM and
// Negotiate as opts asks. Started as root, Squid runs as user proxy.
//
// Every port accepts User and Password (NTLM: anything), and only with
// its own scheme: credentials of another scheme get a 407 carrying the
// port's challenge only. See the Squid* port names for the challenges.
//
// The error wraps ErrNotInstalled when squid or a helper is missing.
func StartSquid(opts SquidOptions) (*Squid, error) {
	bin, err := findBinary("TESTSERVER_SQUID", []string{"squid"}, "/usr/sbin/squid")
	if err != nil {
		return nil, err
	}
	ports := []squidPort{
		{Name: SquidBasic, Scheme: "basic", Program: []string{filepath.Join(squidHelpers, "basic_ncsa_auth"), "{{DIR}}/htpasswd"},
			Params: []string{"realm " + ProxyRealmBasic, "credentialsttl 1 minute"}},
		{Name: SquidDigest, Scheme: "digest", Program: []string{filepath.Join(squidHelpers, "digest_file_auth"), "-c", "{{DIR}}/htdigest"},
			Params: []string{"realm " + ProxyRealmDigest}},
	}
	if opts.NTLM {
		ports = append(ports, squidPort{Name: SquidNTLM, Scheme: "ntlm", Program: []string{filepath.Join(squidHelpers, "ntlm_fake_auth")}})
	}
	if n := opts.Negotiate; n != nil {
		principal := n.Principal
		if principal == "" {
			principal = "GSS_C_NO_NAME"
		}
		ports = append(ports, squidPort{Name: SquidNegotiate, Scheme: "negotiate", Lazy: true,
			Program: []string{filepath.Join(squidHelpers, "negotiate_kerberos_auth"), "-k", n.Keytab, "-s", principal, "-c", "{{DIR}}/run"}})
	}
	for _, p := range ports {
		if _, err := os.Stat(p.Program[0]); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
		for _, a := range p.Program[1:] {
			if strings.ContainsAny(a, " \t\n\"'\\") {
				return nil, fmt.Errorf("testserver: squid helper argument %q has characters unsafe in squid.conf", a)
			}
		}
	}
	dir, as, err := serverDir("squid", squidUser)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	for i := range ports {
		for j, a := range ports[i].Program {
			ports[i].Program[j] = strings.ReplaceAll(a, "{{DIR}}", dir)
		}
	}
	files := map[string]string{
		"htpasswd": HtpasswdAPR1Line(User, Password),
		"htdigest": HtdigestLine(User, ProxyRealmDigest, Password, "MD5", false),
	}
	if err := writeTree(dir, files); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "run"} {
		p := filepath.Join(dir, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			return nil, err
		}
		if as != nil {
			if err := os.Chown(p, as.UID, as.GID); err != nil {
				return nil, err
			}
		}
	}
	suffix := make([]byte, 6)
	if _, err := rand.Read(suffix); err != nil {
		return nil, err
	}
	// The service name (-n) names Squid's shared-memory segments
	// (/dev/shm/NAME-cf__*.shm), which would clash between instances.
	service := "anyauth" + hex.EncodeToString(suffix)
	env := append(serverEnv(), opts.Env...)

	s, err := runSquid(bin, dir, service, env, ports, as)
	ok = err == nil
	return s, err
}

// runSquid writes squid.conf for ports (each on a free loopback port) and
// starts Squid, again on new ports when one was taken meanwhile.
func runSquid(bin, dir, service string, env []string, ports []squidPort, as *runAs) (*Squid, error) {
	var s *Squid
	err := retryOnTakenPort(func(attempt int) (bool, error) {
		for i := range ports {
			var err error
			if ports[i].Port, err = freePort(); err != nil {
				return false, err
			}
		}
		var conf bytes.Buffer
		err := squidConf.Execute(&conf, map[string]any{
			"Dir": dir, "Ports": ports, "RunAs": as, "Hostname": service, "SyncHost": squidSyncHost,
		})
		if err != nil {
			return false, err
		}
		confPath := filepath.Join(dir, "squid.conf")
		if err := os.WriteFile(confPath, conf.Bytes(), 0o644); err != nil {
			return false, err
		}
		s, err = startSquidOnce(bin, dir, confPath, service, env, ports, attempt)
		return s != nil && strings.Contains(s.ErrorLog(), "Address already in use"), err
	})
	return s, err
}

// squidPort is one http_port of squid.conf and the auth_param of its scheme.
type squidPort struct {
	Name    string   // port name (myportname), e.g. "basic"
	Scheme  string   // auth_param scheme
	Program []string // helper and its arguments
	Params  []string // more auth_param settings
	Lazy    bool     // start no helper until one is needed
	Port    int
}

func startSquidOnce(bin, dir, conf, service string, env []string, ports []squidPort, attempt int) (*Squid, error) {
	s := &Squid{
		ports:     map[string]string{},
		hostname:  service,
		cacheLog:  filepath.Join(dir, "logs", "cache.log"),
		stderrLog: filepath.Join(dir, fmt.Sprintf("stderr-%d.log", attempt)),
		accessLog: filepath.Join(dir, "logs", "access.log"),
	}
	// Logs of a failed attempt would confuse the next one.
	_ = os.Remove(s.cacheLog)
	_ = os.Remove(s.accessLog)
	for _, p := range ports {
		u := fmt.Sprintf("http://127.0.0.1:%d", p.Port)
		s.ports[strconv.Itoa(p.Port)] = p.Name
		switch p.Name {
		case SquidBasic:
			s.BasicURL = u
		case SquidDigest:
			s.DigestURL = u
		case SquidNTLM:
			s.NTLMURL = u
		case SquidNegotiate:
			s.NegotiateURL = u
		}
	}
	cmd := exec.Command(bin, "-N", "-n", service, "-f", conf)
	cmd.Dir = dir
	cmd.Env = env
	began := time.Now()
	if err := s.start("squid", cmd, s.stderrLog); err != nil {
		return nil, err
	}
	if err := s.waitReady(15 * time.Second); err != nil {
		_ = s.removeSharedMemory()
		return s, fmt.Errorf("testserver: squid did not come up: %w\n%s", err, s.ErrorLog())
	}
	s.Startup = time.Since(began)
	s.Dir = dir
	return s, nil
}

// waitReady waits until every port answers the sentinel, the process
// exits, a port could not be bound (Squid goes on without it), or timeout
// passes.
func (s *Squid) waitReady(timeout time.Duration) error {
	pending := map[string]bool{}
	for p := range s.ports {
		pending[p] = true
	}
	return s.ready(timeout, func() error {
		if data, _ := os.ReadFile(s.cacheLog); bytes.Contains(data, []byte("Address already in use")) {
			return errors.New("a port was taken")
		}
		var err error
		for p := range pending {
			if err = s.probe(p, "/ready", time.Second); err == nil {
				delete(pending, p)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		return fmt.Errorf("%w: %v", errNotReady, err)
	})
}

// squidUser is the account Squid switches to when started as root (its
// cache_effective_user), else nil.
func squidUser() (*runAs, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, c := range [][2]string{{"proxy", "proxy"}, {"nobody", "nogroup"}} {
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
	return nil, errors.New("testserver: running as root but neither proxy nor nobody exists")
}

// StartSquidForTest starts Squid with opts, stops it when the test ends and,
// if the test failed, logs its cache.log. Like StartForTest, a missing Squid
// skips the test, or fails it when InCI.
func StartSquidForTest(t testing.TB, opts SquidOptions) *Squid {
	t.Helper()
	return forTest(t, func() (*Squid, error) { return StartSquid(opts) }, squidErrorLog)
}

// squidErrorLog is what a failed test logs of a Squid.
func squidErrorLog(s *Squid) string { return "squid error log:\n" + s.ErrorLog() }

// HtpasswdAPR1Line returns an htpasswd line for user and password in
// Apache's "$apr1$" MD5 format with a random salt, which Squid's
// basic_ncsa_auth accepts (it does not know the "{SHA}" of HtpasswdLine).
// It is weak and meant for tests only.
func HtpasswdAPR1Line(user, password string) string {
	const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = itoa64[b[i]&0x3f]
	}
	return user + ":" + apr1(password, string(b)) + "\n"
}

// apr1 is Apache's variant of the FreeBSD MD5-based crypt(3), as
// "htpasswd -m" and "openssl passwd -apr1" compute it.
func apr1(password, salt string) string {
	const magic = "$apr1$"
	const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	pw := []byte(password)
	alt := md5.Sum([]byte(password + salt + password))
	ctx := md5.New()
	ctx.Write([]byte(password + magic + salt))
	for i := len(pw); i > 0; i -= 16 {
		ctx.Write(alt[:min(i, 16)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			ctx.Write([]byte{0})
		} else {
			ctx.Write(pw[:1])
		}
	}
	final := ctx.Sum(nil)
	for i := 0; i < 1000; i++ {
		c := md5.New()
		if i&1 != 0 {
			c.Write(pw)
		} else {
			c.Write(final)
		}
		if i%3 != 0 {
			c.Write([]byte(salt))
		}
		if i%7 != 0 {
			c.Write(pw)
		}
		if i&1 != 0 {
			c.Write(final)
		} else {
			c.Write(pw)
		}
		final = c.Sum(nil)
	}
	out := []byte(magic + salt + "$")
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	for _, t := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(uint32(final[t[0]])<<16|uint32(final[t[1]])<<8|uint32(final[t[2]]), 4)
	}
	to64(uint32(final[11]), 2)
	return string(out)
}

var squidConf = template.Must(template.New("squid.conf").Parse(`# Generated by github.com/anyauth/anyauth/internal/testserver.
{{range .Ports}}http_port 127.0.0.1:{{.Port}} name={{.Name}}
{{end}}
# Unique to this instance: the readiness probe finds it in Via.
visible_hostname {{.Hostname}}
{{with .RunAs}}cache_effective_user {{.User}}
cache_effective_group {{.Group}}
{{end}}
pid_filename {{.Dir}}/run/squid.pid
coredump_dir {{.Dir}}/run
cache_log stdio:{{.Dir}}/logs/cache.log
# Never log credentials: local port, result/status, method, URL, user.
# buffered_logs is off (the default): each line is flushed when written.
logformat anyauth %>lp %Ss/%03>Hs %rm %ru %#un
access_log stdio:{{.Dir}}/logs/access.log anyauth
strip_query_terms off
cache_store_log none
netdb_filename none

# Memory only, and nothing cached: every request reaches the origin.
cache deny all
cache_mem 0 MB
max_filedescriptors 1024
client_db off
shutdown_lifetime 0 seconds

# Nothing on the network: no ICP/HTCP/SNMP, no pinger, DNS (never needed:
# only the literal 127.0.0.1 is allowed as target) on 127.0.0.1 only.
icp_port 0
htcp_port 0
snmp_port 0
pinger_enable off
dns_nameservers 127.0.0.1

{{range .Ports}}
auth_param {{.Scheme}} program{{range .Program}} {{.}}{{end}}
auth_param {{.Scheme}} children 5 startup={{if .Lazy}}0{{else}}1{{end}} idle=1
{{- $s := .Scheme}}{{range .Params}}
auth_param {{$s}} {{.}}{{end}}
{{- end}}

acl anyauth_sync dstdomain -n {{.SyncHost}}
acl local_target dstdomain -n 127.0.0.1
acl authenticated proxy_auth REQUIRED
http_access deny anyauth_sync
http_access deny !local_target
{{range .Ports}}
# Port {{.Name}}: only {{.Scheme}} is offered, and only {{.Scheme}}
# credentials are accepted (others get a 407 with this port's challenge,
# since the last ACL of the denying rule is an authentication ACL).
acl port_{{.Name}} myportname {{.Name}}
acl cred_{{.Name}} req_header Proxy-Authorization -i ^{{.Scheme}}[[:space:]]
auth_schemes {{.Scheme}} port_{{.Name}}
http_access deny port_{{.Name}} !cred_{{.Name}} authenticated
{{- end}}
http_access allow authenticated
http_access deny all
`))
