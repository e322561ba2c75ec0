package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -oauth1 against oauthlib's OAuth 1.0 verifier: HMAC-SHA1 by
// default, RSA-SHA256 with a PKCS #1 key file, PLAINTEXT over https;
// -oauth1-preemptive saves the challenge; no secret in the trace.
func TestFetchOAuth1AgainstOAuthlib(t *testing.T) {
	v := testserver.StartOAuth1VerifierForTest(t)
	client := "-oauth1=" + testserver.OAuth1ConsumerKey + ":" + testserver.OAuth1ConsumerSecret
	token := "-oauth1-token=" + testserver.OAuth1Token + ":" + testserver.OAuth1TokenSecret
	pkcs1 := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(pkcs1, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(v.RSAKey)}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, v.CACertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		args   []string
		url    string
		method string
		trips  int
	}{
		{"HMAC-SHA1", []string{client, token, "-n", "3"}, v.URL + "/a?x=1", "HMAC-SHA1", 4},
		{"preemptive", []string{client, token, "-n", "3", "-oauth1-preemptive"}, v.URL + "/a?x=1", "HMAC-SHA1", 3},
		{"RSA-SHA256", []string{client, token, "-oauth1-method", "rsa-sha256", "-oauth1-key", pkcs1}, v.URL + "/r", "RSA-SHA256", 2},
		{"RSA-SHA1 PKCS8", []string{"-oauth1=" + testserver.OAuth1ConsumerKey, token, "-oauth1-method", "RSA-SHA1", "-oauth1-key", v.RSAKeyFile}, v.URL + "/r", "RSA-SHA1", 2},
		{"PLAINTEXT https", []string{client, token, "-oauth1-method", "PLAINTEXT", "-cacert", ca}, v.TLSURL + "/p", "PLAINTEXT", 2},
		{"body hash", []string{client, token, "-oauth1-method", "HMAC-SHA256", "-oauth1-body-hash", "-d", `{"a":1}`, "-H", "Content-Type: application/json"}, v.URL + testserver.OAuth1PathBodyHash + "j", "HMAC-SHA256", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := len(v.Events())
			var out, errOut bytes.Buffer
			args := append(append([]string{"-v"}, c.args...), c.url)
			if code := run(args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d, out %q\n%s", code, out.String(), errOut.String())
			}
			var r testserver.OAuth1Reply
			last := strings.TrimSpace(out.String())
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			if err := json.Unmarshal([]byte(last), &r); err != nil || !r.Verified || r.SignatureMethod != c.method {
				t.Fatalf("reply %q (%v)", last, err)
			}
			if n := len(v.Events()) - before; n != c.trips {
				t.Fatalf("%d round trips, want %d", n, c.trips)
			}
			for _, secret := range []string{testserver.OAuth1ConsumerSecret, testserver.OAuth1TokenSecret, "consumer%20secret"} {
				if strings.Contains(errOut.String(), secret) {
					t.Fatalf("the trace shows a secret:\n%s", errOut.String())
				}
			}
		})
	}
	for _, bad := range [][]string{
		{"-oauth1-token", "t:s", v.URL},
		{client, "-oauth1-method", "RSA-SHA1", v.URL},
		{client, "-oauth1-key", pkcs1, v.URL},
		{client, "-oauth1-method", "HMAC-MD5", v.URL},
		{"-oauth1", "keyonly", v.URL},
	} {
		var out, errOut bytes.Buffer
		if code := run(bad, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "oauth1") {
			t.Errorf("%q: exit %d, %s", bad, code, errOut.String())
		}
	}
}
