package testserver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// Protected paths of the GSSAPI Apache (StartGSSAPIApache). Each serves
// index.txt, echo and whoami.
const (
	// PathNegotiate is Negotiate only (mod_auth_gssapi, SPNEGO restricted
	// to krb5).
	PathNegotiate = "/negotiate/"
	// PathNegotiateBasic is Negotiate plus Basic (GssapiBasicAuth: the
	// Basic password is checked against the KDC), realm RealmBasic.
	PathNegotiateBasic = "/negotiate-basic/"
	// PathMulti (declared with the Apache paths) is, on the GSSAPI Apache,
	// Negotiate, Basic and Digest MD5, each of them accepted: see
	// GSSAPILocations.
)

// WhoamiPath is the CGI, under every location of the GSSAPI and NTLM
// servers, that answers with the authenticated user (REMOTE_USER) and a
// newline, e.g. "alice@ANYAUTH.TEST\n". Its response headers X-Auth-Type
// and X-Gss-Mech carry AUTH_TYPE (the scheme used: "Negotiate", "Basic",
// "Digest", "NTLM") and mod_auth_gssapi's GSS_MECH ("Negotiate/krb5",
// "Basic/krb5", "NTLM/ntlmssp"...; empty for Digest).
const WhoamiPath = "whoami"

// whoamiScript is the CGI installed as WhoamiPath.
const whoamiScript = `#!/bin/sh
printf 'Content-Type: text/plain\r\nX-Auth-Type: %s\r\nX-Gss-Mech: %s\r\n\r\n%s\n' "$AUTH_TYPE" "$GSS_MECH" "$REMOTE_USER"
`

// GSSAPILocations are the protected locations of the GSSAPI Apache.
var GSSAPILocations = []Location{
	{PathNegotiate, "", "Negotiate (mod_auth_gssapi, GssapiAllowedMech krb5); REMOTE_USER alice@ANYAUTH.TEST"},
	{PathNegotiateBasic, RealmBasic, "Negotiate and Basic (GssapiBasicAuth On, password checked with the KDC); REMOTE_USER alice@ANYAUTH.TEST"},
	{PathMulti, RealmDigest, "three WWW-Authenticate lines: Negotiate, Basic (both added by mod_headers) and Digest MD5 qop=auth; " +
		"Authorization: Negotiate or Basic goes to mod_auth_gssapi (REMOTE_USER alice@ANYAUTH.TEST; a refusal there carries only Negotiate and Basic), " +
		"anything else to mod_auth_digest (REMOTE_USER alice)"},
}

// StartGSSAPIApache starts Debian's Apache httpd with mod_auth_gssapi
// (libapache2-mod-auth-gssapi) on a free 127.0.0.1 port, accepting service
// tickets for KerberosSPN and KerberosSPNAddr from kdc's keytab, with the
// locations in GSSAPILocations, and waits until it answers.
//
// Its URL is http://localhost:PORT (SPN HTTP/localhost); the same server is
// reachable as http://127.0.0.1:PORT (SPN HTTP/127.0.0.1). Apache runs with
// KRB5_CONFIG pointing at kdc.Config (GssapiBasicAuth asks the KDC) and a
// replay cache in its own dir. GssapiSSLonly Off, GssapiUseSessions Off,
// GssapiLocalName Off, so REMOTE_USER is the full principal name.
//
// A successful Negotiate exchange is answered 200 with
// "WWW-Authenticate: Negotiate <token>": a SPNEGO accept-completed that
// carries the krb5 AP-REP when the client asked for mutual authentication
// (without it, the token is "oRQwEqADCgEAoQsGCSqGSIb3EgECAg==", no
// AP-REP). A refused token (garbage, replayed: the replay cache is on) gets
// 401 with "WWW-Authenticate: Negotiate oQcwBaADCgEC" (SPNEGO reject), not
// a bare Negotiate. Each Basic request makes Apache ask the KDC (an AS-REQ,
// then TGS-REQs if the password was right), which KDC.ASRequests and
// TGSRequests count.
func StartGSSAPIApache(kdc *KDC) (*Server, error) {
	return startKerberosApache(kdc, "apache-gssapi", false)
}

// StartGSSAPIApacheTLS starts the GSSAPI Apache of StartGSSAPIApache, with
// the same locations and keytab, speaking HTTPS only (mod_ssl, TLS 1.2
// and 1.3) with a certificate for localhost, 127.0.0.1 and ::1 from a
// throw-away CA, as StartApacheTLS does: URL is "https://localhost:PORT"
// (SPN HTTP/localhost) and Name "apache-gssapi-tls"; CertPool and
// TLSConfig return what a client needs to trust it. The error wraps
// ErrNotInstalled when mod_ssl is missing too.
func StartGSSAPIApacheTLS(kdc *KDC) (*Server, error) {
	return startKerberosApache(kdc, "apache-gssapi-tls", true)
}

// startKerberosApache starts the GSSAPI Apache of kdc, over https when
// useTLS, reached as localhost (the SPN is HTTP/localhost).
func startKerberosApache(kdc *KDC, name string, useTLS bool) (*Server, error) {
	if kdc == nil || kdc.Keytab == "" {
		return nil, fmt.Errorf("testserver: %s needs a running KDC", name)
	}
	files := map[string]string{
		"htdigest": HtdigestLine(User, RealmDigest, Password, "MD5", false),
	}
	data := map[string]any{
		"Keytab":             kdc.Keytab,
		"RealmBasic":         RealmBasic,
		"RealmDigest":        RealmDigest,
		"PathNegotiate":      PathNegotiate,
		"PathNegotiateBasic": PathNegotiateBasic,
		"PathMulti":          PathMulti,
		"TLS":                useTLS,
	}
	env := func(string) []string { return []string{"KRB5_CONFIG=" + kdc.Config} }
	s, err := startGSSAPIServer(name, GSSAPILocations, files, env, gssapiLocationsConf, data)
	if err != nil {
		return nil, err
	}
	s.URL = strings.Replace(s.URL, "://127.0.0.1:", "://localhost:", 1)
	return s, nil
}

// StartGSSAPIForTest starts a KDC and the GSSAPI Apache using it, closes
// both when the test ends and, if the test failed, logs their logs. Missing
// software skips the test, or fails it when InCI.
func StartGSSAPIForTest(t testing.TB) (*KDC, *Server) {
	t.Helper()
	kdc := StartKDCForTest(t)
	s := StartForTest(t, func() (*Server, error) { return StartGSSAPIApache(kdc) })
	return kdc, s
}

// startGSSAPIServer starts an Apache with mod_auth_gssapi (and
// mod_auth_digest, mod_headers, mod_cgid) whose locations are the template
// locs executed with data (plus Dir). data["TLS"] = true makes it speak
// HTTPS with a certificate from a throw-away CA. extra files (relative path ->
// content) are written to its dir; env(dir) is added to Apache's
// environment.
func startGSSAPIServer(name string, locations []Location, extra map[string]string, env func(dir string) []string,
	locs *template.Template, data map[string]any) (*Server, error) {
	useTLS, _ := data["TLS"].(bool) // HTTPS (mod_ssl) with a throw-away CA
	bin, err := findBinary("TESTSERVER_APACHE2", []string{"apache2"}, "/usr/sbin/apache2")
	if err != nil {
		return nil, err
	}
	envBin, err := exec.LookPath("env")
	if err != nil {
		return nil, fmt.Errorf("%w: env: %v", ErrNotInstalled, err)
	}
	modules := []string{"mod_mpm_event.so", "mod_cgid.so", "mod_auth_digest.so", "mod_headers.so", "mod_auth_gssapi.so"}
	if useTLS {
		modules = append(modules, "mod_ssl.so", "mod_socache_shmcb.so")
	}
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join(apacheModules, m)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
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
	for _, l := range locations {
		paths = append(paths, l.Path)
	}
	files := documents(dir, paths)
	for _, p := range paths {
		files["htdocs"+p+WhoamiPath] = whoamiScript
	}
	files["mime.types"] = "text/plain txt\n"
	for k, v := range extra {
		files[k] = v
	}
	if err := writeTree(dir, files); err != nil {
		return nil, err
	}
	for _, p := range paths {
		if err := os.Chmod(filepath.Join(dir, "htdocs", p, WhoamiPath), 0o755); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"logs", "run", "rcache"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	// The Kerberos replay cache is written by the workers.
	if as != nil {
		if err := os.Chown(filepath.Join(dir, "rcache"), as.UID, as.GID); err != nil {
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
	argv := []string{envBin, "KRB5RCACHEDIR=" + filepath.Join(dir, "rcache")}
	argv = append(argv, env(dir)...)
	argv = append(argv, bin, "-f", conf, "-DFOREGROUND")
	l := launch{
		name:      name,
		dir:       dir,
		argv:      argv,
		errorLog:  filepath.Join(dir, "logs", "error.log"),
		accessLog: filepath.Join(dir, "logs", "access.log"),
		locations: locations,
		config: func(port int) error {
			d := map[string]any{
				"Dir":             dir,
				"Modules":         apacheModules,
				"Port":            port,
				"RunAs":           as,
				"TLS":             useTLS,
				"ServerName":      "localhost", // the SPN is HTTP/localhost
				"ExtraModules":    []string{"auth_gssapi_module " + apacheModules + "/mod_auth_gssapi.so"},
				"StartServers":    1,
				"MaxSpareThreads": 50,
				"LogLevel":        "warn auth_gssapi:info auth_digest:info",
			}
			for k, v := range data {
				d[k] = v
			}
			var b strings.Builder
			if err := gssapiBaseConf.Execute(&b, d); err != nil {
				return err
			}
			if err := locs.Execute(&b, d); err != nil {
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

var gssapiBaseConf = httpdConf("httpd.conf", ``)

var gssapiLocationsConf = template.Must(template.New("gssapi-locations").Parse(`
<Location "{{.PathNegotiate}}">
    AuthType GSSAPI
    AuthName "anyauth negotiate"
    GssapiCredStore keytab:{{.Keytab}}
    GssapiAllowedMech krb5
    GssapiBasicAuth Off
    GssapiSSLonly Off
    GssapiUseSessions Off
    GssapiLocalName Off
    GssapiPublishMech On
    Require valid-user
</Location>

<Location "{{.PathNegotiateBasic}}">
    AuthType GSSAPI
    AuthName "{{.RealmBasic}}"
    GssapiCredStore keytab:{{.Keytab}}
    GssapiAllowedMech krb5
    GssapiBasicAuth On
    GssapiBasicAuthMech krb5
    GssapiSSLonly Off
    GssapiUseSessions Off
    GssapiLocalName Off
    GssapiPublishMech On
    Require valid-user
</Location>

# Apache takes one AuthType per request: Negotiate and Basic credentials go
# to mod_auth_gssapi, everything else (Digest or none) to mod_auth_digest,
# whose 401 gets the Negotiate and Basic challenges added by mod_headers.
<Location "{{.PathMulti}}">
    Require valid-user
    <If "%{HTTP:Authorization} =~ /^(Negotiate|Basic)[ \t]/i">
        AuthType GSSAPI
        AuthName "{{.RealmDigest}}"
        GssapiCredStore keytab:{{.Keytab}}
        GssapiAllowedMech krb5
        GssapiBasicAuth On
        GssapiBasicAuthMech krb5
        GssapiSSLonly Off
        GssapiUseSessions Off
        GssapiLocalName Off
        GssapiPublishMech On
    </If>
    <Else>
        AuthType Digest
        AuthName "{{.RealmDigest}}"
        AuthDigestDomain {{.PathMulti}}
        AuthDigestProvider file
        AuthUserFile "{{.Dir}}/htdigest"
        AuthDigestNonceLifetime 300
        Header always add WWW-Authenticate "Negotiate" "expr=%{REQUEST_STATUS} == 401"
        Header always add WWW-Authenticate "Basic realm=\"{{.RealmDigest}}\"" "expr=%{REQUEST_STATUS} == 401"
    </Else>
</Location>
`))
