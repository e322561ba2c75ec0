package testserver

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// jwtParts decodes a compact JWS's header and claims, without checking
// anything.
func jwtParts(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("access token %q is not a compact JWS", token)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWS part %d: %v", i, err)
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			t.Fatalf("JWS part %d: %v", i, err)
		}
	}
	return header, claims
}

// verifyRS256 checks token's signature with the RSA key of the provider's
// JWKS that its kid names.
func verifyRS256(t *testing.T, p *OIDCProvider, token string) {
	t.Helper()
	resp, err := noProxyClient.Get(p.JWKSURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ Kty, Kid, Alg, Use, N, E, D string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	header, _ := jwtParts(t, token)
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatalf("JWKS publishes a private key (kid %s)", k.Kid)
		}
		if k.Kid != header["kid"] {
			continue
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if k.Kty != "RSA" || err1 != nil || err2 != nil {
			t.Fatalf("JWKS key %s: kty %s, %v, %v", k.Kid, k.Kty, err1, err2)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		i := strings.LastIndexByte(token, '.')
		sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(token[:i]))
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("signature does not verify with JWKS key %s: %v", k.Kid, err)
		}
		return
	}
	t.Fatalf("no key %v in the JWKS", header["kid"])
}

// checkAccessToken checks that tok is an RS256 JWT access token of p for
// sub, expiring in p.AccessTokenTTL.
func checkAccessToken(t *testing.T, p *OIDCProvider, tok *oauth2.Token, sub string) {
	t.Helper()
	header, claims := jwtParts(t, tok.AccessToken)
	if header["alg"] != "RS256" || header["typ"] != "at+jwt" || header["kid"] == nil {
		t.Errorf("JWT header %v, want alg RS256, typ at+jwt, a kid", header)
	}
	verifyRS256(t, p, tok.AccessToken)
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	if claims["iss"] != p.Issuer || claims["aud"] != p.Resource || claims["sub"] != sub {
		t.Errorf("claims %v, want iss %s, aud %s, sub %s", claims, p.Issuer, p.Resource, sub)
	}
	if ttl := time.Duration(exp-iat) * time.Second; ttl != p.AccessTokenTTL {
		t.Errorf("exp - iat = %v, want %v", ttl, p.AccessTokenTTL)
	}
	if d := time.Until(time.Unix(int64(exp), 0)); d > p.AccessTokenTTL || d < p.AccessTokenTTL-5*time.Second {
		t.Errorf("exp is in %v, want about %v", d, p.AccessTokenTTL)
	}
	if d := time.Until(tok.Expiry); d > p.AccessTokenTTL || d < p.AccessTokenTTL-5*time.Second {
		t.Errorf("expires_in: expiry in %v, want about %v", d, p.AccessTokenTTL)
	}
}

// oauthCtx is a context whose oauth2 requests use noProxyClient.
func oauthCtx(t *testing.T) context.Context {
	return context.WithValue(t.Context(), oauth2.HTTPClient, noProxyClient)
}

// refresh redeems refreshToken with the rotating client.
func refresh(t *testing.T, p *OIDCProvider, refreshToken string) (*oauth2.Token, error) {
	t.Helper()
	expired := &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Hour)}
	return p.AuthCodeConfig().TokenSource(oauthCtx(t), expired).Token()
}

// oauthErrorCode is the OAuth error code of a token endpoint error.
func oauthErrorCode(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func wantCounts(t *testing.T, what string, got OIDCTokenCounts, want string) {
	t.Helper()
	if got.String() != want {
		t.Errorf("%s: counts %s\nwant        %s", what, got, want)
	}
}

// TestOIDCProvider: client_credentials (Basic and post) and the
// authorization-code flow give RS256 JWT access tokens for the resource;
// a rotated refresh token used again is invalid_grant and takes the grant
// down; the counts say so.
func TestOIDCProvider(t *testing.T) {
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{})
	t.Logf("oidc-provider %s up in %v", p.Issuer, p.Startup)
	if p.AccessTokenTTL != OIDCDefaultAccessTokenTTL || p.Resource != OIDCDefaultResource {
		t.Errorf("defaults: TTL %v, resource %s", p.AccessTokenTTL, p.Resource)
	}
	ctx := oauthCtx(t)

	for _, c := range []struct {
		style  oauth2.AuthStyle
		scopes []string
		sub    string
	}{
		{oauth2.AuthStyleInHeader, []string{OIDCScopeAPIRead}, OIDCFleetClientID},
		{oauth2.AuthStyleInParams, []string{OIDCScopeAPIRead}, OIDCFleetPostClientID},
		{oauth2.AuthStyleInHeader, nil, OIDCFleetClientID}, // no scope, no resource: still a JWT
	} {
		tok, err := p.ClientCredentials(c.style, c.scopes...).Token(ctx)
		if err != nil {
			t.Fatalf("client_credentials as %s: %v", c.sub, err)
		}
		checkAccessToken(t, p, tok, c.sub)
		_, claims := jwtParts(t, tok.AccessToken)
		if want := strings.Join(c.scopes, " "); tok.Extra("scope") != nil && tok.Extra("scope") != want || claims["client_id"] != c.sub {
			t.Errorf("%s: scope %v, claims %v", c.sub, tok.Extra("scope"), claims)
		}
	}
	bad := p.ClientCredentials(oauth2.AuthStyleInHeader)
	bad.ClientSecret = "wrong"
	if _, err := bad.Token(ctx); oauthErrorCode(err) != "invalid_client" {
		t.Errorf("wrong secret: %v, want invalid_client", err)
	}
	wantCounts(t, "client_credentials", p.TokenRequests(),
		"success{client_credentials:3} errors{client_credentials:1} codes{invalid_client:1} revoked 0")
	if d := p.TokenRequests().Details; d["invalid_client: invalid secret provided"] != 1 {
		t.Errorf("error details %v, want invalid_client: invalid secret provided", d)
	}

	p.Reset()
	tok, err := p.LoginRefreshToken(t.Context())
	if err != nil {
		t.Fatalf("LoginRefreshToken: %v\n%s", err, p.Log())
	}
	checkAccessToken(t, p, tok, User)
	if tok.Extra("id_token") == nil || tok.RefreshToken == "" {
		t.Errorf("code exchange: id_token %v, refresh token %q", tok.Extra("id_token"), tok.RefreshToken)
	}
	wantCounts(t, "login", p.TokenRequests(), "success{authorization_code:1} errors{} codes{} revoked 0")

	before := p.TokenRequests()
	rt1 := tok.RefreshToken
	tok2, err := refresh(t, p, rt1)
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	checkAccessToken(t, p, tok2, User)
	rt2 := tok2.RefreshToken
	if rt2 == "" || rt2 == rt1 {
		t.Fatalf("refresh did not rotate: %q after %q", rt2, rt1)
	}
	// The rotated token again: invalid_grant, and the grant is revoked, so
	// its successor is refused too.
	if _, err := refresh(t, p, rt1); oauthErrorCode(err) != "invalid_grant" {
		t.Fatalf("reused refresh token: %v, want invalid_grant", err)
	}
	got := p.TokenRequests().Sub(before)
	wantCounts(t, "reuse", got, "success{refresh_token:1} errors{refresh_token:1} codes{invalid_grant:1} revoked 1")
	if got.InvalidGrant != 1 || got.Successes() != 1 || got.Failures() != 1 {
		t.Errorf("reuse: InvalidGrant %d, Successes %d, Failures %d", got.InvalidGrant, got.Successes(), got.Failures())
	}
	if _, err := refresh(t, p, rt2); oauthErrorCode(err) != "invalid_grant" {
		t.Errorf("successor of a reused refresh token: %v, want invalid_grant (grant revoked)", err)
	}
	if d := p.TokenRequests().Details; d["invalid_grant: refresh token already used"] != 1 || d["invalid_grant: refresh token not found"] != 1 {
		t.Errorf("error details %v, want one reuse and one not found", d)
	}
	wantCounts(t, "after revocation", p.TokenRequests(),
		"success{authorization_code:1 refresh_token:1} errors{refresh_token:2} codes{invalid_grant:2} revoked 1")

	// A chain of rotations from a fresh login works, each token once.
	tok, err = p.LoginRefreshToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if tok, err = refresh(t, p, tok.RefreshToken); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if got := p.TokenRequests().Success["refresh_token"]; got != 6 {
		t.Errorf("refresh_token successes %d, want 6", got)
	}
}

// TestOIDCProviderConcurrentCounts: token requests sent at once from
// goroutines and from curl processes are all counted, and two redemptions
// of one refresh token at once are told apart.
func TestOIDCProviderConcurrentCounts(t *testing.T) {
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{})
	ctx := oauthCtx(t)
	const goroutines, perGoroutine = 8, 5
	curl, curlErr := exec.LookPath("curl")
	procs := 0
	if curlErr == nil {
		procs = 6
	}
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*perGoroutine+procs)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				// Every third request has a wrong secret.
				cc := p.ClientCredentials(oauth2.AuthStyleInHeader, OIDCScopeAPIRead)
				wantErr := (g*perGoroutine+i)%3 == 0
				if wantErr {
					cc.ClientSecret = "wrong"
				}
				if _, err := cc.Token(ctx); (err != nil) != wantErr {
					errs <- fmt.Errorf("request %d/%d: %v", g, i, err)
				}
			}
		})
	}
	for range procs {
		wg.Go(func() {
			cmd := exec.Command(curl, "-sS", "--noproxy", "*", "-u", OIDCFleetClientID+":"+OIDCFleetSecret,
				"-d", "grant_type=client_credentials", p.TokenURL)
			out, err := cmd.Output()
			if err != nil || !strings.Contains(string(out), `"access_token"`) {
				errs <- fmt.Errorf("curl: %v %s", err, out)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wrong := 0
	for i := range goroutines * perGoroutine {
		if i%3 == 0 {
			wrong++
		}
	}
	ok := goroutines*perGoroutine - wrong + procs
	wantCounts(t, "concurrent", p.TokenRequests(), fmt.Sprintf(
		"success{client_credentials:%d} errors{client_credentials:%d} codes{invalid_client:%d} revoked 0", ok, wrong, wrong))
	if curlErr != nil {
		t.Logf("curl not found, only goroutines: %v", curlErr)
	}

	// One refresh token redeemed by several requests at once.
	p.Reset()
	tok, err := p.LoginRefreshToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	const racers = 4
	type result struct {
		tok *oauth2.Token
		err error
	}
	results := make(chan result, racers)
	for range racers {
		wg.Go(func() {
			tok, err := refresh(t, p, tok.RefreshToken)
			results <- result{tok, err}
		})
	}
	wg.Wait()
	close(results)
	var winners []*oauth2.Token
	for r := range results {
		if r.err == nil {
			winners = append(winners, r.tok)
		} else if oauthErrorCode(r.err) != "invalid_grant" {
			t.Errorf("concurrent refresh: %v", r.err)
		}
	}
	c := p.TokenRequests()
	t.Logf("%d concurrent redemptions of one refresh token: %d succeeded; counts %s", racers, len(winners), c)
	if len(winners) != c.Success["refresh_token"] || racers-len(winners) != c.InvalidGrant {
		t.Errorf("%d succeeded, %d invalid_grant; counts %s", len(winners), racers-len(winners), c)
	}
	// A loser that found the token already used revoked the grant: the
	// winner's new refresh token is dead too.
	if c.GrantsRevoked > 0 {
		for _, w := range winners {
			if _, err := refresh(t, p, w.RefreshToken); oauthErrorCode(err) != "invalid_grant" {
				t.Errorf("winner's refresh token after the grant was revoked: %v, want invalid_grant", err)
			}
		}
	}
}

// TestOIDCProviderOpenIDCJWKS: mod_auth_openidc verifying with the
// provider's JWKS accepts its access tokens until they expire.
func TestOIDCProviderOpenIDCJWKS(t *testing.T) {
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{AccessTokenTTL: 2 * time.Second})
	s := StartForTest(t, func() (*Server, error) { return StartOpenIDCJWKS(p.JWKSURLTLS, p.CACertPEM) })
	t.Logf("oidc-provider up in %v, apache-openidc-jwks up in %v", p.Startup, s.Startup)
	ctx := oauthCtx(t)
	cc, err := p.ClientCredentials(oauth2.AuthStyleInHeader, OIDCScopeAPIRead).Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	login, err := p.LoginRefreshToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ token, user string }{{cc.AccessToken, OIDCFleetClientID}, {login.AccessToken, User}} {
		resp, body := do(t, "GET", s.URL+PathBearer+"whoami", "", bearer(c.token))
		if resp.StatusCode != http.StatusOK || body != c.user+"\n" {
			t.Errorf("provider token of %s: %s %q\n%s", c.user, resp.Status, body, s.ErrorLog())
		}
	}

	const invalid = `Bearer realm="anyauth bearer", error="invalid_token", error_description="JWT token could not be validated"`
	deny := func(name, token string) {
		t.Helper()
		resp, body := do(t, "GET", s.URL+PathBearer+"whoami", "", bearer(token))
		if got := resp.Header.Values("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || len(got) != 1 || got[0] != invalid {
			t.Errorf("%s: %s %q, WWW-Authenticate %q; want 401 %s", name, resp.Status, body, got, invalid)
		}
	}
	deny("garbage", "a.b.c")
	deny("HS256 with the shared secret", MintHS256(map[string]any{"sub": User, "exp": time.Now().Add(time.Hour).Unix()}))
	i := strings.LastIndexByte(cc.AccessToken, '.')
	deny("tampered signature", cc.AccessToken[:i+1]+strings.Repeat("A", len(cc.AccessToken)-i-1))

	_, claims := jwtParts(t, cc.AccessToken)
	exp := time.Unix(int64(claims["exp"].(float64)), 0)
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
	deny("expired", cc.AccessToken)
}

// dpopProof is a DPoP proof JWT (RFC 9449) for a POST to htu, signed with
// key, with nonce if not "".
func dpopProof(t *testing.T, key *ecdsa.PrivateKey, htu, nonce string) string {
	t.Helper()
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]any{
		"typ": "dpop+jwt", "alg": "ES256",
		"jwk": map[string]string{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(raw[1:33]), "y": enc.EncodeToString(raw[33:])},
	})
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	claims := map[string]any{"htm": "POST", "htu": htu, "iat": time.Now().Unix(), "jti": enc.EncodeToString(jti[:])}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	payload, _ := json.Marshal(claims)
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + enc.EncodeToString(sig)
}

// TestOIDCProviderDPoPNonces: with DPoPNonces a proof without a nonce is
// answered use_dpop_nonce with a DPoP-Nonce; with it, a DPoP-bound JWT.
func TestOIDCProviderDPoPNonces(t *testing.T) {
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{DPoPNonces: true})
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	post := func(nonce string) (*http.Response, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", p.TokenURL, strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(OIDCFleetClientID, OIDCFleetSecret)
		req.Header.Set("DPoP", dpopProof(t, key, p.TokenURL, nonce))
		resp, err := noProxyClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		data, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(data, &body); err != nil {
			t.Fatalf("%s %q", resp.Status, data)
		}
		return resp, body
	}
	resp, body := post("")
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("without nonce: %s %v, DPoP-Nonce %q", resp.Status, body, nonce)
	}
	resp, body = post(nonce)
	if resp.StatusCode != http.StatusOK || body["token_type"] != "DPoP" {
		t.Fatalf("with nonce: %s %v", resp.Status, body)
	}
	_, claims := jwtParts(t, body["access_token"].(string))
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] == nil {
		t.Errorf("DPoP token without cnf.jkt: %v", claims)
	}
	wantCounts(t, "dpop", p.TokenRequests(),
		"success{client_credentials:1} errors{client_credentials:1} codes{use_dpop_nonce:1} revoked 0")
}

// TestOIDCProviderScopes: the client-credentials clients get the scopes
// they ask for, OIDCScopeAPIRead alone or with OIDCScopeAPIWrite, in the
// token response and in the JWT's scope claim; the rotating client may
// not ask for OIDCScopeAPIWrite.
func TestOIDCProviderScopes(t *testing.T) {
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{})
	ctx := oauthCtx(t)
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		for _, scopes := range [][]string{
			{OIDCScopeAPIRead},
			{OIDCScopeAPIRead, OIDCScopeAPIWrite},
			{OIDCScopeAPIWrite},
		} {
			cc := p.ClientCredentials(style, scopes...)
			tok, err := cc.Token(ctx)
			if err != nil {
				t.Fatalf("%s asking for %q: %v", cc.ClientID, scopes, err)
			}
			checkAccessToken(t, p, tok, cc.ClientID)
			_, claims := jwtParts(t, tok.AccessToken)
			want := strings.Join(scopes, " ")
			if claims["scope"] != want || tok.Extra("scope") != want {
				t.Errorf("%s asking for %q: JWT scope %v, response scope %v; want %q", cc.ClientID, scopes, claims["scope"], tok.Extra("scope"), want)
			}
		}
	}

	// The rotating client: OIDCScopeAPIRead as before, OIDCScopeAPIWrite
	// refused at the authorization endpoint.
	tok, err := p.LoginRefreshToken(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, claims := jwtParts(t, tok.AccessToken); claims["scope"] != OIDCScopeAPIRead {
		t.Errorf("rotating client's access token scope %v, want %s", claims["scope"], OIDCScopeAPIRead)
	}
	_, _, err = p.AuthorizationCode(t.Context(), oauth2.SetAuthURLParam("scope", "openid "+OIDCScopeAPIRead+" "+OIDCScopeAPIWrite))
	if err == nil || !strings.Contains(err.Error(), "invalid_scope") {
		t.Errorf("rotating client asking for %s: %v, want invalid_scope", OIDCScopeAPIWrite, err)
	}
	t.Logf("rotating client asking for %s: %v", OIDCScopeAPIWrite, err)
}
