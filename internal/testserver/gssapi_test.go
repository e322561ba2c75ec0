package testserver

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	krbclient "github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// gssHTTP talks to the test servers directly, one request at a time.
var gssHTTP = &http.Client{
	Transport: &http.Transport{Proxy: nil},
	Timeout:   10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// gssGet sends GET url with the Authorization header auth (none if "") and
// returns the response with its body read.
func gssGet(t *testing.T, url, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := gssHTTP.Do(req)
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

// negotiateAuth is an "Authorization: Negotiate" value built by gokrb5 (not
// our library): a SPNEGO NegTokenInit carrying a krb5 AP-REQ for spn, with
// mutual authentication requested if mutual. It returns the session key,
// to check the server's AP-REP.
func negotiateAuth(t *testing.T, cl *krbclient.Client, spn string, mutual bool) (string, types.EncryptionKey) {
	t.Helper()
	tkt, key, err := cl.GetServiceTicket(spn)
	if err != nil {
		t.Fatalf("service ticket for %s: %v", spn, err)
	}
	gssFlags := []int{gssapi.ContextFlagInteg, gssapi.ContextFlagConf}
	var apOpts []int
	if mutual {
		gssFlags = append(gssFlags, gssapi.ContextFlagMutual)
		apOpts = append(apOpts, flags.APOptionMutualRequired)
	}
	mt, err := spnego.NewKRB5TokenAPREQ(cl, tkt, key, gssFlags, apOpts)
	if err != nil {
		t.Fatal(err)
	}
	mtb, err := mt.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// NewNegTokenInitKRB5 lists the krb5 mechanism; its own mech token
	// never asks for mutual authentication, so it is replaced.
	init, err := spnego.NewNegTokenInitKRB5(cl, tkt, key)
	if err != nil {
		t.Fatal(err)
	}
	init.MechTokenBytes = mtb
	tok := spnego.SPNEGOToken{Init: true, NegTokenInit: init}
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return "Negotiate " + base64.StdEncoding.EncodeToString(b), key
}

// checkNegotiateReply checks the "WWW-Authenticate: Negotiate <token>" of a
// 200: a SPNEGO accept-completed whose response token, if any, is a krb5
// AP-REP that decrypts with the session key. It reports whether there was
// an AP-REP.
func checkNegotiateReply(t *testing.T, what string, resp *http.Response, key types.EncryptionKey) bool {
	t.Helper()
	lines := resp.Header.Values("WWW-Authenticate")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "Negotiate ") {
		t.Errorf("%s: 200 with WWW-Authenticate %q, want one Negotiate <token>", what, lines)
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(lines[0], "Negotiate "))
	if err != nil {
		t.Errorf("%s: token: %v", what, err)
		return false
	}
	var r spnego.NegTokenResp
	if err := r.Unmarshal(raw); err != nil {
		t.Errorf("%s: NegTokenResp: %v", what, err)
		return false
	}
	if r.State() != spnego.NegStateAcceptCompleted || !r.SupportedMech.Equal(gssapi.OIDKRB5.OID()) {
		t.Errorf("%s: negState %d mech %v, want accept-completed krb5", what, r.State(), r.SupportedMech)
	}
	if len(r.ResponseToken) == 0 {
		return false
	}
	var mt spnego.KRB5Token
	if err := mt.Unmarshal(r.ResponseToken); err != nil || !mt.IsAPRep() {
		t.Errorf("%s: response token is not an AP-REP (%v)", what, err)
		return false
	}
	plain, err := crypto.DecryptEncPart(mt.APRep.EncPart, key, keyusage.AP_REP_ENCPART)
	if err != nil {
		t.Errorf("%s: AP-REP does not decrypt with the session key: %v", what, err)
		return true
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		t.Errorf("%s: EncAPRepPart: %v", what, err)
	} else if d := time.Since(part.CTime); d < -time.Minute || d > time.Minute {
		t.Errorf("%s: AP-REP ctime %v", what, part.CTime)
	}
	return true
}

// gssDigest answers the Digest challenge among lines (MD5, qop=auth) for
// GET uri as User/Password.
func gssDigest(t *testing.T, lines []string, uri string) string {
	t.Helper()
	var ch string
	for _, l := range lines {
		if strings.HasPrefix(l, "Digest ") {
			ch = l
		}
	}
	m := regexp.MustCompile(`nonce="([^"]*)"`).FindStringSubmatch(ch)
	if m == nil {
		t.Fatalf("no Digest nonce in %q", lines)
	}
	h := func(s string) string { x := md5.Sum([]byte(s)); return hex.EncodeToString(x[:]) }
	ha1 := h(User + ":" + RealmDigest + ":" + Password)
	ha2 := h("GET:" + uri)
	cnonce, nc := "0a4f113b", "00000001"
	resp := h(strings.Join([]string{ha1, m[1], nc, cnonce, "auth", ha2}, ":"))
	return fmt.Sprintf(`Digest username="%s", realm="%s", nonce="%s", uri="%s", algorithm=MD5, response="%s", qop=auth, nc=%s, cnonce="%s"`,
		User, RealmDigest, m[1], uri, resp, nc, cnonce)
}

func basicAuth(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestGSSAPIApache(t *testing.T) {
	began := time.Now()
	kdc := StartKDCForTest(t)
	kdcUp := time.Since(began)
	s := StartForTest(t, func() (*Server, error) { return StartGSSAPIApache(kdc) })
	t.Logf("StartKDC %v (krb5kdc itself %v); StartGSSAPIApache %s %v (Apache itself %v)",
		kdcUp, kdc.Startup, s.URL, time.Since(began)-kdcUp, s.Startup)
	if !strings.HasPrefix(s.URL, "http://localhost:") {
		t.Fatalf("URL %q, want http://localhost:PORT", s.URL)
	}
	addrURL := strings.Replace(s.URL, "localhost", "127.0.0.1", 1)
	cl := krbClient(t, kdc)

	// Unauthenticated: 401 and the challenges.
	want401 := map[string][]string{
		PathNegotiate:      {"Negotiate"},
		PathNegotiateBasic: {"Negotiate", `Basic realm="` + RealmBasic + `"`},
		PathMulti:          {"Negotiate", `Basic realm="` + RealmDigest + `"`, "Digest "},
	}
	challengesOf := map[string][]string{}
	for path, want := range want401 {
		resp, body := gssGet(t, s.URL+path+WhoamiPath, "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("GET %s without credentials: %s %q", path, resp.Status, body)
		}
		lines := resp.Header.Values("WWW-Authenticate")
		challengesOf[path] = lines
		for _, l := range lines {
			t.Logf("%s 401 WWW-Authenticate: %s", path, l)
		}
		if len(lines) != len(want) {
			t.Errorf("%s: %d challenges %q, want %d", path, len(lines), lines, len(want))
		}
		for _, w := range want {
			found := false
			for _, l := range lines {
				if l == w || strings.HasSuffix(w, " ") && strings.HasPrefix(l, w) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: no challenge %q in %q", path, w, lines)
			}
		}
	}

	// Negotiate (krb5 via SPNEGO), with and without mutual authentication,
	// on every location, by name and by address.
	for _, path := range []string{PathNegotiate, PathNegotiateBasic, PathMulti} {
		for _, c := range []struct {
			url, spn string
			mutual   bool
		}{{s.URL, KerberosSPN, true}, {s.URL, KerberosSPN, false}, {addrURL, KerberosSPNAddr, true}} {
			what := fmt.Sprintf("GET %s%s (SPN %s, mutual %v)", c.url, path+WhoamiPath, c.spn, c.mutual)
			auth, key := negotiateAuth(t, cl, c.spn, c.mutual)
			resp, body := gssGet(t, c.url+path+WhoamiPath, auth)
			if resp.StatusCode != http.StatusOK || body != KerberosPrincipal+"\n" {
				t.Errorf("%s: %s %q, want 200 %q", what, resp.Status, body, KerberosPrincipal+"\n")
				continue
			}
			if m, a := resp.Header.Get("X-Gss-Mech"), resp.Header.Get("X-Auth-Type"); m != "Negotiate/krb5" || a != "Negotiate" {
				t.Errorf("%s: GSS_MECH %q, AUTH_TYPE %q", what, m, a)
			}
			aprep := checkNegotiateReply(t, what, resp, key)
			if c.mutual != aprep {
				t.Errorf("%s: AP-REP in the 200: %v", what, aprep)
			}
			if path == PathNegotiate && c.spn == KerberosSPN {
				t.Logf("%s: 200 WWW-Authenticate: %s (AP-REP: %v)", what, resp.Header.Get("WWW-Authenticate"), aprep)
			}
		}
		// The static file too.
		auth, _ := negotiateAuth(t, cl, KerberosSPN, false)
		if resp, body := gssGet(t, s.URL+path, auth); resp.StatusCode != 200 || body != IndexContent(path) {
			t.Errorf("GET %s with Negotiate: %s %q", path, resp.Status, body)
		}
	}
	// gokrb5 asked the KDC once per SPN: TGSRequests proves the caching.
	if n := kdc.TGSRequestsFor(KerberosSPN); n != 1 {
		t.Errorf("TGS-REQs for %s: %d, want 1", KerberosSPN, n)
	}
	if n := kdc.TGSRequestsFor(KerberosSPNAddr); n != 1 {
		t.Errorf("TGS-REQs for %s: %d, want 1", KerberosSPNAddr, n)
	}
	if n := kdc.TGSRequests(); n != 2 {
		t.Errorf("TGS-REQs: %d, want 2", n)
	}
	// The access log names the principal.
	for _, h := range s.Requests(PathNegotiate) {
		if h.Status == 200 && h.User != KerberosPrincipal {
			t.Errorf("access log: %+v", h)
		}
	}

	// A bogus Negotiate token and a replayed one are refused with a fresh
	// challenge.
	for what, auth := range map[string]string{
		"garbage token": "Negotiate YIIBAAYGKwYBBQUCoIH1",
		"replayed token": func() string {
			a, _ := negotiateAuth(t, cl, KerberosSPN, false)
			gssGet(t, s.URL+PathNegotiate, a)
			return a
		}(),
	} {
		resp, body := gssGet(t, s.URL+PathNegotiate+WhoamiPath, auth)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %s %q, want 401", what, resp.Status, body)
		}
		t.Logf("%s: %s, WWW-Authenticate %q", what, resp.Status, resp.Header.Values("WWW-Authenticate"))
	}

	// Basic: checked against the KDC where GssapiBasicAuth is on.
	as0, tgs0 := kdc.ASRequests(), kdc.TGSRequests()
	for _, c := range []struct {
		path, password string
		want           int
	}{
		{PathNegotiateBasic, Password, 200},
		{PathNegotiateBasic, "wrong", 401},
		{PathMulti, Password, 200},
		{PathMulti, "wrong", 401},
		{PathNegotiate, Password, 401},
	} {
		resp, body := gssGet(t, s.URL+c.path+WhoamiPath, basicAuth(User, c.password))
		if resp.StatusCode != c.want {
			t.Errorf("Basic %s password %q: %s %q, want %d", c.path, c.password, resp.Status, body, c.want)
			continue
		}
		if c.want == 200 {
			if body != KerberosPrincipal+"\n" || resp.Header.Get("X-Gss-Mech") != "Basic/krb5" || resp.Header.Get("X-Auth-Type") != "Basic" {
				t.Errorf("Basic %s: %q, GSS_MECH %q, AUTH_TYPE %q", c.path, body, resp.Header.Get("X-Gss-Mech"), resp.Header.Get("X-Auth-Type"))
			}
			t.Logf("Basic %s: 200 WWW-Authenticate %q", c.path, resp.Header.Values("WWW-Authenticate"))
		} else {
			t.Logf("Basic %s password %q: 401 WWW-Authenticate %q", c.path, c.password, resp.Header.Values("WWW-Authenticate"))
		}
	}

	t.Logf("5 Basic requests cost %d AS-REQs and %d TGS-REQs at the KDC", kdc.ASRequests()-as0, kdc.TGSRequests()-tgs0)

	// Digest on /multi/ goes to mod_auth_digest.
	uri := PathMulti + WhoamiPath
	resp, body := gssGet(t, s.URL+uri, gssDigest(t, challengesOf[PathMulti], uri))
	if resp.StatusCode != 200 || body != User+"\n" || resp.Header.Get("X-Auth-Type") != "Digest" {
		t.Errorf("Digest %s: %s %q, AUTH_TYPE %q", uri, resp.Status, body, resp.Header.Get("X-Auth-Type"))
	} else {
		t.Logf("Digest %s: 200 Authentication-Info %q", uri, resp.Header.Get("Authentication-Info"))
	}
}

// TestGSSAPICurl checks the server with MIT's own client stack: kinit,
// then curl --negotiate (GSS-API), which insists on mutual authentication.
func TestGSSAPICurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	kdc, s := StartGSSAPIForTest(t)
	cc := filepath.Join(t.TempDir(), "ccache")
	if err := kdc.Kinit(cc); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{PathNegotiate, PathNegotiateBasic, PathMulti} {
		cmd := exec.Command(curl, "--silent", "--show-error", "--include", "--noproxy", "*",
			"--negotiate", "--user", ":", s.URL+path+WhoamiPath)
		cmd.Env = append(os.Environ(), "KRB5_CONFIG="+kdc.Config, "KRB5CCNAME=FILE:"+cc)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", path, err, out)
		}
		text := "\n" + strings.ReplaceAll(string(out), "\r\n", "\n")
		if !strings.Contains(text, "\nHTTP/1.1 200 OK\n") || !strings.HasSuffix(text, "\n\n"+KerberosPrincipal+"\n") {
			t.Errorf("curl --negotiate %s:\n%s", path, text)
		}
		if path == PathNegotiate {
			for _, l := range strings.Split(text, "\n") {
				if strings.HasPrefix(strings.ToLower(l), "www-authenticate:") || strings.HasPrefix(l, "HTTP/") {
					t.Logf("curl %s: %s", path, l)
				}
			}
		}
	}
	if n := kdc.TGSRequestsFor(KerberosSPN); n != 1 {
		t.Errorf("TGS-REQs for %s: %d, want 1 (curl caches the ticket in the ccache)", KerberosSPN, n)
	}
}

// TestGSSAPIApacheTLS: the https GSSAPI Apache accepts a gokrb5-built
// Negotiate token for HTTP/localhost over TLS, answers with the AP-REP,
// and the user's keytab (KDC.UserKeytab) logs in.
func TestGSSAPIApacheTLS(t *testing.T) {
	kdc := StartKDCForTest(t)
	s := StartForTest(t, func() (*Server, error) { return StartGSSAPIApacheTLS(kdc) })
	if !strings.HasPrefix(s.URL, "https://localhost:") || s.Name != "apache-gssapi-tls" {
		t.Fatalf("URL %q name %q, want https://localhost:PORT, apache-gssapi-tls", s.URL, s.Name)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil, TLSClientConfig: s.TLSConfig()}, Timeout: 10 * time.Second}
	get := func(auth string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", s.URL+PathNegotiate+WhoamiPath, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, _ := get(""); resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != "Negotiate" {
		t.Fatalf("without credentials: %s %q", resp.Status, resp.Header.Values("WWW-Authenticate"))
	}
	auth, key := negotiateAuth(t, krbClient(t, kdc), KerberosSPN, true)
	resp, body := get(auth)
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != KerberosPrincipal {
		t.Fatalf("with a ticket: %s %q", resp.Status, body)
	}
	if !checkNegotiateReply(t, "https", resp, key) {
		t.Error("no AP-REP on the https 200")
	}
	kt, err := keytab.Load(kdc.UserKeytab)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := config.Load(kdc.Config)
	cl := krbclient.NewWithKeytab(kdc.User, kdc.Realm, kt, cfg, krbclient.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("login with KDC.UserKeytab: %v", err)
	}
	cl.Destroy()
}
