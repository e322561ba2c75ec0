package testserver

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/go-ntlmssp"
	krbclient "github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// adClient logs in to the AD's KDC with gokrb5 as user.
func adClient(t *testing.T, a *SambaAD, user string) *krbclient.Client {
	t.Helper()
	cfg, err := config.Load(a.Config)
	if err != nil {
		t.Fatalf("gokrb5 cannot load %s: %v", a.Config, err)
	}
	cl := krbclient.NewWithPassword(user, a.Realm, a.Users[user], cfg, krbclient.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("gokrb5 login as %s@%s: %v", user, a.Realm, err)
	}
	t.Cleanup(cl.Destroy)
	return cl
}

// keytabEntries lists a keytab as "principal@REALM etype" strings.
func keytabEntries(t *testing.T, path string) []string {
	t.Helper()
	kt, err := keytab.Load(path)
	if err != nil {
		t.Fatalf("keytab %s: %v", path, err)
	}
	var out []string
	for _, e := range kt.Entries {
		out = append(out, strings.Join(e.Principal.Components, "/")+"@"+e.Principal.Realm+" "+etypeName(e.Key.KeyType))
	}
	sort.Strings(out)
	return out
}

func etypeName(id int32) string {
	switch id {
	case etypeID.AES128_CTS_HMAC_SHA1_96:
		return "aes128-cts-hmac-sha1-96"
	case etypeID.AES256_CTS_HMAC_SHA1_96:
		return "aes256-cts-hmac-sha1-96"
	case etypeID.RC4_HMAC:
		return "rc4-hmac"
	}
	return fmt.Sprintf("etype-%d", id)
}

func TestSambaAD(t *testing.T) {
	began := time.Now()
	a := StartSambaADForTest(t)
	cold := time.Since(began)
	mem, err := a.Memory()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cold start %v: provision (samba-tool provision, 4 accounts, 2 SPNs, keytabs) %v, samba until kinit and wbinfo answer %v",
		cold.Round(time.Millisecond), a.Provision.Round(time.Millisecond), a.Startup.Round(time.Millisecond))
	t.Logf("memory: %d processes, RSS %.1f MiB (sum, shared pages counted per process), PSS %.1f MiB",
		mem.Processes, float64(mem.RSS)/(1<<20), float64(mem.PSS)/(1<<20))
	t.Logf("KDC %s, kpasswd %s, krb5.conf %s", a.KDCAddr, a.KpasswdAddr, a.Config)
	if !strings.HasPrefix(a.KDCAddr, "127.0.0.1:") || a.Realm != ADRealm || a.Domain != ADDomain {
		t.Fatalf("KDCAddr %q realm %q domain %q", a.KDCAddr, a.Realm, a.Domain)
	}

	// kinit (MIT) as both users, bob with his non-ASCII password.
	for user, password := range a.Users {
		cc := filepath.Join(t.TempDir(), "ccache")
		if err := a.Kinit(cc, user, password); err != nil {
			t.Errorf("kinit %s: %v", user, err)
		}
		if err := a.Kinit(cc, ADDomain+`\`+user, password+"x"); err == nil {
			t.Errorf("kinit %s with a wrong password succeeded", user)
		}
	}

	// The keytabs hold the SPNs with the account's enctypes.
	want := map[string][]string{
		a.KeytabPath(ADSPN): {
			"HTTP/localhost@CORP.TEST aes128-cts-hmac-sha1-96",
			"HTTP/localhost@CORP.TEST aes256-cts-hmac-sha1-96",
		},
		a.KeytabPath(ADSPNAddr + "@" + ADRealm): {"HTTP/127.0.0.1@CORP.TEST rc4-hmac"},
	}
	want[a.Keytab] = append(append([]string{}, want[a.KeytabPath(ADSPNAddr)]...), want[a.KeytabPath(ADSPN)]...)
	sort.Strings(want[a.Keytab])
	for path, w := range want {
		if path == "" {
			t.Fatal("KeytabPath returned no keytab")
		}
		if got := keytabEntries(t, path); strings.Join(got, "|") != strings.Join(w, "|") {
			t.Errorf("%s: %q, want %q", filepath.Base(path), got, w)
		}
	}
	if p := a.KeytabPath("HTTP/nowhere"); p != "" {
		t.Errorf("KeytabPath(HTTP/nowhere) = %q", p)
	}

	// gokrb5 logs in as both users; the KDC's service tickets decrypt with
	// the exported keys, AES for HTTP/localhost and RC4 for HTTP/127.0.0.1.
	kt, err := keytab.Load(a.Keytab)
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{ADUser, ADSecondUser} {
		cl := adClient(t, a, user)
		for spn, etype := range map[string]int32{ADSPN: etypeID.AES256_CTS_HMAC_SHA1_96, ADSPNAddr: etypeID.RC4_HMAC} {
			tkt, key, err := cl.GetServiceTicket(spn)
			if err != nil {
				t.Errorf("%s: service ticket for %s: %v", user, spn, err)
				continue
			}
			if tkt.EncPart.EType != etype {
				t.Errorf("%s: ticket for %s encrypted with etype %d, want %d", user, spn, tkt.EncPart.EType, etype)
			}
			if err := tkt.DecryptEncPart(kt, nil); err != nil {
				t.Errorf("%s: ticket for %s does not decrypt with the keytab: %v", user, spn, err)
			} else if got := tkt.DecryptedEncPart.CName.PrincipalNameString(); got != user {
				t.Errorf("ticket for %s names client %q, want %q", spn, got, user)
			}
			t.Logf("%s: ticket for %s: etype %d, session key etype %d", user, spn, tkt.EncPart.EType, key.KeyType)
		}
	}

	// winbindd checks NTLM responses for the domain users (what
	// gss-ntlmssp asks it through libwbclient).
	for user, password := range a.Users {
		out, err := a.run(nil, a.bins.wbinfo, "--authenticate="+ADDomain+`\`+user+"%"+password)
		if err != nil || !strings.Contains(out, "challenge/response password authentication succeeded") {
			t.Errorf("wbinfo --authenticate %s: %v\n%s", user, err, out)
		}
	}

	// Close leaves nothing behind.
	pgid := a.cmd.Process.Pid
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if pids := liveGroupMembers(pgid); len(pids) > 0 {
		t.Errorf("after Close: processes %v alive", pids)
	}
	gone := []string{a.Dir}
	// Another test binary may have started its DC meanwhile.
	if holder, err := os.ReadFile(adLockFile); err == nil {
		if strings.TrimSpace(string(holder)) == strconv.Itoa(os.Getpid()) {
			t.Errorf("after Close: %s still names us", adLockFile)
		}
	} else {
		gone = append(gone, winbindSocketDir)
	}
	for _, p := range gone {
		if _, err := os.Lstat(p); !os.IsNotExist(err) {
			t.Errorf("after Close: %s still there (%v)", p, err)
		}
	}
}

func TestADApache(t *testing.T) {
	a := StartSambaADForTest(t)
	s := StartForTest(t, func() (*Server, error) { return StartADApache(a) })
	t.Logf("%s %s up in %v", s.Name, s.URL, s.Startup)
	if !strings.HasPrefix(s.URL, "http://localhost:") {
		t.Fatalf("URL %q, want http://localhost:PORT", s.URL)
	}
	addrURL := strings.Replace(s.URL, "localhost", "127.0.0.1", 1)

	// Challenges without credentials.
	for path, want := range map[string]string{
		PathADKerberos: "Negotiate",
		PathADNTLM:     "Negotiate|NTLM",
		PathADBoth:     "Negotiate|NTLM",
	} {
		resp, body := gssGet(t, s.URL+path+WhoamiPath, "")
		lines := resp.Header.Values("WWW-Authenticate")
		if resp.StatusCode != 401 || strings.Join(lines, "|") != want {
			t.Errorf("GET %s without credentials: %s %q %q, want 401 %q", path, resp.Status, lines, body, want)
		}
	}

	// Kerberos (gokrb5 SPNEGO tokens) on /krb/ and /both/, AES by name,
	// RC4 by address, for both users.
	for _, user := range []string{ADUser, ADSecondUser} {
		cl := adClient(t, a, user)
		for _, path := range []string{PathADKerberos, PathADBoth} {
			for _, c := range []struct{ url, spn string }{{s.URL, ADSPN}, {addrURL, ADSPNAddr}} {
				what := fmt.Sprintf("%s: GET %s%s (SPN %s)", user, c.url, path+WhoamiPath, c.spn)
				auth, key := negotiateAuth(t, cl, c.spn, true)
				resp, body := gssGet(t, c.url+path+WhoamiPath, auth)
				want := user + "@" + ADRealm + "\n"
				if resp.StatusCode != 200 || body != want {
					t.Errorf("%s: %s %q, want 200 %q", what, resp.Status, body, want)
					continue
				}
				if m := resp.Header.Get("X-Gss-Mech"); m != "Negotiate/krb5" {
					t.Errorf("%s: GSS_MECH %q", what, m)
				}
				if !checkNegotiateReply(t, what, resp, key) {
					t.Errorf("%s: no AP-REP", what)
				}
			}
		}
	}
	// NTLM is not offered on /krb/.
	c := dialNTLM(t, s)
	neg, _ := ntlmssp.NewNegotiateMessage("", "")
	if resp, _ := c.get(PathADKerberos+WhoamiPath, "NTLM "+base64.StdEncoding.EncodeToString(neg)); resp.StatusCode != 401 {
		t.Errorf("NTLM on %s: %s, want 401", PathADKerberos, resp.Status)
	}

	// NTLM (go-ntlmssp) as CORP\alice and CORP\bob, raw and in Negotiate,
	// on /ntlm/ and /both/, checked by winbindd.
	for _, path := range []string{PathADNTLM, PathADBoth} {
		for _, scheme := range []string{"NTLM", "Negotiate"} {
			for _, user := range []string{ADUser, ADSecondUser} {
				resp, body := adNTLMHandshake(t, dialNTLM(t, s), path, scheme, ADDomain+`\`+user, a.Users[user])
				want := ADDomain + `\` + user + "\n"
				if resp.StatusCode != 200 || body != want {
					t.Errorf("%s %s as %s\\%s: %s %q, want 200 %q", path, scheme, ADDomain, user, resp.Status, body, want)
					continue
				}
				if path == PathADNTLM {
					t.Logf("%s %s as %s\\%s: 200, REMOTE_USER %q, AUTH_TYPE %q, GSS_MECH %q", path, scheme, ADDomain, user,
						strings.TrimSpace(body), resp.Header.Get("X-Auth-Type"), resp.Header.Get("X-Gss-Mech"))
				}
			}
			for _, c := range []struct{ user, password string }{
				{ADDomain + `\` + ADUser, "wrong"},
				{ADDomain + `\` + ADUser, ADSecondPassword},
				{ADDomain + `\mallory`, ADPassword},
			} {
				resp, body := adNTLMHandshake(t, dialNTLM(t, s), path, scheme, c.user, c.password)
				if resp.StatusCode != 401 {
					t.Errorf("%s %s as %s with a wrong password: %s %q, want 401", path, scheme, c.user, resp.Status, body)
				}
			}
		}
	}
	for _, h := range s.Requests("/") {
		if h.Status == 200 {
			t.Logf("access log: %d %s %s %q", h.Status, h.Method, h.Target, h.User)
		}
	}
}

// adNTLMHandshake is ntlmHandshake on path.
func adNTLMHandshake(t *testing.T, c *ntlmConn, path, scheme, user, password string) (*http.Response, string) {
	t.Helper()
	neg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, body := c.get(path+WhoamiPath, scheme+" "+base64.StdEncoding.EncodeToString(neg))
	tok, ok := strings.CutPrefix(resp.Header.Get("WWW-Authenticate"), scheme+" ")
	if resp.StatusCode != http.StatusUnauthorized || !ok {
		t.Fatalf("%s %s negotiate: %s %q %q, want 401 with a challenge", path, scheme, resp.Status, resp.Header.Values("WWW-Authenticate"), body)
	}
	challenge, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := ntlmssp.NewAuthenticateMessage(challenge, user, password, nil)
	if err != nil {
		t.Fatalf("go-ntlmssp refuses the challenge: %v", err)
	}
	return c.get(path+WhoamiPath, scheme+" "+base64.StdEncoding.EncodeToString(auth))
}
