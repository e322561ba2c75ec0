package testserver

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestOAuth1Verifier: the verifier challenges an unsigned request,
// accepts a request signed by oauthlib's own client (so it is not tuned
// to ours), refuses that request sent again (its nonce is spent), exits
// when its standard input closes, and Close removes its directory.
func TestOAuth1Verifier(t *testing.T) {
	v, err := StartOAuth1Verifier()
	if err != nil {
		if InCI() {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	defer v.Close()
	t.Logf("%s, %s and %s, up in %v", v.Python, v.URL, v.TLSURL, v.Startup)

	resp, err := http.Get(v.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `OAuth realm="test"` {
		t.Fatalf("unsigned: %s %q", resp.Status, resp.Header.Get("WWW-Authenticate"))
	}

	// oauthlib's Client signs; the Go side sends.
	script := `import sys
from oauthlib.oauth1 import Client
c = Client(sys.argv[1], client_secret=sys.argv[2], resource_owner_key=sys.argv[3], resource_owner_secret=sys.argv[4], signature_method="HMAC-SHA256", realm="test")
uri, headers, body = c.sign(sys.argv[5])
print(headers["Authorization"])`
	out, err := exec.Command(v.Python, "-c", script, OAuth1ConsumerKey, OAuth1ConsumerSecret, OAuth1Token, OAuth1TokenSecret, v.URL+"/signed?q=1").Output()
	if err != nil {
		t.Fatal(err)
	}
	auth := strings.TrimSpace(string(out))
	for i, want := range []int{200, 401} {
		req, _ := http.NewRequest("GET", v.URL+"/signed?q=1", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("oauthlib's signature, sent %d times: %s %s", i+1, resp.Status, body)
		}
	}
	ev := v.Events()
	if len(ev) != 3 || !ev[1].Verified || ev[1].SignatureMethod != "HMAC-SHA256" || !strings.HasPrefix(ev[2].Reason, "nonce reused") {
		t.Fatalf("events %+v", ev)
	}
	if a, r := v.Counts(); a != 1 || r != 2 {
		t.Fatalf("counts %d accepted, %d refused", a, r)
	}

	v.stdin.Close()
	select {
	case <-v.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the verifier outlived its standard input")
	}
	if err := v.Close(); err != nil {
		t.Logf("Close after exit: %v", err)
	}
	if _, err := os.Stat(v.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", v.Dir, err)
	}
}
