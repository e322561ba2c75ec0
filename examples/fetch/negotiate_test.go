package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -negotiate after kinit, against the MIT KDC and Apache
// mod_auth_gssapi, as curl --negotiate -u : is used; then with -u's
// password instead of a ticket; then with neither, where Basic answers.
func TestFetchNegotiate(t *testing.T) {
	kdc, srv := sharedKerberos(t)
	t.Setenv("KRB5_CONFIG", kdc.Config)
	ccache := filepath.Join(t.TempDir(), "krb5cc")
	if err := kdc.Kinit(ccache); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KRB5CCNAME", "FILE:"+ccache)
	url := srv.URL + testserver.PathNegotiate + testserver.WhoamiPath

	var out, errOut bytes.Buffer
	if code := run([]string{"-negotiate", "-n", "3", url}, &out, &errOut); code != 0 {
		t.Fatalf("after kinit: exit %d\n%s", code, errOut.String())
	}
	if got := strings.TrimSpace(out.String()); got != kdc.Principal {
		t.Fatalf("server says %q, want %q", got, kdc.Principal)
	}
	if !strings.Contains(errOut.String(), "3 requests, final statuses 3x200, 4 round trips") {
		t.Errorf("summary: %s", errOut.String())
	}
	t.Logf("%s", errOut.String())

	// No ticket: the password given with -u serves Kerberos.
	t.Setenv("KRB5CCNAME", "FILE:"+filepath.Join(t.TempDir(), "none"))
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-negotiate", "-u", kdc.User + ":" + kdc.Password, url}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != kdc.Principal {
		t.Fatalf("with -u: exit %d, out %q\n%s", code, out.String(), errOut.String())
	}

	// No ticket and no password: Negotiate steps aside; on
	// /negotiate-basic/ nothing else can answer without -u either, so
	// the 401 comes back (exit 1), not an error (exit 2).
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-negotiate", srv.URL + testserver.PathNegotiateBasic + testserver.WhoamiPath}, &out, &errOut); code != 1 {
		t.Fatalf("without credentials: exit %d, want 1 (the server's 401)\n%s", code, errOut.String())
	}

	// A wrong password, Kerberos alone: the server's 401 (exit 1, not a
	// transport error), and fetch says why.
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-negotiate", "-u", kdc.User + ":wrong-" + kdc.Password, url}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "not answered: negotiate: Kerberos login refused") {
		t.Fatalf("wrong password: exit %d, want 1 with the reason\n%s", code, errOut.String())
	}
	t.Logf("wrong password: %s", errOut.String())
}
