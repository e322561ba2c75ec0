package anyauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// oidc-provider with DPoP server nonces, and the DPoP resource server
// (Auth0's express-oauth2-jwt-bearer with a nonce rotating every 25
// requests) whose tokens it issues; started once per test binary.
var dpopStack struct {
	once sync.Once
	p    *testserver.OIDCProvider
	rs   *testserver.DPoPResource
	err  error
}

const dpopNonceEvery = 25

func sharedDPoPStack(t *testing.T) (*testserver.OIDCProvider, *testserver.DPoPResource) {
	t.Helper()
	dpopStack.once.Do(func() {
		dpopStack.p, dpopStack.rs, dpopStack.err = testserver.StartDPoPStack(
			testserver.OIDCProviderOptions{DPoPNonces: true}, testserver.DPoPResourceOptions{NonceEvery: dpopNonceEvery})
	})
	if err := dpopStack.err; err != nil {
		if testserver.InCI() || !errors.Is(err, testserver.ErrNotInstalled) {
			t.Fatalf("oidc-provider and the DPoP resource server: %v", err)
		}
		t.Skipf("oidc-provider or the DPoP resource server (node, npm) not installed (make test installs them): %v", err)
	}
	return dpopStack.p, dpopStack.rs
}

func closeDPoPStack() {
	if dpopStack.rs != nil {
		dpopStack.rs.Close()
	}
	if dpopStack.p != nil {
		dpopStack.p.Close()
	}
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
	p, _ := sharedDPoPStack(t)
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

// proofChecker is a Base that counts requests and fails any that carries
// "Authorization: DPoP" without a DPoP proof, or a DPoP proof seen before.
type proofChecker struct {
	base   http.RoundTripper
	mu     sync.Mutex
	proofs map[string]bool
	bad    []string
	trips  int
}

func (c *proofChecker) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.trips++
	auth, proof := req.Header.Get("Authorization"), req.Header.Get("DPoP")
	switch {
	case strings.HasPrefix(auth, "Bearer ") && proof != "":
		c.bad = append(c.bad, "a Bearer token with a proof")
	case strings.HasPrefix(auth, "DPoP ") && proof == "":
		c.bad = append(c.bad, "a DPoP token without a proof")
	case proof != "" && c.proofs[proof]:
		c.bad = append(c.bad, "a proof sent twice")
	}
	if proof != "" {
		c.proofs[proof] = true
	}
	c.mu.Unlock()
	return c.base.RoundTrip(req)
}

func newProofChecker() *proofChecker {
	return &proofChecker{base: http.DefaultTransport, proofs: map[string]bool{}}
}

func dpopGet(t *testing.T, tr http.RoundTripper, url string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestDPoPAgainstResourceServer: against oidc-provider and a resource
// server that enforces DPoP with its own rotating nonces: the first
// request meets use_dpop_nonce and succeeds on the retry; 100 sequential
// requests cost 100 round trips plus at most one per rotation; 32
// goroutines x 10 requests all succeed with no jti repeated; every DPoP
// token went with a new proof.
func TestDPoPAgainstResourceServer(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check := newProofChecker()
	d := schemes.NewDPoPClientCredentials(key, p.ClientCredentials(oauth2.AuthStyleInHeader), rs.URL)
	tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
	url := rs.URL + testserver.PathDPoP + "x"

	before := rs.Counts()
	tokensBefore := p.TokenRequests()
	if st, body := dpopGet(t, tr, url); st != 200 {
		t.Fatalf("first request: %d %s", st, body)
	}
	first := rs.Counts().Sub(before)
	t.Logf("first request: resource server %v; token endpoint %s", first.Outcomes, p.TokenRequests().Sub(tokensBefore))
	if first.Outcomes[testserver.DPoPUseNonce] != 1 || first.Outcomes[testserver.DPoPOK] != 1 {
		t.Errorf("first request: %v, want one use_dpop_nonce then ok", first.Outcomes)
	}

	before = rs.Counts()
	for range 100 {
		if st, body := dpopGet(t, tr, url); st != 200 {
			t.Fatalf("%d %s", st, body)
		}
	}
	seq := rs.Counts().Sub(before)
	trips := 0
	for _, n := range seq.Outcomes {
		trips += n
	}
	t.Logf("100 sequential requests: %d round trips, %d nonce rotations, outcomes %v", trips, seq.NonceRotations, seq.Outcomes)
	if trips > 101+seq.NonceRotations {
		t.Errorf("%d round trips, want at most 101 + %d rotations", trips, seq.NonceRotations)
	}

	before = rs.Counts()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 32 {
		wg.Go(func() {
			for range 10 {
				req, _ := http.NewRequest("GET", url, nil)
				resp, err := tr.RoundTrip(req)
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	wg.Wait()
	par := rs.Counts().Sub(before)
	t.Logf("32 goroutines x 10: %d failed; outcomes %v, %d rotations, %d distinct jti, %d repeated", failed.Load(), par.Outcomes, par.NonceRotations, par.DistinctJTIs, par.RepeatedJTIs)
	if failed.Load() != 0 || par.RepeatedJTIs != 0 || par.Outcomes[testserver.DPoPOK] != 320 {
		t.Errorf("%d failed, %d repeated jti, %d ok; want 0, 0, 320", failed.Load(), par.RepeatedJTIs, par.Outcomes[testserver.DPoPOK])
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if len(check.bad) > 0 {
		t.Errorf("sent %d bad requests, the first: %s", len(check.bad), check.bad[0])
	}
	if f := p.TokenRequests().Sub(tokensBefore).Success["client_credentials"]; f != 1 {
		t.Errorf("%d tokens fetched, want 1", f)
	}
}

// TestDPoPStolenTokenRefused: the token alone, sent as Bearer, without a
// proof, or with a proof of another key, is refused by the resource
// server.
func TestDPoPStolenTokenRefused(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := schemes.NewDPoPClientCredentials(key, p.ClientCredentials(oauth2.AuthStyleInHeader), rs.URL)
	tok, err := d.Fetch(context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient()))
	if err != nil {
		t.Fatal(err)
	}
	url := rs.URL + testserver.PathDPoP + "x"
	thief, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	stolen := schemes.NewDPoP(thief, func(context.Context) (*oauth2.Token, error) { return tok, nil }, rs.URL)
	for name, rt := range map[string]http.RoundTripper{
		"as Bearer":          headerRT{"Authorization": "Bearer " + tok.AccessToken},
		"without a proof":    headerRT{"Authorization": "DPoP " + tok.AccessToken},
		"with another's key": &anyauth.Transport{Schemes: []anyauth.Scheme{stolen}},
	} {
		st, body := dpopGet(t, rt, url)
		t.Logf("stolen token %s: %d %s", name, st, strings.TrimSpace(body))
		if st != 401 {
			t.Errorf("stolen token %s: %d, want 401", name, st)
		}
	}
}

// headerRT sends requests with fixed headers.
type headerRT map[string]string

func (h headerRT) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	for k, v := range h {
		req.Header.Set(k, v)
	}
	return http.DefaultTransport.RoundTrip(req)
}

// discoveryCounter counts the requests of discovery by path.
type discoveryCounter struct {
	mu    sync.Mutex
	paths map[string]int
}

func (c *discoveryCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.paths[req.URL.Path]++
	c.mu.Unlock()
	return http.DefaultTransport.RoundTrip(req)
}

// TestDiscoveryAgainstOIDCProvider: a client that knows only the resource
// URL, its client ID and secret and the allowed issuer gets its 200 from
// the DPoP resource server (as DPoP) and from its Bearer location (as
// Bearer); a second request fetches no metadata; metadata naming another
// resource is refused.
func TestDiscoveryAgainstOIDCProvider(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	for _, tc := range []struct {
		name string
		path string
		dpop bool
	}{{"DPoP", testserver.PathDPoP, true}, {"Bearer", testserver.PathBearer, false}} {
		t.Run(tc.name, func(t *testing.T) {
			counter := &discoveryCounter{paths: map[string]int{}}
			cc := p.ClientCredentials(oauth2.AuthStyleInHeader)
			d := &schemes.Discovery{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, Issuers: []string{p.Issuer},
				HTTPClient: &http.Client{Transport: counter}}
			if tc.dpop {
				d.DPoPKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			}
			check := newProofChecker()
			tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
			before, tokens := rs.Counts(), p.TokenRequests()
			if st, body := dpopGet(t, tr, rs.URL+tc.path+"x"); st != 200 {
				t.Fatalf("%d %s", st, body)
			}
			counts := rs.Counts().Sub(before)
			t.Logf("first request: %d round trips to the resource %v; discovery requests %v; token endpoint %s",
				check.trips, counts.Outcomes, counter.paths, p.TokenRequests().Sub(tokens))
			want := 2 // the challenge, the answer
			if tc.dpop {
				want = 3 // and the resource's nonce
			}
			if check.trips != want || counts.MetadataFetches != 1 || p.TokenRequests().Sub(tokens).Successes() != 1 {
				t.Errorf("%d round trips to the resource (want %d), %d metadata fetches (want 1)", check.trips, want, counts.MetadataFetches)
			}
			paths := len(counter.paths)
			if st, _ := dpopGet(t, tr, rs.URL+tc.path+"y"); st != 200 {
				t.Fatalf("second request: %d", st)
			}
			if after := rs.Counts().Sub(before); after.MetadataFetches != 1 || len(counter.paths) != paths {
				t.Errorf("second request fetched metadata: %d resource metadata fetches in all, discovery requests %v", after.MetadataFetches, counter.paths)
			}
		})
	}
	t.Run("wrong resource", func(t *testing.T) {
		cc := p.ClientCredentials(oauth2.AuthStyleInHeader)
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		d := &schemes.Discovery{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, Issuers: []string{p.Issuer}, DPoPKey: key}
		tokens := p.TokenRequests()
		req, _ := http.NewRequest("GET", rs.URL+testserver.PathWrongMetadata+"x", nil)
		resp, err := (&anyauth.Transport{Schemes: []anyauth.Scheme{d}}).RoundTrip(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("status %d, want an error", resp.StatusCode)
		}
		t.Logf("metadata naming %s: %v", testserver.DPoPWrongResource, err)
		if !errors.Is(err, schemes.ErrDiscoveryRefused) || p.TokenRequests().Sub(tokens).Successes()+p.TokenRequests().Sub(tokens).Failures() != 0 {
			t.Errorf("error %v, token requests %s; want ErrDiscoveryRefused and none", err, p.TokenRequests().Sub(tokens))
		}
	})
}

// TestDPoPPostReplayedWithNewProof: a POST whose first proof lacks the
// resource server's nonce is replayed, body and all, with a new proof.
func TestDPoPPostReplayedWithNewProof(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check := newProofChecker()
	d := schemes.NewDPoPClientCredentials(key, p.ClientCredentials(oauth2.AuthStyleInHeader), rs.URL)
	tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
	body := strings.Repeat("replayed body ", 1000)
	req, _ := http.NewRequest("POST", rs.URL+testserver.PathDPoP+"upload", strings.NewReader(body))
	before := rs.Counts()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var reply testserver.DPoPReply
	json.NewDecoder(resp.Body).Decode(&reply)
	sum := sha256.Sum256([]byte(body))
	counts := rs.Counts().Sub(before)
	t.Logf("POST of %d bytes: %d, outcomes %v, the server hashed %d bytes", len(body), resp.StatusCode, counts.Outcomes, reply.BodyBytes)
	if resp.StatusCode != 200 || reply.BodySHA256 != hex.EncodeToString(sum[:]) || counts.Outcomes[testserver.DPoPUseNonce] != 1 {
		t.Errorf("status %d, body hash %s, outcomes %v; want 200, the body's hash, one use_dpop_nonce", resp.StatusCode, reply.BodySHA256, counts.Outcomes)
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if len(check.bad) > 0 {
		t.Errorf("bad requests: %q", check.bad)
	}
}

// TestDPoPRefreshAgainstOIDCProvider: a user's refresh token (from a real
// authorization-code login) is redeemed with a proof: the access token is
// DPoP-bound and the resource server accepts it; the rotated refresh
// token is kept for the next renewal.
func TestDPoPRefreshAgainstOIDCProvider(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	seed, err := p.LoginRefreshToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	d := schemes.NewDPoPRefresh(key, p.AuthCodeConfig(), seed, rs.URL)
	check := newProofChecker()
	tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
	tokens := p.TokenRequests()
	st, body := dpopGet(t, tr, rs.URL+testserver.PathDPoP+"x")
	counts := p.TokenRequests().Sub(tokens)
	t.Logf("refresh with a proof: %d; token endpoint %s; reply %s", st, counts, strings.TrimSpace(body))
	jkt, _ := d.Thumbprint()
	if st != 200 || !strings.Contains(body, `"jkt":"`+jkt+`"`) || counts.Success["refresh_token"] != 1 {
		t.Errorf("status %d, body %s, token endpoint %s; want 200 with jkt %s after one refresh", st, body, counts, jkt)
	}
	check.mu.Lock()
	defer check.mu.Unlock()
	if len(check.bad) > 0 {
		t.Errorf("bad requests: %q", check.bad)
	}
}

// TestDPoPAuthorizationCodeBoundToKey: an authorization request with
// dpop_jkt (AuthCodeOption) binds the code to the key at oidc-provider:
// redeemed through the key's TokenClient it gives a DPoP token bound to
// that key, which the resource server accepts; redeemed with another
// key's proof, or with no proof, the provider refuses it (invalid_grant,
// invalid_request).
func TestDPoPAuthorizationCodeBoundToKey(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	ctx := context.Background()
	newDPoP := func() *schemes.DPoP {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		return schemes.NewDPoP(key, nil, rs.URL)
	}
	owner, thief := newDPoP(), newDPoP()
	bound := func() (string, oauth2.AuthCodeOption) {
		t.Helper()
		opt, err := owner.AuthCodeOption()
		if err != nil {
			t.Fatal(err)
		}
		code, verifier, err := p.AuthorizationCode(ctx, opt)
		if err != nil {
			t.Fatal(err)
		}
		return code, verifier
	}
	cfg := p.AuthCodeConfig()

	for _, tc := range []struct {
		name   string
		client *http.Client
		code   string // the OAuth error expected
		detail string // oidc-provider's reason, in its log
	}{
		{"another key's proof", thief.TokenClient(p.HTTPClient().Transport), "invalid_grant", "DPoP proof key thumbprint does not match dpop_jkt"},
		{"no proof", p.HTTPClient(), "invalid_grant", "missing DPoP proof JWT"},
	} {
		code, verifier := bound()
		before := p.TokenRequests()
		_, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, tc.client), code, verifier)
		var re *oauth2.RetrieveError
		counts := p.TokenRequests().Sub(before)
		t.Logf("%s: %v; token endpoint %s, details %v", tc.name, err, counts, counts.Details)
		if !errors.As(err, &re) || re.ErrorCode != tc.code {
			t.Errorf("%s: %v, want the provider's %s", tc.name, err, tc.code)
		}
		if tc.detail != "" && counts.Details[tc.code+": "+tc.detail] != 1 {
			t.Errorf("%s: refused for %v, want %q", tc.name, counts.Details, tc.detail)
		}
	}

	code, verifier := bound()
	before := p.TokenRequests()
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, owner.TokenClient(p.HTTPClient().Transport)), code, verifier)
	counts := p.TokenRequests().Sub(before)
	if err != nil {
		t.Fatalf("the owner's exchange: %v (token endpoint %s)", err, counts)
	}
	jkt, _ := owner.Thumbprint()
	cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any)
	t.Logf("the owner's exchange: token endpoint %s; token_type %s, cnf.jkt matches: %v", counts, tok.TokenType, cnf["jkt"] == jkt)
	if tok.TokenType != "DPoP" || cnf["jkt"] != jkt || counts.Success["authorization_code"] != 1 {
		t.Fatalf("token_type %q, cnf.jkt %v, token endpoint %s; want one DPoP token bound to %s", tok.TokenType, cnf["jkt"], counts, jkt)
	}
	d := schemes.NewDPoPRefresh(owner.Key, cfg, tok, rs.URL)
	if st, body := dpopGet(t, &anyauth.Transport{Schemes: []anyauth.Scheme{d}}, rs.URL+testserver.PathDPoP+"code"); st != 200 {
		t.Errorf("the resource with the code's token: %d %s", st, body)
	}
}

// TestDiscoveryScopeStepUpAgainstOIDCProvider: discovery's first token
// asks for no scope (neither the challenge nor the metadata names one);
// the location that needs api:write answers 403 insufficient_scope
// (express-oauth2-jwt-bearer's requiredScopes); discovery gets one more
// token, for api:write, from oidc-provider, and the request succeeds on
// its replay: 3 round trips (401 for a directory not seen answered, 403,
// 200), the stepped-up DPoP answer using the nonces already known. The
// next request to that location goes in one round trip.
func TestDiscoveryScopeStepUpAgainstOIDCProvider(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	for _, tc := range []struct {
		name        string
		read, write string
		dpop        bool
	}{{"DPoP", testserver.PathDPoP, testserver.PathDPoPWrite, true}, {"Bearer", testserver.PathBearer, testserver.PathBearerWrite, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cc := p.ClientCredentials(oauth2.AuthStyleInHeader)
			d := &schemes.Discovery{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, Issuers: []string{p.Issuer}}
			if tc.dpop {
				d.DPoPKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			}
			check := newProofChecker()
			tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
			if st, body := dpopGet(t, tr, rs.URL+tc.read+"x"); st != 200 {
				t.Fatalf("%s: %d %s", tc.read, st, body)
			}
			before, tokens, trips := rs.Counts(), p.TokenRequests(), check.trips
			st, body := dpopGet(t, tr, rs.URL+tc.write+"x")
			counts, tokenCounts := rs.Counts().Sub(before), p.TokenRequests().Sub(tokens)
			t.Logf("%s: %d after %d round trips %v; token endpoint %s; reply %s", tc.write, st, check.trips-trips, counts.Outcomes, tokenCounts, strings.TrimSpace(body))
			var reply testserver.DPoPReply
			_ = json.Unmarshal([]byte(body), &reply)
			if st != 200 || !slices.Contains(strings.Fields(reply.Scope), testserver.OIDCScopeAPIWrite) {
				t.Fatalf("%s: %d with scope %q, want 200 with %s", tc.write, st, reply.Scope, testserver.OIDCScopeAPIWrite)
			}
			if counts.Outcomes[testserver.DPoPInsufficientScope] != 1 || tokenCounts.Success["client_credentials"] != 1 ||
				tokenCounts.Failures() != 0 || check.trips-trips != 3 {
				t.Errorf("%d round trips, outcomes %v, token endpoint %s; want 3, one insufficient_scope and one more token at once", check.trips-trips, counts.Outcomes, tokenCounts)
			}
			trips = check.trips
			if st, body := dpopGet(t, tr, rs.URL+tc.write+"y"); st != 200 || check.trips-trips != 1 {
				t.Errorf("the next request: %d after %d round trips, want 200 after 1: %s", st, check.trips-trips, body)
			}
			check.mu.Lock()
			defer check.mu.Unlock()
			if len(check.bad) > 0 {
				t.Errorf("bad requests: %q", check.bad)
			}
		})
	}
}

// TestDiscoveryProbeAgainstExpress: a location whose challenge is
// express-oauth2-jwt-bearer's own ("Bearer realm=api", no
// resource_metadata): Discovery finds the resource's metadata at the
// well-known URLs (the path-inserted one answers 404, the root one has
// it), gets a token from oidc-provider, and the request succeeds.
func TestDiscoveryProbeAgainstExpress(t *testing.T) {
	p, rs := sharedDPoPStack(t)
	counter := &discoveryCounter{paths: map[string]int{}}
	cc := p.ClientCredentials(oauth2.AuthStyleInHeader)
	d := &schemes.Discovery{ClientID: cc.ClientID, ClientSecret: cc.ClientSecret, Issuers: []string{p.Issuer}, HTTPClient: &http.Client{Transport: counter}}
	check := newProofChecker()
	tr := &anyauth.Transport{Base: check, Schemes: []anyauth.Scheme{d}}
	before, tokens := rs.Counts(), p.TokenRequests()
	st, body := dpopGet(t, tr, rs.URL+testserver.PathBearerNative+"x")
	counts := rs.Counts().Sub(before)
	t.Logf("%d after %d round trips %v; discovery requests %v; token endpoint %s", st, check.trips, counts.Outcomes, counter.paths, p.TokenRequests().Sub(tokens))
	if st != 200 || check.trips != 2 || p.TokenRequests().Sub(tokens).Successes() != 1 || counts.MetadataFetches != 1 {
		t.Errorf("%d after %d round trips, %d metadata fetches; want 200 after 2 (401, 200), 1 metadata document, 1 token: %s", st, check.trips, counts.MetadataFetches, body)
	}
	if counter.paths[testserver.ProtectedResourceMetadataPath+strings.TrimSuffix(testserver.PathBearerNative, "/")+"/x"] != 1 {
		t.Errorf("the path-inserted URL was not asked first: %v", counter.paths)
	}
}
