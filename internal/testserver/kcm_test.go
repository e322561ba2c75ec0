package testserver

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestKCM: MIT kinit stores a ticket in the KCM daemon through the
// krb5.conf of Config, klist finds it there, kdestroy removes it, and the
// machine's /var/run gets no socket.
func TestKCM(t *testing.T) {
	kdc := StartKDCForTest(t)
	kcm := StartKCMForTest(t)
	t.Logf("%s on %s, up in %v", kcm.Daemon, kcm.Socket, kcm.Startup)
	if fi, err := os.Stat(kcm.Socket); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v %v", kcm.Socket, fi, err)
	}
	conf, err := kcm.Config(kdc)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(conf)
	if !strings.Contains(string(data), "kcm_socket = "+kcm.Socket) || !strings.Contains(string(data), "default_ccache_name = KCM:\n") ||
		strings.Count(string(data), "default_ccache_name") != 1 {
		t.Fatalf("krb5.conf for KCM:\n%s", data)
	}
	uid := strconv.Itoa(os.Getuid())
	if kcm.External {
		if err := kcm.KdestroyAll(kdc); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := kcm.Klist(kdc, "KCM:"); err == nil {
		t.Fatalf("klist before kinit succeeded:\n%s", out)
	}
	second := "KCM:" + uid + ":second"
	for _, cc := range []string{"KCM:", second} {
		if err := kcm.Kinit(kdc, cc); err != nil {
			t.Fatal(err)
		}
		out, err := kcm.Klist(kdc, cc)
		if err != nil || !strings.Contains(out, "Default principal: "+kdc.Principal) || !strings.Contains(out, "krbtgt/"+kdc.Realm+"@"+kdc.Realm) {
			t.Fatalf("klist -c %s: %v\n%s", cc, err, out)
		}
		t.Logf("klist -c %s:\n%s", cc, out)
	}
	if err := kcm.Kdestroy(kdc, second); err != nil {
		t.Fatal(err)
	}
	if out, err := kcm.Klist(kdc, second); err == nil {
		t.Fatalf("klist after kdestroy succeeded:\n%s", out)
	}
	if kcm.External {
		return
	}
	if err := kcm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(kcm.Dir); !os.IsNotExist(err) {
		t.Fatalf("Close left %s: %v", kcm.Dir, err)
	}
}
