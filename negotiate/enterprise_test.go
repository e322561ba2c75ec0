package negotiate

import (
	"context"
	"errors"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/jcmturner/gokrb5/v8/config"
)

// An enterprise name is resolved by a real Active Directory KDC (Samba
// 4.17): alice@CORP (the NetBIOS logon domain) and alice@corp.test (the
// UPN suffix) are alice@CORP.TEST; a wrong password is a refused login.
// enterpriseRealm asks only when krb5.conf's rules cannot name the realm.
func TestEnterpriseNameAgainstAD(t *testing.T) {
	ad := testserver.StartSambaADForTest(t)
	cfg, err := config.Load(ad.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"alice@CORP", "alice@corp.test"} {
		user, realm, err := canonicalPrincipal(ctx, cfg, testserver.ADRealm, name, testserver.ADPassword)
		if err != nil || user != testserver.ADUser || realm != testserver.ADRealm {
			t.Fatalf("%s: %q %q %v, want alice CORP.TEST", name, user, realm, err)
		}
	}
	if _, _, err := canonicalPrincipal(ctx, cfg, testserver.ADRealm, "alice@CORP", "wrong"); !errors.Is(err, ErrLogin) {
		t.Fatalf("wrong password: %v, want ErrLogin", err)
	}
	// The rules name CORP (default_realm's first label): the KDC is not
	// asked. An unknown domain: the KDC is asked, cannot say, and the
	// default realm's guess stands.
	if u, r := enterpriseRealm(ctx, `CORP\alice`, "alice", testserver.ADRealm, testserver.ADPassword, cfg, cachedTGT{}); u != "alice" || r != testserver.ADRealm {
		t.Fatalf("CORP\\alice: %q %q", u, r)
	}
	if u, r := enterpriseRealm(ctx, `NOSUCH\alice`, "alice", testserver.ADRealm, testserver.ADPassword, cfg, cachedTGT{}); u != "alice" || r != testserver.ADRealm {
		t.Fatalf("NOSUCH\\alice: %q %q", u, r)
	}
}
