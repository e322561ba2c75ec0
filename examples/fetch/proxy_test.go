package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -proxy and -proxy-user through the real Squid (Basic and Digest
// ports), to an http and an https Apache.
func TestFetchThroughSquid(t *testing.T) {
	sq := sharedSquid(t)
	plain := sharedApache(t)
	secure := sharedApacheTLS(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, secure.CACertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	good := testserver.User + ":" + testserver.Password
	for _, port := range []string{testserver.SquidBasic, testserver.SquidDigest} {
		proxy := sq.URL(port, nil).String()
		for _, target := range []string{plain.URL + "/index.txt", secure.URL + "/index.txt"} {
			var out, errOut bytes.Buffer
			args := []string{"-v", "-proxy", proxy, "-proxy-user", good, "-cacert", ca, "-n", "2", target}
			if code := run(args, &out, &errOut); code != 0 || out.String() != testserver.IndexContent("/") {
				t.Fatalf("%s via %s: exit %d, out %q\n%s", target, port, code, out.String(), errOut.String())
			}
			trace := errOut.String()
			if strings.HasPrefix(target, "https") {
				if !strings.Contains(trace, "* CONNECT n=1") || !strings.Contains(trace, "status=407") || !strings.Contains(trace, "status=200") {
					t.Errorf("%s: trace lacks the CONNECTs:\n%s", port, trace)
				}
			}
			out.Reset()
			errOut.Reset()
			args = []string{"-proxy", proxy, "-proxy-user", testserver.User + ":wrong", "-cacert", ca, target}
			if code := run(args, &out, &errOut); code != 1 {
				t.Errorf("%s via %s with a wrong proxy password: exit %d, want 1\n%s", target, port, code, errOut.String())
			}
		}
	}
}
