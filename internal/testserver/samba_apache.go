package testserver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// Protected paths of the AD Apache (StartADApache). Each serves index.txt,
// echo and whoami (WhoamiPath).
const (
	// PathADKerberos is Negotiate with krb5 only (GssapiAllowedMech krb5).
	PathADKerberos = "/krb/"
	// PathADNTLM is NTLM only: mod_auth_gssapi with gss-ntlmssp, which asks
	// the DC's winbindd to check the response (no NTLM_USER_FILE);
	// GssapiConnectionBound On. It is PathNTLM's path, so the NTLM test
	// helpers work on it.
	PathADNTLM = PathNTLM
	// PathADBoth offers krb5 and NTLMSSP (SPNEGO and raw NTLM),
	// GssapiConnectionBound On.
	PathADBoth = "/both/"
)

// ADLocations are the protected locations of the AD Apache.
var ADLocations = []Location{
	{PathADKerberos, "", "Negotiate, krb5 only (keytab exported from the AD DC); REMOTE_USER alice@CORP.TEST"},
	{PathADNTLM, "", `NTLM and Negotiate carrying NTLMSSP, checked by the DC's winbindd (gss-ntlmssp, libwbclient), connection-bound; REMOTE_USER CORP\alice`},
	{PathADBoth, "", "Negotiate with krb5 or NTLMSSP, and raw NTLM, connection-bound"},
}

// StartADApache starts Debian's Apache httpd with mod_auth_gssapi on a free
// 127.0.0.1 port, accepting tickets for ad's SPNs (ADSPN with AES,
// ADSPNAddr with RC4) from ad.Keytab and NTLM for the domain's users, with
// the locations in ADLocations. Its URL is http://localhost:PORT (SPN
// HTTP/localhost); as http://127.0.0.1:PORT it is HTTP/127.0.0.1.
//
// NTLM goes through gss-ntlmssp (loaded with a mech file of its own,
// GSS_MECH_CONFIG) without NTLM_USER_FILE, so gss-ntlmssp uses winbind:
// libwbclient finds the DC's winbindd on the compiled-in
// /run/samba/winbindd/pipe, asks it for its privileged pipe
// (ad.WinbindPrivDir) and has the NTLMv2 response checked there. The
// workers (www-data when started as root) reach the privileged pipe
// because StartSambaAD gave that directory their group. The error wraps
// ErrNotInstalled when apache2, mod_auth_gssapi or gss-ntlmssp is missing.
func StartADApache(ad *SambaAD) (*Server, error) { return startADApache(ad, false) }

// StartADApacheTLS is StartADApache over https (mod_ssl, a throw-away CA:
// Server.TLSConfig trusts it), reached as https://localhost:PORT.
func StartADApacheTLS(ad *SambaAD) (*Server, error) { return startADApache(ad, true) }

func startADApache(ad *SambaAD, useTLS bool) (*Server, error) {
	if ad == nil || ad.Keytab == "" {
		return nil, fmt.Errorf("testserver: apache-ad needs a running SambaAD")
	}
	mech, err := findGSSNTLMSSP()
	if err != nil {
		return nil, err
	}
	files := map[string]string{
		"gss/mech": fmt.Sprintf("gssntlmssp_v1 1.3.6.1.4.1.311.2.2.10 %s\n", mech),
	}
	for _, l := range ADLocations {
		files["htdocs"+l.Path+WhoamiPath] = ntlmWhoami
	}
	env := func(dir string) []string {
		return []string{
			"KRB5_CONFIG=" + ad.Config,
			// Not GssapiCredStore keytab:...: with a cred store,
			// gss-ntlmssp acquires a credential that gss_accept_sec_context
			// refuses ("Invalid credential was supplied (Not a server
			// credential type)"); krb5 finds the keytab here instead.
			"KRB5_KTNAME=FILE:" + ad.Keytab,
			"GSS_MECH_CONFIG=" + filepath.Join(dir, "gss", "mech"),
		}
	}
	name := "apache-ad"
	if useTLS {
		name = "apache-ad-tls"
	}
	s, err := startGSSAPIServer(name, ADLocations, files, env, adLocationsConf, map[string]any{
		"PathADKerberos": PathADKerberos,
		"PathADNTLM":     PathADNTLM,
		"PathADBoth":     PathADBoth,
		"TLS":            useTLS,
	})
	if err != nil {
		return nil, err
	}
	s.URL = strings.Replace(s.URL, "://127.0.0.1:", "://localhost:", 1)
	return s, nil
}

// findGSSNTLMSSP returns the gss-ntlmssp mechanism: $TESTSERVER_GSSNTLMSSP
// or the first of gssNTLMSSPPaths that exists.
func findGSSNTLMSSP() (string, error) {
	paths := gssNTLMSSPPaths
	if p := os.Getenv("TESTSERVER_GSSNTLMSSP"); p != "" {
		paths = []string{p}
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: gss-ntlmssp not found in %v", ErrNotInstalled, paths)
}

// adLocationsConf keeps the workers up, as ntlmLocationsConf does, so that
// connection-bound NTLM contexts survive.
var adLocationsConf = template.Must(template.New("ad-locations").Parse(`
StartServers 4
MinSpareThreads 25
MaxSpareThreads 100
{{define "common"}}
    GssapiBasicAuth Off
    GssapiSSLonly Off
    GssapiUseSessions Off
    GssapiLocalName Off
    GssapiPublishMech On
    Require valid-user
{{end}}
<Location "{{.PathADKerberos}}">
    AuthType GSSAPI
    AuthName "anyauth ad krb5"
    GssapiAllowedMech krb5
{{template "common" .}}
</Location>
<Location "{{.PathADNTLM}}">
    AuthType GSSAPI
    AuthName "anyauth ad ntlm"
    GssapiAllowedMech ntlmssp
    GssapiConnectionBound On
{{template "common" .}}
</Location>
<Location "{{.PathADBoth}}">
    AuthType GSSAPI
    AuthName "anyauth ad both"
    GssapiAllowedMech krb5
    GssapiAllowedMech ntlmssp
    GssapiConnectionBound On
{{template "common" .}}
</Location>
`))
