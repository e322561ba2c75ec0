package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// StartADSquid starts Squid (as StartSquid does: one process of its own,
// no cache, 127.0.0.1 targets only, the same access log and Hits) with two
// ports whose helpers ask the AD DC ad:
//
//   - SquidNTLM (NTLMURL) asks for NTLM, checked by the DC:
//     ntlm_auth --helper-protocol=squid-2.5-ntlmssp, which has winbindd
//     check the NTLMv2 response. Squid logs the user as ntlm_auth names it,
//     CORP\alice.
//     Proxy-Authenticate: NTLM
//   - SquidNegotiate (NegotiateURL) asks for Negotiate, answered through
//     negotiate_wrapper_auth: a Kerberos token goes to
//     negotiate_kerberos_auth -k ad.Keytab -s GSS_C_NO_NAME (tickets for
//     HTTP/127.0.0.1, RC4, and HTTP/localhost, AES), logged as
//     alice@CORP.TEST; a raw NTLMSSP token (Negotiate NTLM, as Windows
//     sends without Kerberos) goes to ntlm_auth
//     --helper-protocol=squid-2.5-ntlmssp, logged as CORP\alice. The
//     wrapper tells them apart by the NTLMSSP signature of the decoded
//     token: anything else (SPNEGO included) goes to
//     negotiate_kerberos_auth.
//     Proxy-Authenticate: Negotiate
//
// On a connection authenticated with NTLM, Squid wants a header on every
// request: a bare request gets a 407 (on the Negotiate port with
// "Proxy-Authenticate: Negotiate =", the placeholder blob that
// negotiate_wrapper_auth puts in ntlm_auth's "AF = user", sent back as
// the token of the next challenge), and a negotiate message gets 200 at
// once.
//
// ntlm_auth reaches winbindd on the compiled-in /run/samba/winbindd/pipe
// and checks responses over winbindd's privileged pipe
// (ad.WinbindPrivDir, mode 0750): Squid and its helpers therefore run as
// user proxy with the group of that directory (cache_effective_group;
// www-data, which StartSambaAD gave it for Apache), not group proxy.
// ntlm_auth reads an smb.conf of its own in Dir (workgroup CORP, realm
// CORP.TEST), not /etc/samba/smb.conf; its debug output goes to
// cache.log. negotiate_kerberos_auth gets KRB5_CONFIG=ad.Config.
//
// The error wraps ErrNotInstalled when squid or a helper is missing.
func StartADSquid(ad *SambaAD) (*Squid, error) {
	if ad == nil || ad.Keytab == "" || ad.WinbindPrivDir == "" {
		return nil, errors.New("testserver: StartADSquid needs a running SambaAD")
	}
	bin, err := findBinary("TESTSERVER_SQUID", []string{"squid"}, "/usr/sbin/squid")
	if err != nil {
		return nil, err
	}
	ntlmAuth, err := findBinary("TESTSERVER_NTLM_AUTH", []string{"ntlm_auth"}, "/usr/bin/ntlm_auth")
	if err != nil {
		return nil, fmt.Errorf("%w (Debian package winbind)", err)
	}
	wrapper := filepath.Join(squidHelpers, "negotiate_wrapper_auth")
	kerberos := filepath.Join(squidHelpers, "negotiate_kerberos_auth")
	for _, p := range []string{wrapper, kerberos} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	dir, as, err := serverDir("squid-ad", adSquidUser)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	ntlmConf := filepath.Join(dir, "ntlm_auth.conf")
	ntlm := []string{ntlmAuth, "--helper-protocol=squid-2.5-ntlmssp", "--configfile=" + ntlmConf}
	ports := []squidPort{
		{Name: SquidNTLM, Scheme: "ntlm", Program: ntlm},
		{Name: SquidNegotiate, Scheme: "negotiate",
			Program: append(append([]string{wrapper, "--ntlm"}, ntlm...),
				"--kerberos", kerberos, "-k", ad.Keytab, "-s", "GSS_C_NO_NAME", "-c", filepath.Join(dir, "run"))},
	}
	for _, p := range ports {
		for _, a := range p.Program {
			if strings.ContainsAny(a, " \t\n\"'\\") {
				return nil, fmt.Errorf("testserver: squid helper argument %q has characters unsafe in squid.conf", a)
			}
		}
	}
	files := map[string]string{"ntlm_auth.conf": fmt.Sprintf(adNTLMAuthConf, ad.Domain, ad.Realm, dir+"/run", winbindSocketDir)}
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
	service := "anyauthad" + hex.EncodeToString(suffix)
	env := append(serverEnv(), ad.Env()...)

	s, err := runSquid(bin, dir, service, env, ports, as)
	ok = err == nil
	return s, err
}

// adSquidUser is squidUser with the group StartSambaAD gave winbindd's
// privileged pipe directory (that of dropPrivileges: Apache's workers'),
// so that ntlm_auth, run by Squid, may connect to the pipe.
func adSquidUser() (*runAs, error) {
	as, err := squidUser()
	if err != nil || as == nil {
		return as, err
	}
	workers, err := dropPrivileges()
	if err != nil || workers == nil {
		return as, err
	}
	return &runAs{User: as.User, Group: workers.Group, UID: as.UID, GID: workers.GID}, nil
}

// adNTLMAuthConf is ntlm_auth's smb.conf: the domain's names (the NTLM
// challenge's target names come from them), no state outside Dir; no
// log file, so its messages go to stderr (cache.log). Arguments: workgroup, realm, Dir/run,
// winbindd socket dir.
const adNTLMAuthConf = `# Generated by github.com/anyauth/anyauth/internal/testserver.
[global]
	workgroup = %[1]s
	realm = %[2]s
	netbios name = SQUIDPROXY
	security = ads
	server role = member server
	lock directory = %[3]s
	state directory = %[3]s
	cache directory = %[3]s
	private dir = %[3]s
	pid directory = %[3]s
	winbindd socket directory = %[4]s
	log level = 1
`

// StartADSquidForTest starts StartADSquid(ad), stops it when the test ends
// and, if the test failed, logs its cache.log (ntlm_auth's and the
// helpers' messages included). Like StartSquidForTest, a missing Squid
// skips the test, or fails it when InCI.
func StartADSquidForTest(t testing.TB, ad *SambaAD) *Squid {
	t.Helper()
	return forTest(t, func() (*Squid, error) { return StartADSquid(ad) }, squidErrorLog)
}
