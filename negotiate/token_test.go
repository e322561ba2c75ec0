package negotiate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jcmturner/gokrb5/v8/config"
)

// Tokens mod_auth_gssapi sent (see internal/testserver): accept-completed
// without AP-REP, reject, and accept-completed with a GSS-framed AP-REP.
const (
	tokCompleted = "oRQwEqADCgEAoQsGCSqGSIb3EgECAg=="
	tokReject    = "oQcwBaADCgEC"
	tokWithAPRep = "oYG3MIG0oAMKAQChCwYJKoZIhvcSAQICooGfBIGcYIGZBgkqhkiG9xIBAgICAG+BiTCBhqADAgEFoQMCAQ+iejB4oAMCARKicQRvsWEPqC8bR9a6AmO9RkACmtWJxuKzmwp7qc/0zliTEeWaMSD79cUVwC/uIm2v+dz0nEeFl2e9QS4Dl2ZVRDTh1CJX02hYusDRAUtV+g+a22HI8uxWrXA9kx7ibdOsXCeVxAqF2JO8lEeIdmt2Eaq3"
)

func TestDecodeToken(t *testing.T) {
	tok, err := decodeToken(tokCompleted)
	if err != nil || !tok.spnego || tok.state != acceptCompleted || tok.apRep != nil {
		t.Errorf("completed: %+v %v", tok, err)
	}
	tok, err = decodeToken(tokReject)
	if err != nil || tok.state != reject {
		t.Errorf("reject: %+v %v", tok, err)
	}
	tok, err = decodeToken(tokWithAPRep)
	if err != nil || tok.state != acceptCompleted || tok.apRep == nil || tok.apRep.EncPart.EType != 18 {
		t.Errorf("AP-REP: %+v %v", tok, err)
	}
	if tok, err := decodeToken("AAAA"); err != nil || !tok.other {
		t.Errorf("unknown token: %+v %v", tok, err)
	}
	for _, bad := range []string{"", "!!!", "oQ==", "YA==", strings.Repeat("A", 200000)} {
		if _, err := decodeToken(bad); !errors.Is(err, ErrToken) {
			t.Errorf("%.20q: err = %v, want ErrToken", bad, err)
		}
	}
}

func FuzzDecodeToken(f *testing.F) {
	for _, s := range []string{tokCompleted, tokReject, tokWithAPRep, "YIGZBgkqhkiG9xIBAgICAG+BiTCBhqADAgEF", "fgMCAQU=", "b4GJMIGG"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := decodeToken(s)
		if err == nil && tok == nil {
			t.Fatal("nil token without error")
		}
	})
}

func TestResolveCCache(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "primary"), []byte("tktABC\n"), 0o600)
	for _, c := range []struct{ name, path, err string }{
		{"FILE:/tmp/x", "/tmp/x", ""},
		{"/tmp/y", "/tmp/y", ""},
		{"DIR:" + dir, filepath.Join(dir, "tktABC"), ""},
		{"DIR::" + dir + "/tktX", dir + "/tktX", ""},
		{"DIR:" + dir + "/none", "", "no primary"},
		{"KEYRING:persistent:0", "", "gokrb5 cannot read"},
		{"KCM:", "", "gokrb5 cannot read"},
	} {
		l := resolveCCache(c.name, "test")
		if l.path != c.path || (c.err == "") != (l.err == nil) || (l.err != nil && !strings.Contains(l.err.Error(), c.err)) {
			t.Errorf("%s: path %q err %v; want %q, %q", c.name, l.path, l.err, c.path, c.err)
		}
	}
	conf := filepath.Join(dir, "krb5.conf")
	os.WriteFile(conf, []byte("[libdefaults]\n  default_realm = X\n  default_ccache_name = FILE:/tmp/cc_%{uid}\n[realms]\n"), 0o644)
	if got, want := defaultCCacheName(conf), fmt.Sprintf("FILE:/tmp/cc_%d", os.Getuid()); got != want {
		t.Errorf("default_ccache_name: %q, want %q", got, want)
	}
	t.Setenv("KRB5CCNAME", "")
	if l := locateCCache("", filepath.Join(dir, "none.conf")); l.path != fmt.Sprintf("/tmp/krb5cc_%d", os.Getuid()) || l.from != "default" {
		t.Errorf("default: %+v", l)
	}
}

// TestResolvePrincipal: user names as Windows users type them map to
// realms as a domain member maps them (issue: CORP\alice became
// alice@CORP, a realm nobody has).
func TestResolvePrincipal(t *testing.T) {
	cfg := config.New()
	cfg.LibDefaults.DefaultRealm = "CORP.TEST"
	cfg.Realms = []config.Realm{{Realm: "CORP.TEST"}, {Realm: "PARTNER.EXAMPLE"}}
	cfg.DomainRealm = config.DomainRealm{".lab.example": "LAB.EXAMPLE"}
	for _, c := range []struct {
		in, user, realm string
		cached          cachedTGT
	}{
		{"alice", "alice", "CORP.TEST", cachedTGT{}},
		{"alice@OTHER.TEST", "alice", "OTHER.TEST", cachedTGT{}},
		{"alice@corp.test", "alice", "CORP.TEST", cachedTGT{}},                                                    // a DNS domain, upper-cased
		{`CORP\alice`, "alice", "CORP.TEST", cachedTGT{}},                                                         // default_realm's first label
		{`corp\bob`, "bob", "CORP.TEST", cachedTGT{}},                                                             // any case
		{`PARTNER\carol`, "carol", "PARTNER.EXAMPLE", cachedTGT{}},                                                // a [realms] name
		{`LAB\dave`, "dave", "LAB.EXAMPLE", cachedTGT{}},                                                          // a [domain_realm] value
		{`corp.test\alice`, "alice", "CORP.TEST", cachedTGT{}},                                                    // a DNS logon domain
		{`ELSE\erin`, "erin", "CORP.TEST", cachedTGT{}},                                                           // unknown: default_realm
		{`AD\alice`, "alice", "AD.CORP.EXAMPLE", cachedTGT{user: "alice", realm: "AD.CORP.EXAMPLE", valid: true}}, // kinit's realm
		{"HTTP/host@R", "HTTP/host", "R", cachedTGT{}},
	} {
		u, r, err := resolvePrincipal(c.in, cfg, c.cached)
		if err != nil || u != c.user || r != c.realm {
			t.Errorf("%q: %q %q %v, want %q %q", c.in, u, r, err, c.user, c.realm)
		}
	}
	if _, _, err := resolvePrincipal("alice", config.New(), cachedTGT{}); !errors.Is(err, ErrNoConfig) {
		t.Errorf("no default realm: %v", err)
	}
}

func TestRedacted(t *testing.T) {
	k := &Kerberos{Principal: "alice", Password: "s3cret-pw"}
	tk := &ticket{}
	for _, v := range []any{k, tk} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, "s3cret") || strings.Contains(s, "KeyValue") {
				t.Errorf("%s shows a secret: %s", verb, s)
			}
		}
	}
}
