package testserver

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// proofKey signs DPoP proofs (RFC 9449 section 4.2) with one of ES256,
// EdDSA (Ed25519), RS256 or PS256; the JWS is made by hand here.
type proofKey struct {
	alg    string
	signer crypto.Signer
	jwk    map[string]string // the public key, members in no order
}

func newProofKey(t *testing.T, alg string) *proofKey {
	t.Helper()
	enc := base64.RawURLEncoding
	k := &proofKey{alg: alg}
	switch alg {
	case "ES256":
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := key.PublicKey.ECDH()
		if err != nil {
			t.Fatal(err)
		}
		raw := pub.Bytes() // 0x04 || X || Y
		k.signer = key
		k.jwk = map[string]string{"kty": "EC", "crv": "P-256", "x": enc.EncodeToString(raw[1:33]), "y": enc.EncodeToString(raw[33:])}
	case "EdDSA":
		pub, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k.signer = key
		k.jwk = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": enc.EncodeToString(pub)}
	case "RS256", "PS256":
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		k.signer = key
		k.jwk = map[string]string{"kty": "RSA", "n": enc.EncodeToString(key.N.Bytes()),
			"e": enc.EncodeToString(big.NewInt(int64(key.E)).Bytes())}
	default:
		t.Fatalf("no proof key for %s", alg)
	}
	return k
}

// thumbprint is the key's JWK SHA-256 thumbprint (RFC 7638), what a
// DPoP-bound token's cnf.jkt holds.
func (k *proofKey) thumbprint() string {
	var members []string
	switch k.jwk["kty"] {
	case "EC":
		members = []string{"crv", "kty", "x", "y"}
	case "OKP":
		members = []string{"crv", "kty", "x"}
	case "RSA":
		members = []string{"e", "kty", "n"}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + m + `":"` + k.jwk[m] + `"`)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// proof returns a DPoP proof for method and htu with a fresh jti, with
// ath for token if not "" and nonce if not "". edit, if not nil, may
// change the header and claims before signing.
func (k *proofKey) proof(t *testing.T, method, htu, token, nonce string, edit func(header, claims map[string]any)) string {
	t.Helper()
	enc := base64.RawURLEncoding
	var jti [12]byte
	_, _ = rand.Read(jti[:])
	header := map[string]any{"typ": "dpop+jwt", "alg": k.alg, "jwk": k.jwk}
	claims := map[string]any{"htm": method, "htu": htu, "iat": time.Now().Unix(), "jti": enc.EncodeToString(jti[:])}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = enc.EncodeToString(sum[:])
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if edit != nil {
		edit(header, claims)
	}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch key := k.signer.(type) {
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, key, sum[:]); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	case ed25519.PrivateKey:
		sig = ed25519.Sign(key, []byte(input))
	case *rsa.PrivateKey:
		if k.alg == "PS256" {
			sig, err = rsa.SignPSS(rand.Reader, key, crypto.SHA256, sum[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		} else {
			sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + enc.EncodeToString(sig)
}

// proofJTI is the jti of a proof.
func proofJTI(t *testing.T, proof string) string {
	t.Helper()
	_, claims := jwtParts(t, proof)
	return claims["jti"].(string)
}

// dpopToken gets a client_credentials access token for OIDCFleetClientID
// from p, bound to k when k is not nil, answering the token endpoint's
// use_dpop_nonce once. It asks for no scope: the token has none.
func dpopToken(t *testing.T, p *OIDCProvider, k *proofKey) string {
	t.Helper()
	return scopedToken(t, p, k, "")
}

// scopedToken is dpopToken asking for scope if not "".
func scopedToken(t *testing.T, p *OIDCProvider, k *proofKey, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	nonce := ""
	for attempt := 0; attempt < 2; attempt++ {
		req, _ := http.NewRequest("POST", p.TokenURL, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(OIDCFleetClientID, OIDCFleetSecret)
		if k != nil {
			req.Header.Set("DPoP", k.proof(t, "POST", p.TokenURL, "", nonce, nil))
		}
		resp, err := noProxyClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var body map[string]any
		if err := json.Unmarshal(data, &body); err != nil {
			t.Fatalf("token endpoint: %s %q", resp.Status, data)
		}
		if resp.StatusCode == http.StatusBadRequest && body["error"] == "use_dpop_nonce" && nonce == "" {
			nonce = resp.Header.Get("DPoP-Nonce")
			continue
		}
		want := "Bearer"
		if k != nil {
			want = "DPoP"
		}
		if resp.StatusCode != http.StatusOK || body["token_type"] != want {
			t.Fatalf("token endpoint: %s %v", resp.Status, body)
		}
		return body["access_token"].(string)
	}
	t.Fatal("token endpoint: use_dpop_nonce twice")
	return ""
}

// rsAnswer is a DPoP resource server's answer.
type rsAnswer struct {
	status    int
	challenge string // WWW-Authenticate
	nonce     string // DPoP-Nonce
	cache     string // Cache-Control
	reply     DPoPReply
	body      string
}

// call sends method to u with the Authorization header authz and the DPoP
// header proof, each if not "", and the body.
func call(t *testing.T, method, u, authz, proof, body string) rsAnswer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	resp, err := noProxyClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if os.Getenv("DPOP_DEBUG") != "" {
		t.Logf("%s %s -> %s | %s | nonce %s | %s", method, u, resp.Status, resp.Header.Get("WWW-Authenticate"), resp.Header.Get("DPoP-Nonce"), data)
	}
	a := rsAnswer{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"),
		nonce: resp.Header.Get("DPoP-Nonce"), cache: resp.Header.Get("Cache-Control"), body: string(data)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &a.reply); err != nil {
			t.Fatalf("%s %s: %s %q", method, u, resp.Status, data)
		}
	}
	return a
}

// wantRefusal checks that a is a refusal with status 401 whose challenge
// starts with prefix.
func wantRefusal(t *testing.T, what string, a rsAnswer, prefix string) {
	t.Helper()
	if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.challenge, prefix) {
		t.Errorf("%s: %d %q, WWW-Authenticate %q; want 401 %s…", what, a.status, a.body, a.challenge, prefix)
	}
}

// TestDPoPResource runs oidc-provider with DPoP nonces and the DPoP
// resource server (nonce rotating every 3 requests) through the RFC 9449
// and RFC 9728 cases.
func TestDPoPResource(t *testing.T) {
	p, rs := StartDPoPStackForTest(t, OIDCProviderOptions{DPoPNonces: true}, DPoPResourceOptions{NonceEvery: 3})
	t.Logf("oidc-provider started in %v, DPoP resource server in %v", p.Startup, rs.Startup)
	if rs.Resource != rs.URL || p.Resource != rs.URL {
		t.Fatalf("resource: server %q, provider %q; want %q", rs.Resource, p.Resource, rs.URL)
	}
	meta := `resource_metadata="` + rs.URL + ProtectedResourceMetadataPath + `"`
	dpopURL := rs.URL + PathDPoP + "items"

	// Protected resource metadata (RFC 9728).
	resp, err := noProxyClient.Get(rs.MetadataURL)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "max-age=300" {
		t.Fatalf("metadata: %s, Cache-Control %q, %v", resp.Status, resp.Header.Get("Cache-Control"), err)
	}
	got, _ := json.Marshal(md)
	want := `{"authorization_servers":["` + p.Issuer + `"],"bearer_methods_supported":["header"],` +
		`"dpop_bound_access_tokens_required":false,"dpop_signing_alg_values_supported":["ES256","EdDSA","RS256"],` +
		`"resource":"` + rs.URL + `"}`
	if string(got) != want {
		t.Errorf("metadata\n got %s\nwant %s", got, want)
	}

	// No credentials.
	a := call(t, "GET", dpopURL, "", "", "")
	if a.status != http.StatusUnauthorized || a.challenge != `DPoP algs="ES256 EdDSA RS256", `+meta || a.nonce != "" {
		t.Errorf("no token: %d, WWW-Authenticate %q, DPoP-Nonce %q", a.status, a.challenge, a.nonce)
	}

	key := newProofKey(t, "ES256")
	token := dpopToken(t, p, key)
	if _, claims := jwtParts(t, token); claims["cnf"].(map[string]any)["jkt"] != key.thumbprint() {
		t.Fatalf("token's cnf %v, key thumbprint %s", claims["cnf"], key.thumbprint())
	}

	// A proof without nonce gets one.
	a = call(t, "GET", dpopURL, "DPoP "+token, key.proof(t, "GET", dpopURL, token, "", nil), "")
	wantRefusal(t, "no nonce", a, `DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof", algs="ES256 EdDSA RS256", `+meta)
	nonce := a.nonce
	if nonce == "" {
		t.Fatal("use_dpop_nonce without DPoP-Nonce")
	}

	// With it: 200, and the same nonce again.
	proof := key.proof(t, "POST", dpopURL, token, nonce, nil)
	a = call(t, "POST", dpopURL+"?q=1#frag", "DPoP "+token, proof, "hello")
	wantReply := DPoPReply{Sub: OIDCFleetClientID, ClientID: OIDCFleetClientID, Scope: a.reply.Scope, JKT: key.thumbprint(),
		JTI: proofJTI(t, proof), TokenJTI: a.reply.TokenJTI, Method: "POST", Path: PathDPoP + "items",
		BodySHA256: strings.Fields(EchoReply([]byte("hello")))[0], BodyBytes: 5}
	if a.status != http.StatusOK || a.reply != wantReply || a.nonce != nonce || a.cache != "no-store" {
		t.Fatalf("with nonce: %d %q, DPoP-Nonce %q (sent %q), Cache-Control %q\nwant %+v", a.status, a.body, a.nonce, nonce, a.cache, wantReply)
	}

	// The same proof again.
	a = call(t, "POST", dpopURL, "DPoP "+token, proof, "hello")
	wantRefusal(t, "replayed proof", a, `DPoP error="invalid_dpop_proof", error_description="DPoP proof jti was already used", algs=`)

	// The token stolen: as Bearer, without proof, with a proof of another
	// key.
	wantRefusal(t, "as Bearer", call(t, "GET", dpopURL, "Bearer "+token, "", ""), `DPoP error="invalid_token", `)
	wantRefusal(t, "as Bearer with proof", call(t, "GET", dpopURL, "Bearer "+token, key.proof(t, "GET", dpopURL, token, nonce, nil), ""),
		`DPoP error="invalid_token", `)
	wantRefusal(t, "without proof", call(t, "GET", dpopURL, "DPoP "+token, "", ""), `DPoP error="invalid_token", `)
	thief := newProofKey(t, "ES256")
	a = call(t, "GET", dpopURL, "DPoP "+token, thief.proof(t, "GET", dpopURL, token, nonce, nil), "")
	wantRefusal(t, "proof of another key", a, `DPoP error="invalid_token", error_description="JWT Access Token confirmation mismatch"`)

	// Proofs that are not right.
	for _, c := range []struct {
		name string
		edit func(h, c map[string]any)
	}{
		{"htm", func(_, c map[string]any) { c["htm"] = "POST" }},
		{"htu host", func(_, c map[string]any) { c["htu"] = strings.Replace(dpopURL, "127.0.0.1", "localhost", 1) }},
		{"htu path", func(_, c map[string]any) { c["htu"] = dpopURL + "/x" }},
		{"ath", func(_, c map[string]any) { c["ath"] = "AAAA" }},
		{"no ath", func(_, c map[string]any) { delete(c, "ath") }},
		{"old iat", func(_, c map[string]any) { c["iat"] = time.Now().Add(-DPoPIatWindow - 10*time.Second).Unix() }},
		{"future iat", func(_, c map[string]any) { c["iat"] = time.Now().Add(DPoPIatWindow + 10*time.Second).Unix() }},
		{"typ", func(h, _ map[string]any) { h["typ"] = "JWT" }},
		{"no jti", func(_, c map[string]any) { delete(c, "jti") }},
	} {
		a = call(t, "GET", dpopURL, "DPoP "+token, key.proof(t, "GET", dpopURL, token, nonce, c.edit), "")
		wantRefusal(t, "proof with wrong "+c.name, a, `DPoP error="invalid_dpop_proof", `)
	}
	// htu is compared without query and with normalised percent-encoding.
	encoded := rs.URL + PathDPoP + "%69tems"
	a = call(t, "GET", encoded+"?x=%20", "DPoP "+token, key.proof(t, "GET", dpopURL, token, nonce, nil), "")
	if a.status != http.StatusOK {
		t.Errorf("htu %s for %s: %d %q %q", dpopURL, encoded, a.status, a.challenge, a.body)
	}
	if a.nonce != nonce {
		t.Fatalf("nonce rotated after 2 requests: %q", a.nonce)
	}
	a = call(t, "GET", dpopURL, "DPoP "+token, key.proof(t, "GET", dpopURL, token, nonce, nil), "")
	// That was the third accepted request: the nonce rotated.
	if a.nonce == nonce || a.nonce == "" {
		t.Fatalf("nonce did not rotate after 3 requests: %q", a.nonce)
	}
	old, nonce := nonce, a.nonce
	// The previous nonce is still good, and the current one.
	for i, n := range []string{old, nonce, nonce} {
		a = call(t, "GET", dpopURL, "DPoP "+token, key.proof(t, "GET", dpopURL, token, n, nil), "")
		if a.status != http.StatusOK {
			t.Fatalf("request %d with nonce %q: %d %q", i, n, a.status, a.challenge)
		}
	}
	// The 6th accepted: rotated again; the first nonce is now too old.
	if a.nonce == nonce {
		t.Fatal("nonce did not rotate after 6 requests")
	}
	for _, n := range []string{old, "made-up"} {
		a = call(t, "GET", dpopURL, "DPoP "+token, key.proof(t, "GET", dpopURL, token, n, nil), "")
		wantRefusal(t, "stale nonce "+n, a, `DPoP error="use_dpop_nonce", error_description="DPoP proof nonce is not the current one"`)
		if a.nonce == "" || a.nonce == old {
			t.Errorf("stale nonce: DPoP-Nonce %q", a.nonce)
		}
	}
	nonce = a.nonce

	// Other algorithms: EdDSA and RS256 are announced; PS256 is not.
	for _, alg := range []string{"EdDSA", "RS256", "PS256"} {
		k := newProofKey(t, alg)
		tok := dpopToken(t, p, k)
		a = call(t, "GET", dpopURL, "DPoP "+tok, k.proof(t, "GET", dpopURL, tok, nonce, nil), "")
		if alg == "PS256" {
			wantRefusal(t, alg, a, `DPoP error="invalid_dpop_proof", error_description="DPoP proof alg PS256 is not one of ES256 EdDSA RS256"`)
		} else if a.status != http.StatusOK || a.reply.JKT != k.thumbprint() {
			t.Errorf("%s: %d %q %+v", alg, a.status, a.challenge, a.reply)
		}
	}

	// The token in the query too.
	a = call(t, "GET", dpopURL+"?access_token="+token, "DPoP "+token, key.proof(t, "GET", dpopURL, token, nonce, nil), "")
	if a.status != http.StatusBadRequest || !strings.HasPrefix(a.challenge, `DPoP error="invalid_request", `) {
		t.Errorf("token in header and query: %d %q", a.status, a.challenge)
	}

	// A forged access token.
	i := strings.LastIndexByte(token, '.')
	forged := token[:i+1] + strings.Repeat("A", len(token)-i-1)
	a = call(t, "GET", dpopURL, "DPoP "+forged, key.proof(t, "GET", dpopURL, forged, nonce, nil), "")
	wantRefusal(t, "forged token", a, `DPoP error="invalid_token", error_description="signature verification failed"`)

	// PathBearer takes plain Bearer tokens only.
	bearerURL := rs.URL + PathBearer + "x"
	a = call(t, "GET", bearerURL, "", "", "")
	if a.status != http.StatusUnauthorized || a.challenge != "Bearer "+meta {
		t.Errorf("bearer, no token: %d %q", a.status, a.challenge)
	}
	plain := dpopToken(t, p, nil)
	a = call(t, "GET", bearerURL, "Bearer "+plain, "", "")
	if a.status != http.StatusOK || a.reply.Sub != OIDCFleetClientID || a.reply.JKT != "" || a.nonce != "" {
		t.Errorf("bearer: %d %q %+v, DPoP-Nonce %q", a.status, a.challenge, a.reply, a.nonce)
	}
	wantRefusal(t, "bound token as Bearer", call(t, "GET", bearerURL, "Bearer "+token, "", ""),
		`Bearer error="invalid_token", error_description="DPoP-bound (or otherwise sender-constrained) token presented as a Bearer token", `+meta)
	wantRefusal(t, "DPoP scheme on /bearer/", call(t, "GET", bearerURL, "DPoP "+token, key.proof(t, "GET", bearerURL, token, nonce, nil), ""),
		`Bearer error="invalid_token", `)
	// and PathDPoP refuses a plain token in every form.
	wantRefusal(t, "plain token on /dpop/", call(t, "GET", dpopURL, "Bearer "+plain, "", ""), `DPoP error="invalid_token", `)
	a = call(t, "GET", dpopURL, "DPoP "+plain, key.proof(t, "GET", dpopURL, plain, nonce, nil), "")
	wantRefusal(t, "plain token as DPoP", a, `DPoP error="invalid_token", error_description="JWT Access Token has no jkt confirmation claim"`)

	// PathWrongMetadata points to a document naming another resource.
	a = call(t, "GET", rs.URL+PathWrongMetadata+"x", "", "", "")
	if want := `DPoP algs="ES256 EdDSA RS256", resource_metadata="` + rs.WrongMetadataURL + `"`; a.challenge != want {
		t.Errorf("wrongmeta challenge %q, want %q", a.challenge, want)
	}
	resp, err = noProxyClient.Get(rs.WrongMetadataURL)
	if err != nil {
		t.Fatal(err)
	}
	md = nil
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["resource"] != DPoPWrongResource || resp.Header.Get("Cache-Control") != "max-age=300" {
		t.Errorf("wrong metadata: %v, Cache-Control %q", md, resp.Header.Get("Cache-Control"))
	}

	c := rs.Counts()
	if got, want := c.String(), "outcomes{invalid_dpop_proof:11 invalid_request:1 invalid_token:9 no_token:3 ok:9 use_dpop_nonce:3} rotations 2 metadata 1 wrong 1 jti 8/1"; got != want {
		t.Errorf("counts\n got %s\nwant %s", got, want)
	}
	if c.Paths["/bearer/ ok"] != 1 || c.Paths["/wrongmeta/ no_token"] != 1 {
		t.Errorf("counts by path: %v", c.Paths)
	}
}

// TestDPoPResourceNoNonce: without server nonces a proof needs none and no
// answer carries DPoP-Nonce; a resource with a path has its metadata at
// the RFC 9728 well-known URL with that path.
func TestDPoPResourceNoNonce(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	resource := "http://127.0.0.1:" + strconv.Itoa(port) + "/api"
	p := StartOIDCProviderForTest(t, OIDCProviderOptions{Resource: resource, AccessTokenTTL: 3 * time.Second})
	rs := StartDPoPResourceForTest(t, DPoPResourceOptions{Issuer: p.Issuer, JWKSURL: p.JWKSURL, Resource: resource, Port: port, NoNonce: true})
	if want := rs.URL + ProtectedResourceMetadataPath + "/api"; rs.MetadataURL != want {
		t.Fatalf("MetadataURL %s, want %s", rs.MetadataURL, want)
	}
	key := newProofKey(t, "EdDSA")
	token := dpopToken(t, p, key)
	u := rs.URL + PathDPoP
	for i := 0; i < 2; i++ {
		a := call(t, "DELETE", u, "DPoP "+token, key.proof(t, "DELETE", u, token, "", nil), "")
		if a.status != http.StatusOK || a.nonce != "" {
			t.Fatalf("request %d: %d %q, DPoP-Nonce %q", i, a.status, a.challenge, a.nonce)
		}
	}
	a := call(t, "GET", u, "", "", "")
	if want := `DPoP algs="ES256 EdDSA RS256", resource_metadata="` + rs.MetadataURL + `"`; a.challenge != want {
		t.Errorf("challenge %q, want %q", a.challenge, want)
	}
	resp, err := noProxyClient.Get(rs.MetadataURL)
	if err != nil {
		t.Fatal(err)
	}
	var md map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if md["resource"] != resource {
		t.Errorf("metadata at %s: %v", rs.MetadataURL, md)
	}
	if got, want := rs.Counts().String(), "outcomes{no_token:1 ok:2} rotations 0 metadata 1 wrong 0 jti 2/0"; got != want {
		t.Errorf("counts %s, want %s", got, want)
	}

	// Another issuer, another audience: the same token is refused.
	for _, o := range []DPoPResourceOptions{
		{Issuer: p.Issuer + "/other", JWKSURL: p.JWKSURL, Resource: resource},
		{Issuer: p.Issuer, JWKSURL: p.JWKSURL, Resource: resource + "/other"},
	} {
		o.NoNonce = true
		other := StartDPoPResourceForTest(t, o)
		v := other.URL + PathDPoP
		a := call(t, "GET", v, "DPoP "+token, key.proof(t, "GET", v, token, "", nil), "")
		wantRefusal(t, "issuer "+o.Issuer+", resource "+o.Resource, a, `DPoP error="invalid_token", `)
	}

	// Expired: from its exp second on.
	_, claims := jwtParts(t, token)
	time.Sleep(time.Until(time.Unix(int64(claims["exp"].(float64)), 0)) + 100*time.Millisecond)
	a = call(t, "GET", u, "DPoP "+token, key.proof(t, "GET", u, token, "", nil), "")
	wantRefusal(t, "expired", a, `DPoP error="invalid_token", error_description="'exp' claim timestamp check failed"`)
}

// oneChallenge parses a WWW-Authenticate value that is one challenge with
// auth-params only, each a quoted-string without escapes: its scheme and
// params, or ok false.
func oneChallenge(s string) (scheme string, params map[string]string, ok bool) {
	scheme, rest, _ := strings.Cut(s, " ")
	params = map[string]string{}
	for rest != "" {
		name, after, found := strings.Cut(rest, `="`)
		value, tail, closed := strings.Cut(after, `"`)
		if !found || !closed || name == "" || strings.ContainsAny(name, ` ,"`) {
			return "", nil, false
		}
		if _, dup := params[name]; dup {
			return "", nil, false
		}
		params[name] = value
		if rest = strings.TrimPrefix(tail, ", "); rest == tail && tail != "" {
			return "", nil, false
		}
	}
	return scheme, params, scheme != ""
}

// wantInsufficientScope checks that a is express-oauth2-jwt-bearer's
// insufficient_scope answer for the scope OIDCScopeAPIWrite, with
// description, and a DPoP-Nonce when dpop.
func wantInsufficientScope(t *testing.T, what string, a rsAnswer, description string, dpop bool) {
	t.Helper()
	want := `Bearer realm="api", error="insufficient_scope", error_description="` + description + `", scope="api:write"`
	if a.status != http.StatusForbidden || a.challenge != want {
		t.Errorf("%s: %d %q, WWW-Authenticate %q; want 403 %s", what, a.status, a.body, a.challenge, want)
	}
	scheme, params, ok := oneChallenge(a.challenge)
	if !ok || scheme != "Bearer" || params["error"] != DPoPInsufficientScope || params["scope"] != OIDCScopeAPIWrite {
		t.Errorf("%s: challenge %q: scheme %q, params %v; want Bearer, error insufficient_scope, scope %s",
			what, a.challenge, scheme, params, OIDCScopeAPIWrite)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil || body.Error != DPoPInsufficientScope || body.Description != description {
		t.Errorf("%s: body %q (%v)", what, a.body, err)
	}
	if a.cache != "no-store" || (a.nonce != "") != dpop {
		t.Errorf("%s: Cache-Control %q, DPoP-Nonce %q", what, a.cache, a.nonce)
	}
}

// TestDPoPResourceScope: PathDPoPWrite and PathBearerWrite refuse a token
// without OIDCScopeAPIWrite with express-oauth2-jwt-bearer's own 403
// insufficient_scope, after every check of PathDPoP and PathBearer, and
// take one with it; a 403 on PathDPoPWrite counts as an accepted request
// for the nonce rotation, and its proof's jti is spent.
func TestDPoPResourceScope(t *testing.T) {
	p, rs := StartDPoPStackForTest(t, OIDCProviderOptions{DPoPNonces: true}, DPoPResourceOptions{NonceEvery: 2})
	meta := `resource_metadata="` + rs.MetadataURL + `"`
	writeURL := rs.URL + PathDPoPWrite + "items"
	key := newProofKey(t, "ES256")
	read := scopedToken(t, p, key, OIDCScopeAPIRead)
	write := scopedToken(t, p, key, OIDCScopeAPIRead+" "+OIDCScopeAPIWrite)
	none := dpopToken(t, p, key)
	for tok, want := range map[string]any{read: "api:read", write: "api:read api:write", none: nil} {
		if _, claims := jwtParts(t, tok); claims["scope"] != want {
			t.Fatalf("token scope %v, want %v", claims["scope"], want)
		}
	}

	// The checks of PathDPoP come first: no token, no proof, no nonce.
	a := call(t, "GET", writeURL, "", "", "")
	if a.status != http.StatusUnauthorized || a.challenge != `DPoP algs="ES256 EdDSA RS256", `+meta {
		t.Errorf("no token: %d %q", a.status, a.challenge)
	}
	wantRefusal(t, "read token without proof", call(t, "GET", writeURL, "DPoP "+read, "", ""), `DPoP error="invalid_token", `)
	a = call(t, "GET", writeURL, "DPoP "+read, key.proof(t, "GET", writeURL, read, "", nil), "")
	wantRefusal(t, "read token without nonce", a, `DPoP error="use_dpop_nonce", `)
	nonce := a.nonce

	// Then the scope: the library's 403, with the current nonce. It is the
	// first accepted request: no rotation yet.
	proof := key.proof(t, "GET", writeURL, read, nonce, nil)
	a = call(t, "GET", writeURL, "DPoP "+read, proof, "")
	t.Logf("api:read token on %s: %d, WWW-Authenticate: %s, DPoP-Nonce: %s, body %s", PathDPoPWrite, a.status, a.challenge, a.nonce, a.body)
	wantInsufficientScope(t, "read token", a, "Insufficient Scope", true)
	if a.nonce != nonce {
		t.Errorf("nonce rotated after 1 accepted request: %q, was %q", a.nonce, nonce)
	}
	// Its proof was accepted: its jti is spent.
	a = call(t, "GET", writeURL, "DPoP "+read, proof, "")
	wantRefusal(t, "proof of a 403 again", a, `DPoP error="invalid_dpop_proof", error_description="DPoP proof jti was already used"`)
	// A token without scope: the library's other description. The second
	// accepted request: the nonce rotates, and the 403 carries the new one.
	a = call(t, "POST", writeURL, "DPoP "+none, key.proof(t, "POST", writeURL, none, nonce, nil), "x")
	wantInsufficientScope(t, "token without scope", a, "Missing 'scope' claim", true)
	if a.nonce == nonce || a.nonce == "" {
		t.Errorf("nonce did not rotate after 2 accepted requests (both 403): %q", a.nonce)
	}
	nonce = a.nonce

	// With api:write: 200, as on PathDPoP.
	proof = key.proof(t, "POST", writeURL, write, nonce, nil)
	a = call(t, "POST", writeURL+"?q=1", "DPoP "+write, proof, "hello")
	wantReply := DPoPReply{Sub: OIDCFleetClientID, ClientID: OIDCFleetClientID, Scope: "api:read api:write", JKT: key.thumbprint(),
		JTI: proofJTI(t, proof), TokenJTI: a.reply.TokenJTI, Method: "POST", Path: PathDPoPWrite + "items",
		BodySHA256: strings.Fields(EchoReply([]byte("hello")))[0], BodyBytes: 5}
	if a.status != http.StatusOK || a.reply != wantReply || a.nonce != nonce || a.cache != "no-store" {
		t.Errorf("write token: %d %q, DPoP-Nonce %q (sent %q)\nwant %+v", a.status, a.body, a.nonce, nonce, wantReply)
	}
	if !slices.Contains(strings.Fields(a.reply.Scope), OIDCScopeAPIWrite) {
		t.Errorf("reply scope %q without %s", a.reply.Scope, OIDCScopeAPIWrite)
	}
	// PathDPoP wants no scope.
	u := rs.URL + PathDPoP
	if a = call(t, "GET", u, "DPoP "+read, key.proof(t, "GET", u, read, nonce, nil), ""); a.status != http.StatusOK || a.reply.Scope != OIDCScopeAPIRead {
		t.Errorf("read token on %s: %d %q", PathDPoP, a.status, a.body)
	}

	// PathBearerWrite: the checks of PathBearer, then the scope.
	bearerURL := rs.URL + PathBearerWrite + "x"
	plainRead := scopedToken(t, p, nil, OIDCScopeAPIRead)
	plainWrite := scopedToken(t, p, nil, OIDCScopeAPIRead+" "+OIDCScopeAPIWrite)
	if a = call(t, "GET", bearerURL, "", "", ""); a.status != http.StatusUnauthorized || a.challenge != "Bearer "+meta {
		t.Errorf("bearer-write, no token: %d %q", a.status, a.challenge)
	}
	wantRefusal(t, "bound write token as Bearer", call(t, "GET", bearerURL, "Bearer "+write, "", ""),
		`Bearer error="invalid_token", error_description="DPoP-bound (or otherwise sender-constrained) token presented as a Bearer token", `+meta)
	a = call(t, "GET", bearerURL, "Bearer "+plainRead, "", "")
	t.Logf("api:read token on %s: %d, WWW-Authenticate: %s, body %s", PathBearerWrite, a.status, a.challenge, a.body)
	wantInsufficientScope(t, "plain read token", a, "Insufficient Scope", false)
	a = call(t, "PUT", bearerURL, "Bearer "+plainWrite, "", "data")
	if a.status != http.StatusOK || a.reply.Scope != "api:read api:write" || a.reply.JKT != "" || a.reply.Path != PathBearerWrite+"x" || a.nonce != "" {
		t.Errorf("plain write token: %d %q %+v, DPoP-Nonce %q", a.status, a.challenge, a.reply, a.nonce)
	}

	c := rs.Counts()
	if got, want := c.String(), "outcomes{insufficient_scope:3 invalid_dpop_proof:1 invalid_token:2 no_token:2 ok:3 use_dpop_nonce:1} rotations 2 metadata 0 wrong 0 jti 4/1"; got != want {
		t.Errorf("counts\n got %s\nwant %s", got, want)
	}
	if c.Paths["/dpop-write/ insufficient_scope"] != 2 || c.Paths["/bearer-write/ insufficient_scope"] != 1 ||
		c.Paths["/dpop-write/ ok"] != 1 || c.Paths["/bearer-write/ ok"] != 1 || c.Outcomes[DPoPInsufficientScope] != 3 {
		t.Errorf("counts by path: %v", c.Paths)
	}
}

// wantNativeRefusal checks that a is express-oauth2-jwt-bearer's own
// refusal on PathBearerNative: status, WWW-Authenticate exactly challenge,
// which names no resource_metadata, Cache-Control: no-store, and a body
// with the challenge's error and error_description (in which the library
// turns double quotes into single ones), or neither.
func wantNativeRefusal(t *testing.T, what string, a rsAnswer, status int, challenge string) {
	t.Helper()
	t.Logf("%s on %s: %d, WWW-Authenticate: %s, body %s", what, PathBearerNative, a.status, a.challenge, a.body)
	if a.status != status || a.challenge != challenge {
		t.Errorf("%s: %d %q, WWW-Authenticate %q; want %d %s", what, a.status, a.body, a.challenge, status, challenge)
	}
	scheme, params, ok := oneChallenge(a.challenge)
	if !ok || scheme != "Bearer" || params["realm"] != "api" {
		t.Errorf("%s: challenge %q: scheme %q, params %v; want Bearer realm=api", what, a.challenge, scheme, params)
	}
	if _, has := params["resource_metadata"]; has || strings.Contains(a.challenge, "resource_metadata") {
		t.Errorf("%s: challenge %q names resource_metadata", what, a.challenge)
	}
	var body struct {
		Error       *string `json:"error"`
		Description string  `json:"error_description"`
	}
	if err := json.Unmarshal([]byte(a.body), &body); err != nil {
		t.Errorf("%s: body %q: %v", what, a.body, err)
	} else if e, has := params["error"]; has != (body.Error != nil) ||
		has && (*body.Error != e || strings.ReplaceAll(body.Description, `"`, "'") != params["error_description"]) {
		t.Errorf("%s: body %q for challenge %q", what, a.body, a.challenge)
	}
	if a.cache != "no-store" || a.nonce != "" {
		t.Errorf("%s: Cache-Control %q, DPoP-Nonce %q", what, a.cache, a.nonce)
	}
}

// TestDPoPResourceBearerNative: PathBearerNative takes the plain Bearer
// tokens PathBearer takes, with the same reply, and refuses with
// express-oauth2-jwt-bearer's own answers, whose challenges name no
// resource_metadata: a client must find the metadata at the well-known
// URL of the resource's origin (RFC 9728 section 3.1), where the root
// document's resource covers the location.
func TestDPoPResourceBearerNative(t *testing.T) {
	p, rs := StartDPoPStackForTest(t, OIDCProviderOptions{AccessTokenTTL: 5 * time.Second}, DPoPResourceOptions{})
	u := rs.URL + PathBearerNative + "items"

	// A plain token: 200 with PathBearer's reply.
	plain := dpopToken(t, p, nil)
	a := call(t, "POST", u+"?q=1", "Bearer "+plain, "", "hello")
	_, claims := jwtParts(t, plain)
	wantReply := DPoPReply{Sub: OIDCFleetClientID, ClientID: OIDCFleetClientID, Scope: a.reply.Scope, TokenJTI: claims["jti"].(string),
		Method: "POST", Path: PathBearerNative + "items", BodySHA256: strings.Fields(EchoReply([]byte("hello")))[0], BodyBytes: 5}
	if a.status != http.StatusOK || a.reply != wantReply || a.nonce != "" || a.cache != "no-store" {
		t.Errorf("plain token: %d %q, DPoP-Nonce %q, Cache-Control %q\nwant %+v", a.status, a.body, a.nonce, a.cache, wantReply)
	}
	b := call(t, "POST", rs.URL+PathBearer+"items", "Bearer "+plain, "", "hello")
	if b.reply.Path = a.reply.Path; b.status != http.StatusOK || b.reply != a.reply {
		t.Errorf("the same token on %s: %d %+v; on %s %+v", PathBearer, b.status, b.reply, PathBearerNative, a.reply)
	}

	// No token: the library's UnauthorizedError.
	wantNativeRefusal(t, "no token", call(t, "GET", u, "", "", ""), http.StatusUnauthorized, `Bearer realm="api"`)
	// Tokens that are not valid: its InvalidTokenError.
	a = call(t, "GET", u, "Bearer garbage", "", "")
	var body struct {
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal([]byte(a.body), &body)
	if body.Description == "" {
		t.Errorf("garbage token: no error_description in %q", a.body)
	}
	wantNativeRefusal(t, "garbage token", a, http.StatusUnauthorized,
		`Bearer realm="api", error="invalid_token", error_description="`+body.Description+`"`)
	i := strings.LastIndexByte(plain, '.')
	forged := plain[:i+1] + strings.Repeat("A", len(plain)-i-1)
	wantNativeRefusal(t, "forged token", call(t, "GET", u, "Bearer "+forged, "", ""), http.StatusUnauthorized,
		`Bearer realm="api", error="invalid_token", error_description="signature verification failed"`)
	// A DPoP-bound token, which the library takes as Bearer with DPoP off:
	// refused with its InvalidTokenError.
	key := newProofKey(t, "ES256")
	bound := dpopToken(t, p, key)
	wantNativeRefusal(t, "DPoP-bound token as Bearer", call(t, "GET", u, "Bearer "+bound, "", ""), http.StatusUnauthorized,
		`Bearer realm="api", error="invalid_token", error_description="DPoP-bound (or otherwise sender-constrained) token presented as a Bearer token"`)
	// Requests the library finds malformed: its InvalidRequestError, 400.
	wantNativeRefusal(t, "DPoP scheme", call(t, "GET", u, "DPoP "+bound, key.proof(t, "GET", u, bound, "", nil), ""),
		http.StatusBadRequest, `Bearer realm="api"`)
	wantNativeRefusal(t, "Basic scheme", call(t, "GET", u, "Basic "+base64.StdEncoding.EncodeToString([]byte("u:p")), "", ""),
		http.StatusBadRequest, `Bearer realm="api"`)
	wantNativeRefusal(t, "token in header and query", call(t, "GET", u+"?access_token="+plain, "Bearer "+plain, "", ""),
		http.StatusBadRequest, `Bearer realm="api", error="invalid_request", error_description="More than one method used for authentication"`)

	// The metadata at the well-known URL of the origin: its resource is
	// the server's URL, which covers the location.
	resp, err := noProxyClient.Get(rs.URL + ProtectedResourceMetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	err = json.NewDecoder(resp.Body).Decode(&md)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || md.Resource != rs.URL || !slices.Equal(md.AuthorizationServers, []string{p.Issuer}) {
		t.Errorf("metadata at %s: %s %+v (%v)", ProtectedResourceMetadataPath, resp.Status, md, err)
	}
	if res, err := url.Parse(md.Resource); err != nil || !strings.HasPrefix(u, res.Scheme+"://"+res.Host+strings.TrimSuffix(res.Path, "/")+"/") {
		t.Errorf("metadata resource %q does not cover %s (%v)", md.Resource, u, err)
	}

	// Expired, from its exp second on: InvalidTokenError.
	time.Sleep(time.Until(time.Unix(int64(claims["exp"].(float64)), 0)) + 100*time.Millisecond)
	wantNativeRefusal(t, "expired token", call(t, "GET", u, "Bearer "+plain, "", ""), http.StatusUnauthorized,
		`Bearer realm="api", error="invalid_token", error_description="'exp' claim timestamp check failed"`)

	c := rs.Counts()
	if got, want := c.String(), "outcomes{invalid_request:3 invalid_token:4 no_token:1 ok:2} rotations 0 metadata 1 wrong 0 jti 0/0"; got != want {
		t.Errorf("counts\n got %s\nwant %s", got, want)
	}
	n := PathBearerNative + " "
	if c.Paths[n+DPoPOK] != 1 || c.Paths[n+DPoPNoToken] != 1 || c.Paths[n+DPoPInvalidToken] != 4 ||
		c.Paths[n+DPoPInvalidRequest] != 3 || c.Paths[PathBearer+" "+DPoPOK] != 1 || c.ServerErrors != 0 {
		t.Errorf("counts by path: %v", c.Paths)
	}
}
