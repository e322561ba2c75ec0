package testserver

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// The fake S3 starts, serves its ready path, refuses an unsigned request
// as S3 does (403 AccessDenied) and records it. Signed requests are tested
// in sigv4, whose signer this server exists for.
func TestS3rverRefusesUnsigned(t *testing.T) {
	s := StartS3rverForTest(t)
	resp, err := noProxyClient.Get(s.URL + "/" + S3rverBucket + "?list-type=2")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "<Code>AccessDenied</Code>") {
		t.Fatalf("unsigned request: %s %s", resp.Status, body)
	}
	ev := s.Events()
	if len(ev) != 1 || ev[0].Status != http.StatusForbidden || ev[0].Code != "AccessDenied" || ev[0].Verified {
		t.Fatalf("events %+v", ev)
	}
	t.Logf("s3rver started in %v", s.Startup)
}
