package schemes_test

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
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// dpopServer is a token endpoint and a resource server in one that read
// DPoP proofs' claims (the signatures are checked by the real verifiers
// of the integration tests) and demand nonces: the token endpoint answers
// 400 use_dpop_nonce, the resource 401 use_dpop_nonce, until a proof
// carries the current one or, like oidc-provider's window of nonces, the
// one before it. It rotates the resource nonce every rotateEvery accepted
// requests, and right after each of the first staleAsks answers that ask
// for a nonce, so that the nonce given is already stale when it comes
// back, as when other clients' requests rotate it meanwhile.
type dpopServer struct {
	*httptest.Server
	mu          sync.Mutex
	nonce       string
	previous    string
	n           int
	staleAsks   int
	rotateEvery int
	jtis        map[string]int
	tokenType   string
	fetches     atomic.Int64
	trips       atomic.Int64
	proofs      []map[string]any
	refuseProof bool
}

func claimsOf(t testing.TB, proof string) (header, claims map[string]any) {
	if proof == "" {
		return nil, nil
	}
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		t.Errorf("proof %q is not a compact JWS", proof)
		return nil, nil
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(data, dst) != nil {
			t.Errorf("proof part %d does not decode", i)
		}
	}
	return header, claims
}

func newDPoPServer(t *testing.T) *dpopServer {
	s := &dpopServer{nonce: "n-0", rotateEvery: 1 << 30, jtis: map[string]int{}, tokenType: "DPoP"}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.trips.Add(1)
		proof := r.Header.Get("DPoP")
		_, claims := claimsOf(t, proof)
		s.mu.Lock()
		defer s.mu.Unlock()
		if claims != nil {
			s.proofs = append(s.proofs, claims)
			s.jtis[fmt.Sprint(claims["jti"])]++
		}
		nonceOK := claims != nil && (claims["nonce"] == s.nonce || s.previous != "" && claims["nonce"] == s.previous)
		rotate := func() {
			s.previous, s.nonce = s.nonce, fmt.Sprintf("n-%d-%d", s.n, s.trips.Load())
		}
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			if proof == "" {
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"invalid_dpop_proof"}`)
				return
			}
			if !nonceOK {
				w.Header().Set("DPoP-Nonce", s.nonce)
				w.WriteHeader(400)
				fmt.Fprint(w, `{"error":"use_dpop_nonce"}`)
				return
			}
			n := s.fetches.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("dpop-tok-%d", n), "token_type": s.tokenType, "expires_in": 3600})
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "DPoP ")
		switch {
		case !ok || proof == "":
			w.Header().Set("WWW-Authenticate", `DPoP algs="ES256 EdDSA RS256"`)
			w.WriteHeader(401)
		case s.refuseProof:
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
			w.WriteHeader(401)
		case !nonceOK:
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.Header().Set("DPoP-Nonce", s.nonce)
			if s.staleAsks > 0 {
				s.staleAsks--
				rotate()
				s.previous = ""
			}
			w.WriteHeader(401)
		case claims["ath"] != athOf(tok) || claims["htm"] != r.Method || claims["htu"] != "http://"+r.Host+r.URL.Path:
			w.Header().Set("WWW-Authenticate", `DPoP error="invalid_dpop_proof"`)
			w.WriteHeader(401)
		default:
			if s.n++; s.n%s.rotateEvery == 0 {
				rotate()
			}
			w.Header().Set("DPoP-Nonce", s.nonce)
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func athOf(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func (s *dpopServer) dpop(t *testing.T) *schemes.DPoP {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cfg := &clientcredentials.Config{ClientID: "c", ClientSecret: "s", TokenURL: s.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}
	return schemes.NewDPoPClientCredentials(key, cfg, s.URL)
}

func getStatus(t *testing.T, tr http.RoundTripper, url string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDPoPNoncesAndRoundTrips: the token request meets use_dpop_nonce and
// succeeds on its retry; the first resource request too; then 100
// requests cost 100 round trips plus one per nonce rotation, and no jti
// repeats.
func TestDPoPNoncesAndRoundTrips(t *testing.T) {
	s := newDPoPServer(t)
	s.rotateEvery = 25
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)}}
	if st := getStatus(t, tr, s.URL+"/r"); st != 200 {
		t.Fatalf("status %d", st)
	}
	// 401 (no token), token request 400 use_dpop_nonce + 200, 200 (the
	// resource shares the token endpoint's origin and nonce here).
	if tr := s.trips.Load(); tr != 4 {
		t.Errorf("first request: %d round trips (token endpoint included), want 4", tr)
	}
	before := s.trips.Load()
	for range 100 {
		if st := getStatus(t, tr, s.URL+"/r"); st != 200 {
			t.Fatalf("status %d", st)
		}
	}
	trips := s.trips.Load() - before
	t.Logf("100 requests, nonce rotated every 25: %d round trips, %d token fetches", trips, s.fetches.Load())
	if trips > 100+4 {
		t.Errorf("%d round trips for 100 requests, want at most 100 + one per rotation (4)", trips)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for jti, n := range s.jtis {
		if n > 1 {
			t.Errorf("jti %s sent %d times", jti, n)
		}
	}
}

// concurrentGets sends each GETs of url(i), i from 0, from each of
// goroutines at once through tr, and returns how many failed or were
// not answered 200.
func concurrentGets(tr http.RoundTripper, goroutines, each int, url func(i int) string) int64 {
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range goroutines {
		wg.Go(func() {
			for i := range each {
				req, _ := http.NewRequest("GET", url(i), nil)
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
	return failed.Load()
}

// TestDPoPConcurrentUniqueProofs: 32 goroutines x 10 requests all
// succeed and every proof is new.
func TestDPoPConcurrentUniqueProofs(t *testing.T) {
	s := newDPoPServer(t)
	s.rotateEvery = 40
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)}}
	failed := concurrentGets(tr, 32, 10, func(int) string { return s.URL + "/r" })
	s.mu.Lock()
	defer s.mu.Unlock()
	repeated := 0
	for _, n := range s.jtis {
		if n > 1 {
			repeated++
		}
	}
	t.Logf("320 requests: %d failed, %d round trips, %d token fetches, %d proofs, %d repeated jti", failed, s.trips.Load(), s.fetches.Load(), len(s.proofs), repeated)
	if failed != 0 || repeated != 0 || s.fetches.Load() != 1 {
		t.Errorf("%d failed, %d repeated jti, %d token fetches; want 0, 0, 1", failed, repeated, s.fetches.Load())
	}
}

// TestDPoPNonceRotatedInFlight: a nonce that is stale again when it comes
// back is asked for again, with a new nonce each time, up to three times
// per leg; then a fresh leg starts, and the Transport's budget of answers
// (DefaultMaxAnswers) ends a server that never accepts a nonce with its
// 401 after five round trips.
func TestDPoPNonceRotatedInFlight(t *testing.T) {
	s := newDPoPServer(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)}}
	if st := getStatus(t, tr, s.URL+"/r"); st != 200 {
		t.Fatalf("status %d", st)
	}
	for _, tc := range []struct {
		stale, status int
		trips         int64
	}{{2, 200, 4}, {3, 200, 5}, {8, 401, 5}} {
		s.mu.Lock()
		s.nonce, s.previous, s.staleAsks = fmt.Sprintf("unseen-%d", tc.stale), "", tc.stale
		s.mu.Unlock()
		before := s.trips.Load()
		if st := getStatus(t, tr, s.URL+"/r"); st != tc.status {
			t.Errorf("nonce stale on %d asks: status %d, want %d", tc.stale, st, tc.status)
		}
		if n := s.trips.Load() - before; n != tc.trips {
			t.Errorf("nonce stale on %d asks: %d round trips, want %d", tc.stale, n, tc.trips)
		}
	}
}

// TestDPoPInvalidProofNotRetried: invalid_dpop_proof returns the 401
// without a loop.
func TestDPoPInvalidProofNotRetried(t *testing.T) {
	s := newDPoPServer(t)
	s.refuseProof = true
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)}}
	if st := getStatus(t, tr, s.URL+"/r"); st != 401 {
		t.Fatalf("status %d, want the server's 401", st)
	}
	if n := s.trips.Load(); n != 4 { // 401, token 400 + 200, 401 invalid_dpop_proof
		t.Errorf("%d round trips, want 4", n)
	}
}

// TestDPoPRefusesBearerToken: a token endpoint that returns a Bearer
// token gets an error, and the token is never sent with a proof.
func TestDPoPRefusesBearerToken(t *testing.T) {
	s := newDPoPServer(t)
	s.tokenType = "Bearer"
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)}}
	req, _ := http.NewRequest("GET", s.URL+"/r", nil)
	resp, err := tr.RoundTrip(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("status %d, want an error", resp.StatusCode)
	}
	if !strings.Contains(err.Error(), `type "Bearer", not DPoP`) {
		t.Errorf("error %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.proofs {
		if p["ath"] != nil {
			t.Errorf("a proof for a resource request was sent with the Bearer token")
		}
	}
}

// TestDPoPKeys: ES256, EdDSA and RS256 keys give their algorithm; the
// RSA thumbprint is RFC 7638's example; other keys are refused; no key
// material is printed.
func TestDPoPKeys(t *testing.T) {
	// RFC 7638 §3.1.
	nBytes, _ := base64.RawURLEncoding.DecodeString(rfc7638NB64)
	rsaKey := &rsaPublicOnly{pub: &rsa.PublicKey{N: new(big.Int).SetBytes(nBytes), E: 65537}}
	d := schemes.NewDPoP(rsaKey, nil, "https://api.example")
	if jkt, err := d.Thumbprint(); err != nil || jkt != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("RFC 7638 thumbprint = %q, %v", jkt, err)
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	for name, tc := range map[string]struct {
		key  any
		want string
	}{"ES256": {ec, "alg:ES256"}, "EdDSA": {ed, "alg:EdDSA"}, "P-384": {p384, "alg:none"}} {
		var d *schemes.DPoP
		switch k := tc.key.(type) {
		case *ecdsa.PrivateKey:
			d = schemes.NewDPoP(k, nil, "https://api.example")
		case ed25519.PrivateKey:
			d = schemes.NewDPoP(k, nil, "https://api.example")
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			out := fmt.Sprintf(verb, d)
			if !strings.Contains(out, tc.want) {
				t.Errorf("%s: %s = %s, want %s", name, verb, out, tc.want)
			}
			if k, ok := tc.key.(*ecdsa.PrivateKey); ok {
				raw, _ := k.Bytes()
				for _, enc := range []string{fmt.Sprintf("%x", raw), base64.RawURLEncoding.EncodeToString(raw), new(big.Int).SetBytes(raw).String()} {
					if strings.Contains(out, enc) {
						t.Errorf("%s: private key printed", name)
					}
				}
			}
		}
	}
}

// rsaPublicOnly is a crypto.Signer with only a public key, for the
// thumbprint vector.
type rsaPublicOnly struct{ pub *rsa.PublicKey }

func (k *rsaPublicOnly) Public() crypto.PublicKey { return k.pub }
func (k *rsaPublicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, fmt.Errorf("public only")
}

const rfc7638NB64 = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"

// TestDPoPNothingSecretLogged: a Debug trace of DPoP requests (a nonce
// retry and a token fetch included) holds no token and no proof.
func TestDPoPNothingSecretLogged(t *testing.T) {
	s := newDPoPServer(t)
	s.nonce = "n-x"
	var logs strings.Builder
	var mu sync.Mutex
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{s.dpop(t)},
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for range 3 {
		if st := getStatus(t, tr, s.URL+"/r"); st != 200 {
			t.Fatalf("status %d", st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := logs.String()
	if strings.Contains(out, "dpop-tok-") || strings.Contains(out, "eyJ") {
		t.Errorf("a token or a proof is in the Debug log:\n%s", out)
	}
	if !strings.Contains(out, "bearer token fetch") {
		t.Errorf("the trace lacks the token fetch; is Debug on?\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
