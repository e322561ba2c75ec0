package testserver

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	krbclient "github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/types"
)

// krbClient logs in to kdc as its user with gokrb5 (not our library), with
// the generated krb5.conf.
func krbClient(t *testing.T, kdc *KDC) *krbclient.Client {
	t.Helper()
	cfg, err := config.Load(kdc.Config)
	if err != nil {
		t.Fatalf("gokrb5 cannot load %s: %v", kdc.Config, err)
	}
	cl := krbclient.NewWithPassword(kdc.User, kdc.Realm, kdc.Password, cfg, krbclient.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		t.Fatalf("gokrb5 login as %s: %v", kdc.Principal, err)
	}
	t.Cleanup(cl.Destroy)
	return cl
}

func TestKDC(t *testing.T) {
	kdc := StartKDCForTest(t)
	t.Logf("KDC %s realm %s started in %v", kdc.Addr, kdc.Realm, kdc.Startup)
	if !strings.HasPrefix(kdc.Addr, "127.0.0.1:") {
		t.Fatalf("Addr = %q", kdc.Addr)
	}

	// The keytab holds both service principals.
	kt, err := keytab.Load(kdc.Keytab)
	if err != nil {
		t.Fatal(err)
	}
	for _, spn := range kdc.SPNs {
		found := false
		for _, e := range kt.Entries {
			if e.Principal.Realm == kdc.Realm && strings.Join(e.Principal.Components, "/") == spn {
				found = true
			}
		}
		if !found {
			t.Errorf("keytab has no %s@%s", spn, kdc.Realm)
		}
	}

	// kinit (MIT) writes a FILE ccache that gokrb5 can read.
	as0 := kdc.ASRequests()
	cc := filepath.Join(t.TempDir(), "ccache")
	if err := kdc.Kinit(cc); err != nil {
		t.Fatal(err)
	}
	if n := kdc.ASRequests() - as0; n < 1 {
		t.Errorf("kinit: %d AS-REQs logged", n)
	}
	ccache, err := credentials.LoadCCache(cc)
	if err != nil {
		t.Fatal(err)
	}
	if got := ccache.GetClientPrincipalName().PrincipalNameString() + "@" + ccache.GetClientRealm(); got != kdc.Principal {
		t.Errorf("ccache principal %q, want %q", got, kdc.Principal)
	}
	if !ccache.Contains(types.NewPrincipalName(nametype.KRB_NT_SRV_INST, "krbtgt/"+kdc.Realm)) {
		t.Error("ccache has no TGT")
	}

	// A wrong password fails.
	if err := kdc.kinitWith("wrong", filepath.Join(t.TempDir(), "bad")); err == nil {
		t.Error("kinit with a wrong password succeeded")
	}

	// gokrb5 gets a service ticket once and then serves it from its cache:
	// TGSRequests counts what reached the KDC.
	cl := krbClient(t, kdc)
	tgs0, for0 := kdc.TGSRequests(), kdc.TGSRequestsFor(KerberosSPN)
	for i := 0; i < 3; i++ {
		if _, _, err := cl.GetServiceTicket(KerberosSPN); err != nil {
			t.Fatal(err)
		}
	}
	if n := kdc.TGSRequests() - tgs0; n != 1 {
		t.Errorf("3 GetServiceTicket: %d TGS-REQs, want 1\n%s", n, kdc.Log())
	}
	if n := kdc.TGSRequestsFor(KerberosSPN) - for0; n != 1 {
		t.Errorf("TGSRequestsFor(%s) grew by %d, want 1", KerberosSPN, n)
	}
	if n := kdc.TGSRequestsFor(KerberosSPNAddr); n != 0 {
		t.Errorf("TGSRequestsFor(%s) = %d, want 0", KerberosSPNAddr, n)
	}
	// An unknown service is a TGS-REQ too (answered with an error).
	if _, _, err := cl.GetServiceTicket("HTTP/nosuch.invalid"); err == nil {
		t.Error("ticket for an unknown service")
	}
	if n := kdc.TGSRequests() - tgs0; n != 2 {
		t.Errorf("after the unknown service: %d TGS-REQs, want 2", n)
	}

	dir := kdc.Dir
	if err := kdc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after Close: %v", dir, err)
	}
	if err := kdc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
