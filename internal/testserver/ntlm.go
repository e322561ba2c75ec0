package testserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
)

// NTLM names of the NTLM Apache (StartNTLMApache).
const (
	// NTLMDomain is the NetBIOS domain of the server and of its only user,
	// User with password Password.
	NTLMDomain = "ANYAUTH"
	// NTLMComputer is the server's NetBIOS computer name.
	NTLMComputer = "ANYAUTHWEB"
	// PathNTLM is NTLM (mod_auth_gssapi with gss-ntlmssp,
	// GssapiConnectionBound On): raw "NTLM" and SPNEGO "Negotiate"
	// carrying raw NTLMSSP messages, on one keep-alive connection.
	// REMOTE_USER is User (without domain).
	PathNTLM = "/ntlm/"
	// PathNTLMBig is PathNTLM whose 401 responses carry a body of
	// NTLMBig401Size bytes (ErrorDocument), on the same keep-alive
	// connection.
	PathNTLMBig = "/ntlm-big/"
	// NTLMBig401Size is the size of PathNTLMBig's 401 body.
	NTLMBig401Size = 200 << 10
	// NTLMSecondUser is a second account of the NTLM server, in
	// NTLMDomain, with password NTLMSecondPassword.
	NTLMSecondUser     = "bob"
	NTLMSecondPassword = "bob's battery staple"
)

// ntlmWhoami replaces the whoami CGI in the NTLM locations: it prints
// REMOTE_USER and, for a request with a body, a line
// "body <length> <sha256 hex>".
const ntlmWhoami = `#!/bin/sh
printf 'Content-Type: text/plain\r\nX-Auth-Type: %s\r\nX-Gss-Mech: %s\r\n\r\n%s\n' "$AUTH_TYPE" "$GSS_MECH" "$REMOTE_USER"
if [ -n "$CONTENT_LENGTH" ] && [ "$CONTENT_LENGTH" -gt 0 ]; then
	sum=$(head -c "$CONTENT_LENGTH" | sha256sum | cut -d' ' -f1)
	printf 'body %s %s\n' "$CONTENT_LENGTH" "$sum"
fi
`

// gssNTLMSSPPaths are where Debian and Fedora put the gss-ntlmssp mechanism.
var gssNTLMSSPPaths = []string{
	"/usr/lib/x86_64-linux-gnu/gssntlmssp/gssntlmssp.so",
	"/usr/lib/aarch64-linux-gnu/gssntlmssp/gssntlmssp.so",
	"/usr/lib64/gssntlmssp/gssntlmssp.so",
	"/usr/lib/gssntlmssp/gssntlmssp.so",
}

// NTLMLocations are the protected locations of the NTLM Apache.
var NTLMLocations = []Location{
	{PathNTLM, "", `NTLM and Negotiate (NTLMSSP) via mod_auth_gssapi and gss-ntlmssp, connection-bound (a request without Authorization on an authenticated connection is let in); REMOTE_USER alice or bob`},
	{PathNTLMBig, "", `PathNTLM with a 200 KiB body on every 401`},
}

// StartNTLMApache starts Debian's Apache httpd with mod_auth_gssapi and the
// gss-ntlmssp mechanism (package gss-ntlmssp) on a free 127.0.0.1 port,
// with the location PathNTLM, and waits until it answers. Its URL is
// http://127.0.0.1:PORT. The user database (NTLM_USER_FILE) has one entry,
// NTLMDomain:User:Password; the mechanism is loaded through a mech file of
// its own (GSS_MECH_CONFIG).
//
// NTLM is a three-leg handshake (negotiate, challenge, authenticate) whose
// state lives in the TCP connection: the client must send the three
// requests on one keep-alive connection. The error wraps ErrNotInstalled
// when apache2, mod_auth_gssapi or gss-ntlmssp is missing.
func StartNTLMApache() (*Server, error) { return startNTLMApache(false) }

// StartNTLMApacheTLS is StartNTLMApache over https (mod_ssl, HTTP/1.1),
// with a certificate from a throw-away CA: its URL is
// https://127.0.0.1:PORT, its Name "apache-ntlm-tls", and CertPool and
// TLSConfig return what a client needs to trust it.
func StartNTLMApacheTLS() (*Server, error) { return startNTLMApache(true) }

func startNTLMApache(useTLS bool) (*Server, error) {
	var mech string
	if p := os.Getenv("TESTSERVER_GSSNTLMSSP"); p != "" {
		gssNTLMSSPPaths = []string{p}
	}
	for _, p := range gssNTLMSSPPaths {
		if _, err := os.Stat(p); err == nil {
			mech = p
			break
		}
	}
	if mech == "" {
		return nil, fmt.Errorf("%w: gss-ntlmssp not found in %v", ErrNotInstalled, gssNTLMSSPPaths)
	}
	files := map[string]string{
		"gss/mech":                          fmt.Sprintf("gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 %s\n", mech),
		"ntlm-users":                        fmt.Sprintf("%s:%s:%s\n%s:%s:%s\n", NTLMDomain, User, Password, NTLMDomain, NTLMSecondUser, NTLMSecondPassword),
		"htdocs/big401.txt":                 big401(),
		"htdocs" + PathNTLM + WhoamiPath:    ntlmWhoami,
		"htdocs" + PathNTLMBig + WhoamiPath: ntlmWhoami,
	}
	env := func(dir string) []string {
		return []string{
			"GSS_MECH_CONFIG=" + filepath.Join(dir, "gss", "mech"),
			"NTLM_USER_FILE=" + filepath.Join(dir, "ntlm-users"),
			"NETBIOS_COMPUTER_NAME=" + NTLMComputer,
			"NETBIOS_DOMAIN_NAME=" + NTLMDomain,
		}
	}
	name := "apache-ntlm"
	if useTLS {
		name += "-tls"
	}
	return startGSSAPIServer(name, NTLMLocations, files, env, ntlmLocationsConf, map[string]any{
		"PathNTLM":    PathNTLM,
		"PathNTLMBig": PathNTLMBig,
		"TLS":         useTLS,
	})
}

// big401 is the body of PathNTLMBig's 401 responses.
func big401() string {
	const line = "401 body padding, read to the end on a connection-bound handshake\n"
	return strings.Repeat(line, NTLMBig401Size/len(line)+1)[:NTLMBig401Size]
}

// StartNTLMForTest is StartForTest(t, StartNTLMApache).
func StartNTLMForTest(t testing.TB) *Server {
	t.Helper()
	return StartForTest(t, StartNTLMApache)
}

// ntlmLocationsConf also keeps the worker processes up: by default the
// event MPM stops surplus children, and closes their kept-alive
// connections, which an NTLM client must then authenticate again.
var ntlmLocationsConf = template.Must(template.New("ntlm-locations").Parse(`
StartServers 4
MinSpareThreads 25
MaxSpareThreads 100
{{define "ntlm"}}
    AuthType GSSAPI
    AuthName "anyauth ntlm"
    GssapiAllowedMech ntlmssp
    GssapiConnectionBound On
    GssapiBasicAuth Off
    GssapiSSLonly Off
    GssapiUseSessions Off
    GssapiLocalName Off
    GssapiPublishMech On
    Require valid-user
{{end}}
<Location "{{.PathNTLM}}">
{{template "ntlm"}}
</Location>
<Location "{{.PathNTLMBig}}">
{{template "ntlm"}}
    ErrorDocument 401 /big401.txt
</Location>
`))
