package anyauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// oidc-provider with DPoP server nonces, started once per test binary.
var dpopProvider struct {
	once sync.Once
	p    *testserver.OIDCProvider
	err  error
}

func sharedDPoPProvider(t *testing.T) *testserver.OIDCProvider {
	t.Helper()
	dpopProvider.once.Do(func() {
		dpopProvider.p, dpopProvider.err = testserver.StartOIDCProvider(testserver.OIDCProviderOptions{DPoPNonces: true})
	})
	if err := dpopProvider.err; err != nil {
		if testserver.InCI() || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("oidc-provider: %v", err)
		}
		t.Skipf("oidc-provider (node, npm) not installed (make test installs it): %v", err)
	}
	return dpopProvider.p
}

// jwtClaims decodes a JWT's payload without checking it.
func jwtClaims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err != nil || json.Unmarshal(data, &claims) != nil {
		t.Fatalf("JWT payload does not decode")
	}
	return claims
}

// TestDPoPTokenFromOIDCProvider: with each key type, the first token
// request meets oidc-provider's use_dpop_nonce and succeeds on its retry,
// and the token is bound (cnf.jkt) to the key's thumbprint.
func TestDPoPTokenFromOIDCProvider(t *testing.T) {
	p := sharedDPoPProvider(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for _, tc := range []struct {
		name string
		key  crypto.Signer
	}{{"ES256", ec}, {"EdDSA", ed}, {"RS256", rk}} {
		t.Run(tc.name, func(t *testing.T) {
			d := schemes.NewDPoPClientCredentials(tc.key, p.ClientCredentials(oauth2.AuthStyleInHeader))
			before := p.TokenRequests()
			tok, err := d.Fetch(context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient()))
			counts := p.TokenRequests().Sub(before)
			if err != nil {
				t.Fatalf("%v (token endpoint: %s)", err, counts)
			}
			jkt, _ := d.Thumbprint()
			cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any)
			t.Logf("token endpoint: %s; token_type %s, cnf.jkt matches: %v", counts, tok.TokenType, cnf["jkt"] == jkt)
			if tok.TokenType != "DPoP" || cnf["jkt"] != jkt {
				t.Errorf("token_type %q, cnf.jkt %v; want DPoP and %s", tok.TokenType, cnf["jkt"], jkt)
			}
			if counts.ErrorCodes["use_dpop_nonce"] > 1 || counts.Success["client_credentials"] != 1 {
				t.Errorf("token endpoint answered %s; want at most one use_dpop_nonce, then one token", counts)
			}
		})
	}
}
