package testserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// apacheModules is where Debian installs Apache's loadable modules.
const apacheModules = "/usr/lib/apache2/modules"

// ApacheLocations are the protected locations of the Apache server.
var ApacheLocations = []Location{
	{PathBasic, RealmBasic, "Basic (AuthBasicProvider file)"},
	{PathDigest, RealmDigest, "Digest MD5 qop=auth, nonce lifetime 300s, AuthDigestNcCheck On (sends opaque)"},
	{PathDigestStale, RealmDigest, "Digest MD5 qop=auth, nonce lifetime 2s (stale=true after StaleNonceWait)"},
	{PathMulti, RealmDigest, "two WWW-Authenticate lines: Basic (added by mod_headers, comes first) and Digest MD5 qop=auth"},
}

// StartApache starts Debian's Apache httpd (apache2 from PATH or
// /usr/sbin/apache2, or $TESTSERVER_APACHE2; event MPM, mod_cgid, modules
// from /usr/lib/apache2/modules) on a free 127.0.0.1 port with the
// locations in ApacheLocations and waits until it answers. The error wraps
// ErrNotInstalled when apache2 or its modules are missing.
//
// Notes on this Apache build (2.4.71):
//   - /digest/ uses AuthDigestNcCheck On, which works here given
//     AuthDigestShmemSize: a nonce-count that is not above the last one seen
//     for that nonce is rejected with a plain 401 and a fresh nonce (no
//     stale=true) and "AH01774: possible replay attack" in the error log.
//     Skipping counts (1, then 5) is accepted, so concurrent requests that
//     share a nonce must reach the server in nc order.
//   - mod_auth_digest sends opaque only where AuthDigestNcCheck is on.
//   - Authentication-Info on a 200 carries rspauth, cnonce, nc and qop;
//     nextnonce is added only when the nonce has less than 30 s to live,
//     i.e. always on /digest-stale/.
func StartApache() (*Server, error) { return startApache(false) }

// StartApacheTLS starts Apache like StartApache, with the same locations and
// documents, but speaking HTTPS only (mod_ssl, TLS 1.2 and 1.3): URL is
// "https://127.0.0.1:PORT" and Name "apache-tls". Its certificate, valid
// for 127.0.0.1, ::1 and localhost, is issued by a throw-away ECDSA P-256
// CA generated at start (see newTestPKI, CertValidity) whose certificate is
// in CACertPEM; CertPool and TLSConfig return what a client needs to trust
// it. The error wraps ErrNotInstalled when mod_ssl is missing too.
func StartApacheTLS() (*Server, error) { return startApache(true) }

func startApache(useTLS bool) (*Server, error) {
	bin, err := findBinary("TESTSERVER_APACHE2", []string{"apache2"}, "/usr/sbin/apache2")
	if err != nil {
		return nil, err
	}
	modules := []string{"mod_mpm_event.so", "mod_cgid.so", "mod_auth_digest.so", "mod_headers.so"}
	if useTLS {
		modules = append(modules, "mod_ssl.so", "mod_socache_shmcb.so")
	}
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join(apacheModules, m)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	name := "apache"
	if useTLS {
		name = "apache-tls"
	}
	dir, as, err := serverDir(name, dropPrivileges)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()

	var paths []string
	for _, l := range ApacheLocations {
		paths = append(paths, l.Path)
	}
	files := documents(dir, paths)
	files["htpasswd"] = HtpasswdLine(User, Password)
	files["htdigest"] = HtdigestLine(User, RealmDigest, Password, "MD5", false)
	files["mime.types"] = "text/plain txt\n"
	if err := writeTree(dir, files); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	var pki *testPKI
	if useTLS {
		// The parent process reads the key before it drops privileges.
		if pki, err = writeTestPKI(dir); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "httpd.conf")
	l := launch{
		name:      name,
		dir:       dir,
		argv:      []string{bin, "-f", conf, "-DFOREGROUND"},
		errorLog:  filepath.Join(dir, "logs", "error.log"),
		accessLog: filepath.Join(dir, "logs", "access.log"),
		locations: ApacheLocations,
		config: func(port int) error {
			var b strings.Builder
			err := apacheConf.Execute(&b, map[string]any{
				"Dir":             dir,
				"Modules":         apacheModules,
				"Port":            port,
				"RunAs":           as,
				"StaleLifetime":   int(StaleNonceLifetime.Seconds()),
				"RealmBasic":      RealmBasic,
				"RealmDigest":     RealmDigest,
				"PathBasic":       PathBasic,
				"PathDigest":      PathDigest,
				"PathDigestStale": PathDigestStale,
				"PathMulti":       PathMulti,
				"TLS":             useTLS,
				"ServerName":      "127.0.0.1",
				"StartServers":    apacheWorkers["StartServers"],
				"MaxSpareThreads": apacheWorkers["MaxSpareThreads"],
				"LogLevel":        "warn auth_digest:info",
			})
			if err != nil {
				return err
			}
			return os.WriteFile(conf, []byte(b.String()), 0o644)
		},
		addrInUse: bindFailed,
	}
	s, err := start(l.trusting(pki))
	ok = err == nil
	return s, err
}

var apacheConf = httpdConf("httpd.conf", `
# Shared memory for mod_auth_digest's nonce-count and opaque tracking.
AuthDigestShmemSize 1048576

<Location "{{.PathBasic}}">
    AuthType Basic
    AuthName "{{.RealmBasic}}"
    AuthBasicProvider file
    AuthUserFile "{{.Dir}}/htpasswd"
    Require valid-user
</Location>

<Location "{{.PathDigest}}">
    AuthType Digest
    AuthName "{{.RealmDigest}}"
    AuthDigestDomain {{.PathDigest}}
    AuthDigestProvider file
    AuthUserFile "{{.Dir}}/htdigest"
    AuthDigestNonceLifetime 300
    AuthDigestNcCheck On
    Require valid-user
</Location>

<Location "{{.PathDigestStale}}">
    AuthType Digest
    AuthName "{{.RealmDigest}}"
    AuthDigestDomain {{.PathDigestStale}}
    AuthDigestProvider file
    AuthUserFile "{{.Dir}}/htdigest"
    AuthDigestNonceLifetime {{.StaleLifetime}}
    Require valid-user
</Location>

<Location "{{.PathMulti}}">
    AuthType Digest
    AuthName "{{.RealmDigest}}"
    AuthDigestDomain {{.PathMulti}}
    AuthDigestProvider file
    AuthUserFile "{{.Dir}}/htdigest"
    AuthDigestNonceLifetime 300
    Require valid-user
    # A second challenge on its own header line, on 401 responses only.
    Header always add WWW-Authenticate "Basic realm=\"{{.RealmDigest}}\"" "expr=%{REQUEST_STATUS} == 401"
</Location>
`)
