package negotiate_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/negotiate"
)

// TestRenewal: a service ticket about to expire is fetched again (one
// TGS-REQ); a ticket-granting ticket about to expire is renewed when
// renewable, else obtained again with the password; an expired one in a
// credential cache is reported ("run kinit") and the scheme steps aside.
func TestRenewal(t *testing.T) {
	kdc, srv := gssapi(t)
	url := whoami(srv, testserver.PathNegotiate)
	k := &negotiate.Kerberos{Config: kdc.Config, Principal: kdc.User, Password: kdc.Password}
	tr := transport([]anyauth.Scheme{k}, nil)
	ok := func(what string) {
		t.Helper()
		resp, body, err := get(t, tr, url)
		wantUser(t, resp, body, err, kdc.Principal, "Negotiate")
	}
	ok("first")
	life := 10 * time.Hour // max_life of the test KDC

	tgs0, as0, krbtgt0 := kdc.TGSRequestsFor(testserver.KerberosSPN), kdc.ASRequests(), kdc.TGSRequestsFor("krbtgt/"+kdc.Realm)
	negotiate.AgeTickets(k, life-time.Minute, false, true)
	ok("service ticket near expiry")
	if n := kdc.TGSRequestsFor(testserver.KerberosSPN) - tgs0; n != 1 {
		t.Errorf("service ticket near expiry: %d TGS-REQs, want 1", n)
	}

	renewable := negotiate.TGTRenewable(k)
	negotiate.AgeTickets(k, life-time.Minute, true, true)
	ok("TGT near expiry")
	as, renewals := kdc.ASRequests()-as0, kdc.TGSRequestsFor("krbtgt/"+kdc.Realm)-krbtgt0
	t.Logf("TGT near expiry (renewable=%t): %d AS-REQ log lines, %d TGS-REQs for krbtgt", renewable, as, renewals)
	if as+renewals == 0 {
		t.Error("the TGT near expiry was neither renewed nor obtained again")
	}

	// A ccache whose TGT has expired: aged past its end, the cache file
	// unchanged, kinit is what is missing.
	cc := filepath.Join(t.TempDir(), "cc")
	if err := kdc.Kinit(cc); err != nil {
		t.Fatal(err)
	}
	kc := &negotiate.Kerberos{Config: kdc.Config, CCache: cc, IgnoreTransportCredentials: true}
	tr = transport([]anyauth.Scheme{kc}, nil)
	ok("ccache")
	negotiate.AgeTickets(kc, life+time.Hour, true, true)
	resp, _, err := get(t, tr, url)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ccache TGT aged in memory: %v %v, want the cache file read again", resp, err)
	}

	// A cache whose ticket has really expired: the scheme steps aside
	// (the server's 401 comes back) and says to run kinit.
	if err := kdc.KinitFor(cc, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	resp, _, err = get(t, tr, url)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("expired ccache: %v %v, want the 401", resp, err)
	}
	_, err = kc.Begin(context.Background(), nil, &anyauth.Attempt{Space: anyauth.ProtectionSpace{URLScheme: "http", Host: "localhost", Port: "80"}})
	if !errors.Is(err, negotiate.ErrTicketExpired) || !errors.Is(err, anyauth.ErrNoCredentials) || !strings.Contains(err.Error(), "run kinit") {
		t.Fatalf("expired ccache: Begin: %v", err)
	}
	t.Logf("expired ccache: %v", err)
}
