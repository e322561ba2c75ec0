package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -dpop with a token URL, with -oauth2-issuer-allow (discovery),
// with a PEM key, and discovery for a Bearer location, against
// oidc-provider and the DPoP resource server.
func TestFetchDPoPAndDiscovery(t *testing.T) {
	p, rs := testserver.StartDPoPStackForTest(t, testserver.OIDCProviderOptions{DPoPNonces: true}, testserver.DPoPResourceOptions{})
	client := testserver.OIDCFleetClientID + ":" + testserver.OIDCFleetSecret
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "dpop.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"-dpop with a token URL", []string{"-dpop", "-oauth2-token-url", p.TokenURL, "-oauth2-client", client, rs.URL + testserver.PathDPoP + "x"}, `"jkt"`},
		{"-dpop-key", []string{"-dpop-key", keyFile, "-oauth2-token-url", p.TokenURL, "-oauth2-client", client, rs.URL + testserver.PathDPoP + "x"}, `"jkt"`},
		{"-dpop with discovery", []string{"-dpop", "-oauth2-issuer-allow", p.Issuer, "-oauth2-client", client, rs.URL + testserver.PathDPoP + "x"}, `"jkt"`},
		{"Bearer with discovery", []string{"-oauth2-issuer-allow", p.Issuer, "-oauth2-client", client, rs.URL + testserver.PathBearer + "x"}, `"client_id"`},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-s"}, tc.args...), &out, &errOut)
		t.Logf("%s: exit %d, %s", tc.name, code, strings.TrimSpace(out.String()))
		if code != 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, out %q\n%s", tc.name, code, out.String(), errOut.String())
		}
		if strings.Contains(errOut.String(), testserver.OIDCFleetSecret) {
			t.Errorf("%s: the client secret was printed", tc.name)
		}
	}
	// Discovery refuses an issuer that is not allowed, and says so.
	var out, errOut bytes.Buffer
	code := run([]string{"-s", "-oauth2-issuer-allow", "https://as.other.example", "-oauth2-client", client, rs.URL + testserver.PathBearer + "x"}, &out, &errOut)
	if code == 0 || !strings.Contains(errOut.String(), "Discovery.Issuers") {
		t.Errorf("issuer not allowed: exit %d, stderr %q", code, errOut.String())
	}
}
