package testserver

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file starts a real OAuth 2.0 resource server that wants DPoP
// (RFC 9449) and publishes protected resource metadata (RFC 9728): express
// with Auth0's express-oauth2-jwt-bearer (pinned by dpoprs/package.json
// and package-lock.json) for the token and proof validation, plus server
// nonces, jti replay detection and the metadata in dpoprs/server.mjs.

// Locations and documents of the DPoP resource server: PathDPoP,
// PathWrongMetadata, PathDPoPWrite, PathBearerWrite, PathBearerNative and
// PathBearer (the server's Bearer location, a name shared with the
// mod_auth_openidc server).
const (
	// PathDPoP is the DPoP resource server's location that wants a
	// DPoP-bound access token (Authorization: DPoP) with a DPoP proof
	// carrying the server's nonce.
	PathDPoP = "/dpop/"
	// PathWrongMetadata is PathDPoP again, except that its challenges'
	// resource_metadata names WrongMetadataPath, whose document names
	// another resource: a client that checks the metadata (RFC 9728
	// section 3.3) must not use it.
	PathWrongMetadata = "/wrongmeta/"
	// PathDPoPWrite is PathDPoP plus a scope: once the token, proof,
	// nonce and jti passed, the token's scope must hold
	// OIDCScopeAPIWrite, else the answer is express-oauth2-jwt-bearer's
	// own 403 insufficient_scope (RFC 6750 section 3.1).
	PathDPoPWrite = "/dpop-write/"
	// PathBearerWrite is PathBearer plus a scope, as PathDPoPWrite is
	// PathDPoP's: a plain Bearer token whose scope holds
	// OIDCScopeAPIWrite.
	PathBearerWrite = "/bearer-write/"
	// PathBearerNative is PathBearer (plain Bearer tokens, the same
	// checks and replies) with express-oauth2-jwt-bearer's own refusals:
	// their status and WWW-Authenticate are the library's, without
	// resource_metadata, e.g. 401 Bearer realm="api" without credentials,
	// so that a client must find the protected resource metadata at the
	// well-known URL of the server's origin (RFC 9728 section 3.1).
	PathBearerNative = "/bearer-native/"
	// ProtectedResourceMetadataPath is where the DPoP resource server
	// serves its protected resource metadata (RFC 9728 section 3).
	ProtectedResourceMetadataPath = "/.well-known/oauth-protected-resource"
	// WrongMetadataPath serves DPoPResourceOptions.WrongMetadata, by
	// default the metadata with the resource DPoPWrongResource.
	WrongMetadataPath = ProtectedResourceMetadataPath + "/wrong"
	// DPoPWrongResource is the resource of the default document at
	// WrongMetadataPath.
	DPoPWrongResource = "https://evil.anyauth.test/"
)

// Defaults of the DPoP resource server.
const (
	// DPoPDefaultNonceEvery is DPoPResourceOptions.NonceEvery's default.
	DPoPDefaultNonceEvery = 50
	// DPoPIatWindow is how far a DPoP proof's iat may be from the
	// server's clock, either way. A proof's jti is remembered as long as
	// its iat is within the window.
	DPoPIatWindow = 60 * time.Second
)

// DPoPDefaultAlgs are the DPoP proof algorithms the server accepts when
// DPoPResourceOptions.Algs is nil.
var DPoPDefaultAlgs = []string{"ES256", "EdDSA", "RS256"}

// dpopAlgs are the algorithms express-oauth2-jwt-bearer can verify
// proofs with; Algs must be among them.
var dpopAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512", "EdDSA"}

// dpopResourcePackage is the node package of server.mjs.
var dpopResourcePackage = nodePackage{
	dir:    "dpoprs",
	script: "server.mjs",
	pins: map[string]string{
		"express-oauth2-jwt-bearer": "1.10.0",
		"express":                   "5.3.0",
	},
	minNode: [2]int{20, 2}, // express-oauth2-jwt-bearer's engines
}

// DPoPResourceOptions configure StartDPoPResource. Issuer and JWKSURL are
// required.
type DPoPResourceOptions struct {
	// Issuer is the authorization server: the access tokens' "iss" must
	// be it, and the metadata's authorization_servers names it, e.g.
	// OIDCProvider.Issuer.
	Issuer string
	// JWKSURL is where the access tokens' RS256 keys are, e.g.
	// OIDCProvider.JWKSURL (plain http is fine). It is fetched when a
	// token first needs it, and cached.
	JWKSURL string
	// Resource is the resource identifier: the access tokens' "aud" must
	// be it, and it is the metadata's resource. "" means the server's URL
	// (DPoPResource.URL, "http://127.0.0.1:PORT", no trailing slash),
	// which is what RFC 9728 section 3.3 wants a client to find there;
	// start the authorization server with it as its resource (see
	// StartDPoPStack).
	Resource string
	// Port is the port to listen on; 0 picks a free one.
	Port int
	// NonceEvery makes the server nonce rotate after every NonceEvery
	// accepted requests; 0 means DPoPDefaultNonceEvery.
	NonceEvery int
	// NoNonce turns server nonces off: proofs need none, and no response
	// carries a DPoP-Nonce.
	NoNonce bool
	// Algs are the DPoP proof algorithms the server accepts and
	// announces (challenge algs, metadata
	// dpop_signing_alg_values_supported); nil means DPoPDefaultAlgs.
	// Each must be an asymmetric JWS algorithm (RS256, RS384, RS512,
	// PS256, PS384, PS512, ES256, ES256K, ES384, ES512, EdDSA).
	Algs []string
	// WrongMetadata is the document served at WrongMetadataPath; nil
	// means the server's metadata with the resource DPoPWrongResource.
	WrongMetadata map[string]any
}

// DPoPResource is a running DPoP resource server started by
// StartDPoPResource: node with express on http://127.0.0.1:PORT. It
// accepts RS256 JWT access tokens (RFC 9068: typ at+jwt, iss Issuer, aud
// Resource, iat, sub, client_id and jti present, exp checked without
// leeway: refused from the exp second on) whose keys are at JWKSURL, and
// serves:
//
//   - PathDPoP (any method, any path below): a DPoP-bound token
//     (Authorization: DPoP TOKEN, cnf.jkt) and a DPoP proof (RFC 9449
//     section 4.3: typ dpop+jwt, one of Algs, signed with its jwk, htm the
//     method, htu URL plus the path, without query and fragment, with
//     percent-encodings normalised; iat within DPoPIatWindow, ath the
//     token's hash, the jwk's thumbprint the token's cnf.jkt, a jti never
//     seen before, and the server nonce). The htu is compared with the
//     server's own URL, whatever Host header the request has.
//     Token and proof are checked first, then the nonce, then the jti.
//     Answers:
//     200 with a JSON body (see DPoPReply) and DPoP-Nonce;
//     401 DPoP algs="ES256 EdDSA RS256" (Algs),
//     resource_metadata="MetadataURL" without credentials (or with
//     another scheme than Bearer and DPoP);
//     401 DPoP error="invalid_token", error_description="…", algs=…,
//     resource_metadata=… for a Bearer-scheme token, a DPoP token without
//     proof, a token that is not valid, or a proof of another key than
//     cnf.jkt;
//     401 DPoP error="invalid_dpop_proof", … for a proof that is not
//     valid, or that repeats a jti;
//     401 DPoP error="use_dpop_nonce", … plus DPoP-Nonce for a proof
//     without the current (or the previous) nonce;
//     400 DPoP error="invalid_request", … for a token both in the header
//     and in the query.
//   - PathWrongMetadata: the same, with challenges whose
//     resource_metadata is WrongMetadataURL.
//   - PathBearer: an unbound token as Bearer. 200 with a DPoPReply
//     without jkt and jti; 401 Bearer resource_metadata="MetadataURL"
//     without credentials, Bearer error="invalid_token",
//     error_description="…", resource_metadata=… for a token that is not
//     valid, DPoP-bound, or sent with the DPoP scheme.
//   - PathDPoPWrite and PathBearerWrite: PathDPoP and PathBearer, the
//     same answers, except that a request that passed all their checks
//     but whose token's scope lacks OIDCScopeAPIWrite is refused by
//     express-oauth2-jwt-bearer's own requiredScopes middleware, with the
//     library's answer: 403 Bearer realm="api",
//     error="insufficient_scope", error_description="Insufficient Scope"
//     (or "Missing 'scope' claim"), scope="api:write" — a Bearer
//     challenge, without algs and resource_metadata, on PathDPoPWrite
//     too — and, on PathDPoPWrite, DPoP-Nonce. Its outcome is
//     DPoPInsufficientScope. On PathDPoPWrite such a request counts as
//     accepted: its proof's jti is remembered (DistinctJTIs) and it
//     counts towards the nonce rotation, as a 200 does.
//   - PathBearerNative: PathBearer's tokens and replies, and the
//     library's own refusals, as it builds them, with no
//     resource_metadata: 401 Bearer realm="api" (its UnauthorizedError,
//     outcome DPoPNoToken) without an Authorization header; 401 Bearer
//     realm="api", error="invalid_token", error_description="…" (its
//     InvalidTokenError) for a token that is not valid or DPoP-bound;
//     400 for a request it finds malformed (DPoPInvalidRequest): another
//     scheme than Bearer (Bearer realm="api", no error code) or a token
//     in the header and the query (Bearer realm="api",
//     error="invalid_request", …). A client that wants its metadata
//     must look at the well-known URL itself: with the default Resource
//     (URL) the document at ProtectedResourceMetadataPath, whose
//     resource covers it.
//   - ProtectedResourceMetadataPath (and, when Resource is a URL with a
//     path on this server, its RFC 9728 well-known URL): {resource,
//     authorization_servers: [Issuer], bearer_methods_supported:
//     ["header"], dpop_signing_alg_values_supported: Algs,
//     dpop_bound_access_tokens_required: false} with Cache-Control:
//     max-age=300; WrongMetadataPath likewise with WrongMetadata.
//
// Refusals carry Cache-Control: no-store and a JSON body {error,
// error_description} (without error when the challenge has none). The
// nonce rotates every NonceEvery accepted requests (token, proof, nonce
// and jti good, whatever the scope) on the DPoP locations; the previous
// one stays valid until the next rotation.
// Counts counts the answers.
type DPoPResource struct {
	URL              string   // "http://127.0.0.1:PORT", no trailing slash
	Resource         string   // the resource identifier: the tokens' aud, the metadata's resource
	MetadataURL      string   // the metadata's URL, as the challenges name it
	WrongMetadataURL string   // URL + WrongMetadataPath
	Issuer           string   // see DPoPResourceOptions.Issuer
	JWKSURL          string   // see DPoPResourceOptions.JWKSURL
	NonceEvery       int      // 0 with NoNonce
	NoNonce          bool     // see DPoPResourceOptions.NoNonce
	Algs             []string // the accepted proof algorithms

	Dir     string        // temp dir: configuration, event log, log
	Startup time.Duration // from exec until it first answered

	proc
	logFile   string
	eventLog  string
	closeOnce sync.Once
	closeErr  error
}

// DPoPReply is the JSON body of a 200 answer of a DPoPResource.
type DPoPReply struct {
	Sub        string `json:"sub"`         // the token's sub
	ClientID   string `json:"client_id"`   // the token's client_id
	Scope      string `json:"scope"`       // the token's scope
	JKT        string `json:"jkt"`         // the token's cnf.jkt ("" on the Bearer locations)
	JTI        string `json:"jti"`         // the proof's jti ("" on the Bearer locations)
	TokenJTI   string `json:"token_jti"`   // the token's jti
	Method     string `json:"method"`      // the request method
	Path       string `json:"path"`        // the request path, without query
	BodySHA256 string `json:"body_sha256"` // lowercase hex SHA-256 of the request body
	BodyBytes  int64  `json:"body_bytes"`  // its length
}

// dpopResourceConfig is the configuration server.mjs reads.
type dpopResourceConfig struct {
	Port              int            `json:"port"`
	Origin            string         `json:"origin"`
	ReadyToken        string         `json:"readyToken"`
	Issuer            string         `json:"issuer"`
	JWKSURL           string         `json:"jwksUrl"`
	Resource          string         `json:"resource"`
	Nonce             bool           `json:"nonce"`
	NonceEvery        int            `json:"nonceEvery"`
	Algs              []string       `json:"algs"`
	IatWindow         int            `json:"iatWindow"`
	EventLog          string         `json:"eventLog"`
	PathDPoP          string         `json:"pathDPoP"`
	PathBearer        string         `json:"pathBearer"`
	PathWrongMetadata string         `json:"pathWrongMetadata"`
	PathDPoPWrite     string         `json:"pathDPoPWrite"`
	PathBearerWrite   string         `json:"pathBearerWrite"`
	PathBearerNative  string         `json:"pathBearerNative"`
	WriteScope        string         `json:"writeScope"`
	MetadataPaths     []string       `json:"metadataPaths"`
	MetadataURL       string         `json:"metadataUrl"`
	Metadata          map[string]any `json:"metadata"`
	WrongMetadataPath string         `json:"wrongMetadataPath"`
	WrongMetadataURL  string         `json:"wrongMetadataUrl"`
	WrongMetadata     map[string]any `json:"wrongMetadata"`
}

// StartDPoPResource starts the DPoP resource server (see DPoPResource)
// with node on opts.Port or a free 127.0.0.1 port, and waits until it
// answers.
//
// The first start runs npm ci in the dpoprs directory beside this file
// (under a file lock; at most 5 minutes), which needs the npm registry.
// The error wraps ErrNotInstalled when node or npm is missing or node is
// older than 20.2; TESTSERVER_NODE and TESTSERVER_NPM name other
// binaries.
func StartDPoPResource(opts DPoPResourceOptions) (*DPoPResource, error) {
	if opts.Issuer == "" || opts.JWKSURL == "" {
		return nil, errors.New("testserver: StartDPoPResource needs Issuer and JWKSURL")
	}
	algs := opts.Algs
	if algs == nil {
		algs = DPoPDefaultAlgs
	}
	for _, a := range algs {
		if !slices.Contains(dpopAlgs, a) {
			return nil, fmt.Errorf("testserver: DPoP proof algorithm %q is not one of %v", a, dpopAlgs)
		}
	}
	if len(algs) == 0 {
		return nil, errors.New("testserver: DPoPResourceOptions.Algs is empty")
	}
	node, dir, script, err := dpopResourcePackage.prepare("dpoprs")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	r := &DPoPResource{
		Issuer:     opts.Issuer,
		JWKSURL:    opts.JWKSURL,
		NonceEvery: opts.NonceEvery,
		NoNonce:    opts.NoNonce,
		Algs:       slices.Clone(algs),
		Dir:        dir,
		logFile:    filepath.Join(dir, "server.log"),
		eventLog:   filepath.Join(dir, "events.jsonl"),
	}
	if r.NonceEvery <= 0 {
		r.NonceEvery = DPoPDefaultNonceEvery
	}
	if r.NoNonce {
		r.NonceEvery = 0
	}
	err = retryOnTakenPort(func(int) (bool, error) {
		port := opts.Port
		if port == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return false, err
			}
		}
		err := r.startOn(node, script, port, opts)
		return opts.Port == 0 && err != nil && strings.Contains(r.Log(), "EADDRINUSE"), err
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// StartDPoPResourceForTest starts a DPoP resource server with
// StartDPoPResource, closes it when the test ends and, if the test
// failed, logs its output. Missing node or npm skips the test, or fails
// it when InCI.
func StartDPoPResourceForTest(t testing.TB, opts DPoPResourceOptions) *DPoPResource {
	t.Helper()
	return forTest(t, func() (*DPoPResource, error) { return StartDPoPResource(opts) },
		func(r *DPoPResource) string { return "DPoP resource server log:\n" + r.Log() })
}

// StartDPoPStack starts an oidc-provider with op (DPoP nonces or not as
// op says) whose resource is a DPoP resource server's URL, then that
// server with rs, its Issuer and JWKSURL set to the provider's: the
// provider's DPoP-bound access tokens are good on the server's PathDPoP,
// its plain ones on PathBearer and PathBearerNative; on PathDPoPWrite and
// PathBearerWrite likewise when they were asked for with the scope
// OIDCScopeAPIWrite.
// op.Resource and rs.Resource, if set, must be equal; rs.Port must be 0.
func StartDPoPStack(op OIDCProviderOptions, rs DPoPResourceOptions) (*OIDCProvider, *DPoPResource, error) {
	if rs.Port != 0 || op.Resource != rs.Resource {
		return nil, nil, errors.New("testserver: StartDPoPStack: set no port, and the same resource (or none) on both")
	}
	var (
		p *OIDCProvider
		r *DPoPResource
	)
	err := retryOnTakenPort(func(int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		opts := op
		if opts.Resource == "" {
			opts.Resource = fmt.Sprintf("http://127.0.0.1:%d", port)
		}
		if p, err = StartOIDCProvider(opts); err != nil {
			return false, err
		}
		ropts := rs
		ropts.Port, ropts.Issuer, ropts.JWKSURL = port, p.Issuer, p.JWKSURL
		r, err = StartDPoPResource(ropts)
		if err != nil {
			_ = p.Close()
			p = nil
			// The port went to another process between freePort and
			// node's listen.
			return strings.Contains(err.Error(), "EADDRINUSE"), err
		}
		return false, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return p, r, nil
}

// StartDPoPStackForTest is StartDPoPStack for t: both servers are closed
// when the test ends, and their output logged if it failed. Missing node
// or npm skips the test, or fails it when InCI.
func StartDPoPStackForTest(t testing.TB, op OIDCProviderOptions, rs DPoPResourceOptions) (*OIDCProvider, *DPoPResource) {
	t.Helper()
	var p *OIDCProvider
	r := forTest(t, func() (*DPoPResource, error) {
		var r *DPoPResource
		var err error
		p, r, err = StartDPoPStack(op, rs)
		if err == nil {
			// Cleanups run last first: this one after forTest's, which
			// logs p's output.
			t.Cleanup(func() {
				if err := p.Close(); err != nil {
					t.Errorf("closing oidc-provider: %v", err)
				}
			})
		}
		return r, err
	}, func(r *DPoPResource) string {
		return "oidc-provider log:\n" + p.Log() + "\nDPoP resource server log:\n" + r.Log()
	})
	return p, r
}

// startOn writes the configuration for port, starts node and waits until
// the server answers.
func (r *DPoPResource) startOn(node, script string, port int, opts DPoPResourceOptions) error {
	r.forget()
	r.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	r.Resource = opts.Resource
	if r.Resource == "" {
		r.Resource = r.URL
	}
	// RFC 9728 section 3.1: the metadata of a resource with a path is
	// under the well-known path followed by that path.
	metadataPaths := []string{ProtectedResourceMetadataPath}
	r.MetadataURL = r.URL + ProtectedResourceMetadataPath
	if u, err := url.Parse(r.Resource); err == nil && u.Scheme+"://"+u.Host == r.URL {
		if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
			metadataPaths = append(metadataPaths, ProtectedResourceMetadataPath+p)
			r.MetadataURL = r.URL + ProtectedResourceMetadataPath + p
		}
	}
	r.WrongMetadataURL = r.URL + WrongMetadataPath
	metadata := map[string]any{
		"resource":                          r.Resource,
		"authorization_servers":             []string{r.Issuer},
		"bearer_methods_supported":          []string{"header"},
		"dpop_signing_alg_values_supported": r.Algs,
		"dpop_bound_access_tokens_required": false,
	}
	wrong := opts.WrongMetadata
	if wrong == nil {
		wrong = maps.Clone(metadata)
		wrong["resource"] = DPoPWrongResource
	}
	cfg := dpopResourceConfig{
		Port:              port,
		Origin:            r.URL,
		ReadyToken:        r.Dir,
		Issuer:            r.Issuer,
		JWKSURL:           r.JWKSURL,
		Resource:          r.Resource,
		Nonce:             !r.NoNonce,
		NonceEvery:        max(r.NonceEvery, 1),
		Algs:              r.Algs,
		IatWindow:         int(DPoPIatWindow / time.Second),
		EventLog:          r.eventLog,
		PathDPoP:          PathDPoP,
		PathBearer:        PathBearer,
		PathWrongMetadata: PathWrongMetadata,
		PathDPoPWrite:     PathDPoPWrite,
		PathBearerWrite:   PathBearerWrite,
		PathBearerNative:  PathBearerNative,
		WriteScope:        OIDCScopeAPIWrite,
		MetadataPaths:     metadataPaths,
		MetadataURL:       r.MetadataURL,
		Metadata:          metadata,
		WrongMetadataPath: WrongMetadataPath,
		WrongMetadataURL:  r.WrongMetadataURL,
		WrongMetadata:     wrong,
	}
	began := time.Now()
	if err := r.startScript("dpop resource server", node, script, r.Dir, cfg, r.eventLog, r.logFile); err != nil {
		return err
	}
	err := r.ready(30*time.Second, answersWith(r.URL+"/_ready", r.Dir))
	if err != nil {
		return fmt.Errorf("testserver: DPoP resource server on %s: %w\n%s", r.URL, err, r.Log())
	}
	r.Startup = time.Since(began)
	return nil
}

// Log returns what node wrote on stdout and stderr.
func (r *DPoPResource) Log() string {
	data, _ := os.ReadFile(r.logFile)
	return string(data)
}

// Close stops node and removes Dir. It is idempotent and safe to call on
// a nil DPoPResource.
func (r *DPoPResource) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.stop(), os.RemoveAll(r.Dir))
	})
	return r.closeErr
}

// Outcomes of a request to a protected location of a DPoPResource, the
// keys of DPoPCounts.Outcomes: ok, or the error code of the challenge
// (no_token for a challenge without one).
const (
	DPoPOK             = "ok"
	DPoPUseNonce       = "use_dpop_nonce"
	DPoPInvalidProof   = "invalid_dpop_proof"
	DPoPInvalidToken   = "invalid_token"
	DPoPNoToken        = "no_token"
	DPoPInvalidRequest = "invalid_request"
	// DPoPInsufficientScope is the 403 of PathDPoPWrite and
	// PathBearerWrite to a token without OIDCScopeAPIWrite.
	DPoPInsufficientScope = "insufficient_scope"
)

// DPoPCounts counts what a DPoPResource answered. The server writes one
// event per answer before sending it, so counts taken after a response
// arrived include it.
type DPoPCounts struct {
	// Outcomes counts the answers of all protected locations by outcome:
	// DPoPOK, DPoPUseNonce, DPoPInvalidProof, DPoPInvalidToken,
	// DPoPNoToken, DPoPInvalidRequest, DPoPInsufficientScope.
	Outcomes map[string]int
	// Paths counts them by location and outcome, e.g. "/dpop/ ok",
	// "/bearer/ invalid_token", "/dpop-write/ insufficient_scope".
	Paths map[string]int
	// NonceRotations counts the nonce changes (not the first nonce).
	NonceRotations int
	// MetadataFetches counts the GETs of the metadata, and
	// WrongMetadataFetches those of WrongMetadataPath.
	MetadataFetches, WrongMetadataFetches int
	// DistinctJTIs counts the proofs accepted (each jti once, including
	// those of DPoPInsufficientScope answers), and
	// RepeatedJTIs the proofs refused because their jti was seen before.
	DistinctJTIs, RepeatedJTIs int
	// ServerErrors counts internal errors (500); there should be none.
	ServerErrors int
}

// Sub returns c minus earlier: what happened between two snapshots.
// Zero map entries are dropped.
func (c DPoPCounts) Sub(earlier DPoPCounts) DPoPCounts {
	return DPoPCounts{
		Outcomes:             diffCounts(c.Outcomes, earlier.Outcomes),
		Paths:                diffCounts(c.Paths, earlier.Paths),
		NonceRotations:       c.NonceRotations - earlier.NonceRotations,
		MetadataFetches:      c.MetadataFetches - earlier.MetadataFetches,
		WrongMetadataFetches: c.WrongMetadataFetches - earlier.WrongMetadataFetches,
		DistinctJTIs:         c.DistinctJTIs - earlier.DistinctJTIs,
		RepeatedJTIs:         c.RepeatedJTIs - earlier.RepeatedJTIs,
		ServerErrors:         c.ServerErrors - earlier.ServerErrors,
	}
}

// String is a compact form for test messages (without Paths), e.g.
// "outcomes{ok:2 use_dpop_nonce:1} rotations 0 metadata 1 wrong 0 jti 2/0".
func (c DPoPCounts) String() string {
	var b strings.Builder
	b.WriteString("outcomes{")
	for i, k := range slices.Sorted(maps.Keys(c.Outcomes)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%d", k, c.Outcomes[k])
	}
	fmt.Fprintf(&b, "} rotations %d metadata %d wrong %d jti %d/%d", c.NonceRotations, c.MetadataFetches,
		c.WrongMetadataFetches, c.DistinctJTIs, c.RepeatedJTIs)
	if c.ServerErrors != 0 {
		fmt.Fprintf(&b, " server errors %d", c.ServerErrors)
	}
	return b.String()
}

// Counts counts the server's answers since it started.
func (r *DPoPResource) Counts() DPoPCounts {
	c := DPoPCounts{Outcomes: map[string]int{}, Paths: map[string]int{}}
	events, _ := eventLines[struct {
		Event   string `json:"event"`
		Path    string `json:"path"`
		Outcome string `json:"outcome"`
		Name    string `json:"name"`
	}](r.eventLog, 0)
	for _, e := range events {
		switch e.Event {
		case "request":
			c.Outcomes[e.Outcome]++
			c.Paths[e.Path+" "+e.Outcome]++
		case "nonce.rotated":
			c.NonceRotations++
		case "metadata":
			if e.Name == "wrong" {
				c.WrongMetadataFetches++
			} else {
				c.MetadataFetches++
			}
		case "jti.new":
			c.DistinctJTIs++
		case "jti.repeated":
			c.RepeatedJTIs++
		case "server_error":
			c.ServerErrors++
		}
	}
	return c
}
