package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch with several URLs, -n and -P, against the real Apache.
func TestFetchManyParallel(t *testing.T) {
	apache := sharedApache(t)
	creds := testserver.User + ":" + testserver.Password
	var out, errOut bytes.Buffer
	url := apache.URL + testserver.PathDigest
	if code := run([]string{"-u", creds, "-n", "320", "-P", "32", url}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(errOut.String()))
	}
	m := regexp.MustCompile(`fetch: 320 requests, final statuses 320x200, (\d+) round trips`).FindStringSubmatch(errOut.String())
	if m == nil {
		t.Fatalf("summary: %s", tail(errOut.String()))
	}
	// One 401 per worker: N + 32. net/http may also resend a GET on a
	// kept-alive connection the server closed as it was reused; those
	// resends count as round trips too, so allow a few.
	if trips, _ := strconv.Atoi(m[1]); trips > 320+32+8 {
		t.Fatalf("%d round trips for 320 requests by 32 workers, want at most 352 (+8 transport resends)", trips)
	}
	t.Log(strings.TrimSpace(tail(errOut.String())))

	// Several URLs, the list twice, in order; one fails: exit 1.
	out.Reset()
	errOut.Reset()
	code := run([]string{"-u", creds, "-n", "2", apache.URL + testserver.PathBasic, apache.URL + testserver.PathDigest, apache.URL + "/nothing-here"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "fetch: 6 requests, final statuses 4x200 2x404") {
		t.Fatalf("exit %d\n%s", code, tail(errOut.String()))
	}
	if !strings.Contains(out.String(), testserver.IndexContent(testserver.PathBasic)) || !strings.Contains(out.String(), testserver.IndexContent(testserver.PathDigest)) {
		t.Fatalf("bodies: %q", out.String())
	}
}

// A URL's user info is taken as -u for its origin: net/http would send it
// as Basic before the Transport could answer Digest.
func TestFetchURLUserinfo(t *testing.T) {
	apache := sharedApache(t)
	withUser := strings.Replace(apache.URL, "http://", "http://"+testserver.User+":"+strings.ReplaceAll(testserver.Password, " ", "%20")+"@", 1)
	var out, errOut bytes.Buffer
	if code := run([]string{"-v", withUser + testserver.PathDigest}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(errOut.String()))
	}
	if strings.Contains(errOut.String(), testserver.Password) || strings.Contains(errOut.String(), "%20") {
		t.Fatal("the password from the URL was printed")
	}
	if !strings.Contains(errOut.String(), "chosen scheme=Digest") {
		t.Fatalf("trace: %s", tail(errOut.String()))
	}
}

// A piped body over the 1 MiB replay buffer (-d @FIFO, as -d @/dev/stdin)
// waits behind Expect: 100-continue for Apache's 401, then goes with the
// answer.
func TestFetchPipedBodyOverBuffer(t *testing.T) {
	apache := sharedApache(t)
	fifo := filepath.Join(t.TempDir(), "stdin")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3<<20/16) // 3 MiB
	go func() {
		f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		f.Write(payload)
		f.Close()
	}()
	var out, errOut bytes.Buffer
	args := []string{"-u", testserver.User + ":" + testserver.Password, "-d", "@" + fifo, apache.URL + testserver.PathDigest + "echo"}
	if code := run(args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\n%s", code, tail(errOut.String()))
	}
	if want := testserver.EchoReply(payload); !strings.Contains(out.String(), want) {
		t.Fatalf("echo %q, want %q", out.String(), want)
	}
}

func tail(s string) string {
	if len(s) > 2000 {
		return fmt.Sprintf("...%s", s[len(s)-2000:])
	}
	return s
}
