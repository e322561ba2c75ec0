package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRefreshVisible(t *testing.T) {
	var out bytes.Buffer
	if code := run(nil, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	for _, want := range []string{
		"client: fetched a token (no token yet)",
		"resource server: token #1 revoked early",
		"client: fetched a token (the server refused the token (invalid_token))",
		"request 4: 200 OK report 4 (with token #2)",
		"summary: 6 requests, 0 failed, 2 token fetches, 8 round trips",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// 32 requests at a time: the cold start and the revocation cost one
// token fetch each.
func TestParallelRefreshIsSingleFlight(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-n", "64", "-parallel", "32", "-revoke-every", "32"}, &out); code != 0 {
		t.Fatalf("exit %d\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "summary: 64 requests, 0 failed, 2 token fetches") {
		t.Fatalf("output:\n%s", out.String())
	}
}
