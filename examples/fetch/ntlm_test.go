package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -ntlm against the real NTLM Apache (gss-ntlmssp checks the
// password), and through Squid's NTLM port.
func TestFetchNTLM(t *testing.T) {
	srv := sharedNTLMApache(t)
	url := srv.URL + testserver.PathNTLM + testserver.WhoamiPath
	user := testserver.NTLMDomain + `\` + testserver.User
	var out, errOut bytes.Buffer
	if code := run([]string{"-ntlm", "-u", user + ":" + testserver.Password, "-n", "3", url}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut.String())
	}
	if got := strings.TrimSpace(out.String()); got != user {
		t.Fatalf("server says %q, want %q", got, user)
	}
	// 3 requests: bare + two legs, then the authenticated connection.
	if !strings.Contains(errOut.String(), "3 requests, final statuses 3x200, 5 round trips") {
		t.Errorf("summary: %s", errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"-ntlm", "-u", user + ":wrong", url}, &out, &errOut); code != 1 {
		t.Errorf("wrong password: exit %d, want 1\n%s", code, errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{url}, &out, &errOut); code != 1 {
		t.Errorf("without -ntlm: exit %d, want 1 (the 401)\n%s", code, errOut.String())
	}
}

func TestFetchNTLMProxy(t *testing.T) {
	sq := sharedSquid(t)
	plain := sharedApache(t)
	var out, errOut bytes.Buffer
	args := []string{"-ntlm", "-proxy", sq.URL(testserver.SquidNTLM, nil).String(), "-proxy-user", `WORKGROUP\alice:any`, "-n", "2", plain.URL + "/index.txt"}
	if code := run(args, &out, &errOut); code != 0 || out.String() != testserver.IndexContent("/") {
		t.Fatalf("exit %d, out %q\n%s", code, out.String(), errOut.String())
	}
}
