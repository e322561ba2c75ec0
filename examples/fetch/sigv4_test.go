package main

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -aws-sigv4 against the fake S3 that verifies signatures: -T
// uploads a file (its SHA-256 signed), the object comes back, the bucket
// lists with a query; a wrong secret is refused (exit 1), and -u is not
// offered as Basic credentials. No secret in the -v trace.
func TestFetchSigV4AgainstS3rver(t *testing.T) {
	s := testserver.StartS3rverForTest(t)
	dir := t.TempDir()
	data := make([]byte, 300<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "in.bin")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	sig := []string{"-aws-sigv4", "aws:amz:" + testserver.S3rverRegion + ":s3", "-u", testserver.S3rverAccessKeyID + ":" + testserver.S3rverSecretAccessKey}
	bucket := s.URL + "/" + testserver.S3rverBucket

	fetchOK := func(args ...string) (string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(append(append([]string{"-v"}, sig...), args...), &out, &errOut); code != 0 {
			t.Fatalf("fetch %v: exit %d\n%s", args, code, errOut.String())
		}
		if strings.Contains(errOut.String(), testserver.S3rverSecretAccessKey+"\"") || strings.Contains(errOut.String(), "Basic ") {
			t.Fatalf("the trace shows a secret or a Basic answer:\n%s", errOut.String())
		}
		return out.String(), errOut.String()
	}
	before := len(s.Events())
	fetchOK("-T", in, bucket+"/fetch/in.bin")
	out := filepath.Join(dir, "out.bin")
	fetchOK("-o", out, bucket+"/fetch/in.bin")
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the object came back different (%v)", err)
	}
	list, _ := fetchOK(bucket + "?list-type=2&prefix=fetch/")
	if !strings.Contains(list, "<Key>fetch/in.bin</Key>") {
		t.Fatalf("listing: %s", list)
	}
	ev := s.Events()[before:]
	if len(ev) != 3 || !ev[0].Verified || ev[0].Payload != "signed" || ev[0].BodyLength != int64(len(data)) {
		t.Fatalf("the fake S3 saw %+v, want 3 verified requests, the first with the file's hash", ev)
	}

	var stdout, stderr bytes.Buffer
	wrong := []string{"-aws-sigv4", "aws:amz:" + testserver.S3rverRegion + ":s3", "-u", testserver.S3rverAccessKeyID + ":not-the-secret", bucket + "?list-type=2"}
	if code := run(wrong, &stdout, &stderr); code != 1 || !strings.Contains(stdout.String(), "SignatureDoesNotMatch") {
		t.Fatalf("a wrong secret: exit %d, %s\n%s", code, stdout.String(), stderr.String())
	}

	for _, bad := range [][]string{
		{"-aws-sigv4", "aws:amz:us-east-1", "-u", "A:B", bucket},
		{"-aws-sigv4", "aws:amz:us-east-1:s3", bucket},
		{"-aws-sigv4", "aws:amz:us-east-1:s3", "-u", "A:B", "-ntlm", bucket},
	} {
		if code := run(bad, &stdout, &stderr); code != 2 {
			t.Errorf("fetch %v: exit %d, want 2 (usage)", bad, code)
		}
	}
}
