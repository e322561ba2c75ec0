package testserver

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// This file starts a real OAuth 2.0 authorization server: oidc-provider
// from npm (pinned by oidcprovider/package.json and package-lock.json),
// run by node with the script oidcprovider/provider.mjs. npm ci installs
// its node_modules the first time.

// Clients of the provider. Each client is registered with exactly one
// token endpoint authentication method, and oidc-provider refuses the
// other ones (invalid_client).
const (
	// OIDCFleetClientID is a confidential client allowed only
	// client_credentials, authenticating with client_secret_basic (HTTP
	// Basic) and OIDCFleetSecret. It may ask for the scopes
	// OIDCScopeAPIRead and OIDCScopeAPIWrite; a token gets those it asked
	// for (none without a scope parameter).
	OIDCFleetClientID = "fleet"
	// OIDCFleetPostClientID is OIDCFleetClientID's twin that
	// authenticates with client_secret_post (client_id and client_secret
	// in the form body), same secret.
	OIDCFleetPostClientID = "fleet-post"
	// OIDCFleetSecret is the client secret of OIDCFleetClientID and
	// OIDCFleetPostClientID.
	OIDCFleetSecret = "fleet-secret-0123456789abcdef"
	// OIDCRotatingClientID is a confidential client (client_secret_basic,
	// OIDCRotatingSecret) allowed authorization_code and refresh_token,
	// and the scopes openid, offline_access and OIDCScopeAPIRead (not
	// OIDCScopeAPIWrite: invalid_scope).
	// Its refresh tokens rotate on every use: each refresh answers a new
	// one and consumes the old one.
	OIDCRotatingClientID = "rotating"
	// OIDCRotatingSecret is the client secret of OIDCRotatingClientID.
	OIDCRotatingSecret = "rotating-secret-0123456789abcdef"
	// OIDCRedirectURL is OIDCRotatingClientID's only redirect URI. Nothing
	// listens there: LoginRefreshToken reads the code from the redirect.
	OIDCRedirectURL = "http://127.0.0.1/anyauth-callback"
)

// Scopes and defaults of the provider.
const (
	// OIDCScopeAPIRead is a scope of the resource server; access tokens
	// for it are JWTs.
	OIDCScopeAPIRead = "api:read"
	// OIDCScopeAPIWrite is the resource server's other scope, which only
	// the client-credentials clients may ask for; DPoPResource's
	// PathDPoPWrite and PathBearerWrite want it in the token, so that a
	// token with OIDCScopeAPIRead only meets a 403 insufficient_scope
	// there (a client's scope step-up, RFC 6750 section 3.1).
	OIDCScopeAPIWrite = "api:write"
	// OIDCDefaultResource is the resource indicator (the access tokens'
	// "aud") when OIDCProviderOptions.Resource is empty.
	OIDCDefaultResource = "https://api.anyauth.test/"
	// OIDCDefaultAccessTokenTTL is the access token lifetime when
	// OIDCProviderOptions.AccessTokenTTL is zero.
	OIDCDefaultAccessTokenTTL = 20 * time.Second
	// OIDCDefaultRefreshTokenTTL is the refresh token (and grant and
	// session) lifetime when OIDCProviderOptions.RefreshTokenTTL is zero.
	OIDCDefaultRefreshTokenTTL = 8 * time.Hour
)

// oidcProviderVersion is the oidc-provider release package.json pins.
const oidcProviderVersion = "9.13.3"

// oidcProviderPackage is the node package of provider.mjs.
var oidcProviderPackage = nodePackage{
	dir:     "oidcprovider",
	script:  "provider.mjs",
	pins:    map[string]string{"oidc-provider": oidcProviderVersion},
	minNode: [2]int{20, 19}, // oidc-provider 9
}

// OIDCProviderOptions configure StartOIDCProvider. The zero value is
// usable.
type OIDCProviderOptions struct {
	// AccessTokenTTL is the lifetime of access tokens (the JWTs' exp -
	// iat), rounded up to whole seconds; 0 means
	// OIDCDefaultAccessTokenTTL.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of refresh tokens, grants and
	// sessions, rounded up to whole seconds; 0 means
	// OIDCDefaultRefreshTokenTTL.
	RefreshTokenTTL time.Duration
	// Resource is the resource indicator whose access tokens are JWTs
	// with it as "aud", e.g. the URL of a resource server; "" means
	// OIDCDefaultResource. It is also the default resource: a token
	// request without a resource parameter gets a token for it. Any
	// other resource is refused (invalid_target).
	Resource string
	// DPoPNonces makes the token endpoint require a server-provided
	// nonce in DPoP proofs (RFC 9449 section 8): a proof without one is
	// answered 400 use_dpop_nonce with a DPoP-Nonce header. DPoP itself
	// is always enabled, with proofs signed with any asymmetric JWS
	// algorithm (ES256/384/512, EdDSA, RS256/384/512, PS256/384/512).
	DPoPNonces bool
}

// OIDCProvider is a running oidc-provider started by StartOIDCProvider: an
// OAuth 2.0 authorization server on http://127.0.0.1:PORT with the clients
// OIDCFleetClientID, OIDCFleetPostClientID and OIDCRotatingClientID.
//
// Access tokens for Resource are RS256 JWTs (typ "at+jwt") signed with a
// key generated at start and published at JWKSURL. Their claims are iss,
// sub (the client ID for client_credentials, the account otherwise),
// aud (Resource), iat, exp, jti, client_id and scope.
//
// Refresh tokens of OIDCRotatingClientID rotate on every use. Presenting
// one that was already used is answered invalid_grant, and oidc-provider
// then also revokes the whole grant: the refresh token that replaced it
// stops working too (invalid_grant, "grant request is invalid").
//
// Authorization requests need no person: the provider logs in the account
// of login_hint, else User, and consents to every scope asked for.
// offline_access (a refresh token) is granted only with prompt=consent,
// as OpenID Connect wants; LoginRefreshToken asks for it.
//
// TokenRequests counts the token endpoint's answers.
type OIDCProvider struct {
	Issuer   string // "http://127.0.0.1:PORT", no trailing slash
	AuthURL  string // authorization endpoint
	TokenURL string // token endpoint
	JWKSURL  string // the JSON Web Key Set of the access token signing key
	Resource string // the resource indicator: the access tokens' aud

	// TLSURL is the same provider over HTTPS on another port,
	// "https://127.0.0.1:PORT2", with a certificate from a throw-away CA
	// (CACertPEM). Its discovery document still names the http
	// endpoints; it is there for clients that fetch only https URLs, like
	// mod_auth_openidc's JWKS (see JWKSURLTLS and StartOpenIDCJWKS).
	TLSURL string
	// JWKSURLTLS is JWKSURL on TLSURL.
	JWKSURLTLS string
	// CACertPEM is the PEM certificate of the CA that issued TLSURL's
	// certificate (valid for 127.0.0.1).
	CACertPEM []byte

	AccessTokenTTL  time.Duration // lifetime of access tokens
	RefreshTokenTTL time.Duration // lifetime of refresh tokens
	DPoPNonces      bool          // see OIDCProviderOptions.DPoPNonces

	Dir     string        // temp dir: configuration, event log, logs
	Startup time.Duration // from exec until the discovery document answered

	proc
	logFile   string
	eventLog  string
	mu        sync.Mutex
	countFrom int64 // offset in eventLog where TokenRequests starts
	closeOnce sync.Once
	closeErr  error
}

// oidcProviderConfig is the configuration provider.mjs reads.
type oidcProviderConfig struct {
	Issuer          string       `json:"issuer"`
	Port            int          `json:"port"`
	TLSPort         int          `json:"tlsPort"`
	TLSCert         string       `json:"tlsCert"`
	TLSKey          string       `json:"tlsKey"`
	EventLog        string       `json:"eventLog"`
	Resource        string       `json:"resource"`
	ResourceScopes  []string     `json:"resourceScopes"`
	AccessTokenTTL  int64        `json:"accessTokenTTL"`
	RefreshTokenTTL int64        `json:"refreshTokenTTL"`
	Account         string       `json:"account"`
	DPoPNonces      bool         `json:"dpopNonces"`
	Clients         []oidcClient `json:"clients"`
}

// oidcClient is a client's registration metadata (RFC 7591 names).
type oidcClient struct {
	ClientID                string   `json:"client_id"`
	ClientSecret            string   `json:"client_secret"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Scope                   string   `json:"scope,omitempty"`
}

var oidcClients = []oidcClient{
	{
		ClientID: OIDCFleetClientID, ClientSecret: OIDCFleetSecret,
		GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{}, RedirectURIs: []string{},
		TokenEndpointAuthMethod: "client_secret_basic", Scope: OIDCScopeAPIRead + " " + OIDCScopeAPIWrite,
	},
	{
		ClientID: OIDCFleetPostClientID, ClientSecret: OIDCFleetSecret,
		GrantTypes: []string{"client_credentials"}, ResponseTypes: []string{}, RedirectURIs: []string{},
		TokenEndpointAuthMethod: "client_secret_post", Scope: OIDCScopeAPIRead + " " + OIDCScopeAPIWrite,
	},
	{
		ClientID: OIDCRotatingClientID, ClientSecret: OIDCRotatingSecret,
		GrantTypes: []string{"authorization_code", "refresh_token"}, ResponseTypes: []string{"code"},
		RedirectURIs: []string{OIDCRedirectURL}, TokenEndpointAuthMethod: "client_secret_basic",
		// The scopes it could ask for before OIDCScopeAPIWrite existed.
		Scope: "openid offline_access " + OIDCScopeAPIRead,
	},
}

// wholeSeconds is d rounded up to seconds, def if d is zero or negative.
func wholeSeconds(d, def time.Duration) int64 {
	if d <= 0 {
		d = def
	}
	return int64((d + time.Second - 1) / time.Second)
}

// StartOIDCProvider starts oidc-provider (see OIDCProvider) with node on
// a free 127.0.0.1 port and waits until its discovery document answers.
//
// The first start runs npm ci in the oidcprovider directory beside this
// file (under a file lock, so that test binaries running at once install
// once; at most 5 minutes), which needs the npm registry. The error wraps
// ErrNotInstalled when node or npm is missing or node is older than 20.19;
// TESTSERVER_NODE and TESTSERVER_NPM name other binaries.
func StartOIDCProvider(opts OIDCProviderOptions) (*OIDCProvider, error) {
	node, dir, script, err := oidcProviderPackage.prepare("oidc-provider")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	p := &OIDCProvider{
		Resource:        opts.Resource,
		AccessTokenTTL:  time.Duration(wholeSeconds(opts.AccessTokenTTL, OIDCDefaultAccessTokenTTL)) * time.Second,
		RefreshTokenTTL: time.Duration(wholeSeconds(opts.RefreshTokenTTL, OIDCDefaultRefreshTokenTTL)) * time.Second,
		DPoPNonces:      opts.DPoPNonces,
		Dir:             dir,
		logFile:         filepath.Join(dir, "provider.log"),
		eventLog:        filepath.Join(dir, "events.jsonl"),
	}
	if p.Resource == "" {
		p.Resource = OIDCDefaultResource
	}
	pki, err := writeTestPKI(dir)
	if err != nil {
		return nil, err
	}
	p.CACertPEM = pki.CACertPEM
	err = retryOnTakenPort(func(int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		tlsPort, err := freePort()
		if err != nil {
			return false, err
		}
		err = p.startOn(node, script, port, tlsPort)
		return err != nil && strings.Contains(p.Log(), "EADDRINUSE"), err
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// StartOIDCProviderForTest starts an oidc-provider with StartOIDCProvider,
// closes it when the test ends and, if the test failed, logs its output.
// Missing node or npm skips the test, or fails it when InCI.
func StartOIDCProviderForTest(t testing.TB, opts OIDCProviderOptions) *OIDCProvider {
	t.Helper()
	return forTest(t, func() (*OIDCProvider, error) { return StartOIDCProvider(opts) },
		func(p *OIDCProvider) string { return "oidc-provider log:\n" + p.Log() })
}

// startOn writes the configuration for port and tlsPort, starts node and
// waits for the discovery document and the JWKS over HTTPS.
func (p *OIDCProvider) startOn(node, script string, port, tlsPort int) error {
	p.forget()
	p.Issuer = fmt.Sprintf("http://127.0.0.1:%d", port)
	p.TLSURL = fmt.Sprintf("https://127.0.0.1:%d", tlsPort)
	cfg := oidcProviderConfig{
		Issuer:          p.Issuer,
		Port:            port,
		TLSPort:         tlsPort,
		TLSCert:         filepath.Join(p.Dir, "tls", "cert.pem"),
		TLSKey:          filepath.Join(p.Dir, "tls", "key.pem"),
		EventLog:        p.eventLog,
		Resource:        p.Resource,
		ResourceScopes:  []string{OIDCScopeAPIRead, OIDCScopeAPIWrite},
		AccessTokenTTL:  int64(p.AccessTokenTTL / time.Second),
		RefreshTokenTTL: int64(p.RefreshTokenTTL / time.Second),
		Account:         User,
		DPoPNonces:      p.DPoPNonces,
		Clients:         oidcClients,
	}
	began := time.Now()
	if err := p.startScript("oidc-provider", node, script, p.Dir, cfg, p.eventLog, p.logFile); err != nil {
		return err
	}
	var disc struct {
		Issuer                string `json:"issuer"`
		AuthorizationEndpoint string `json:"authorization_endpoint"`
		TokenEndpoint         string `json:"token_endpoint"`
		JWKSURI               string `json:"jwks_uri"`
	}
	c := &http.Client{Transport: noProxyClient.Transport, Timeout: time.Second}
	tc := &http.Client{Transport: p.tlsTransport(), Timeout: time.Second}
	err := p.ready(30*time.Second, func() error {
		resp, err := c.Get(p.Issuer + "/.well-known/openid-configuration")
		if err != nil {
			return fmt.Errorf("%w: %v", errNotReady, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: discovery: %s", errNotReady, resp.Status)
		}
		if err := json.Unmarshal(body, &disc); err != nil || disc.Issuer != p.Issuer {
			return fmt.Errorf("%w: discovery document of another server? issuer %q, %v", errNotReady, disc.Issuer, err)
		}
		resp, err = tc.Get(p.TLSURL + strings.TrimPrefix(disc.JWKSURI, p.Issuer))
		if err != nil {
			return fmt.Errorf("%w: JWKS over HTTPS: %v", errNotReady, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%w: JWKS over HTTPS: %s", errNotReady, resp.Status)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testserver: oidc-provider on %s: %w\n%s", p.Issuer, err, p.Log())
	}
	p.Startup = time.Since(began)
	p.AuthURL, p.TokenURL, p.JWKSURL = disc.AuthorizationEndpoint, disc.TokenEndpoint, disc.JWKSURI
	p.JWKSURLTLS = p.TLSURL + strings.TrimPrefix(disc.JWKSURI, p.Issuer)
	return nil
}

// tlsTransport trusts only the CA of TLSURL's certificate.
func (p *OIDCProvider) tlsTransport() *http.Transport {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(p.CACertPEM)
	return &http.Transport{Proxy: nil, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

// tail returns the last n bytes of the file at path.
func tail(path string, n int64) string {
	data, _ := os.ReadFile(path)
	if int64(len(data)) > n {
		data = data[int64(len(data))-n:]
	}
	return string(data)
}

// Log returns what node wrote on stdout and stderr.
func (p *OIDCProvider) Log() string {
	data, _ := os.ReadFile(p.logFile)
	return string(data)
}

// Close stops node and removes Dir. It is idempotent and safe to call on
// a nil OIDCProvider.
func (p *OIDCProvider) Close() error {
	if p == nil {
		return nil
	}
	p.closeOnce.Do(func() {
		p.closeErr = errors.Join(p.stop(), os.RemoveAll(p.Dir))
	})
	return p.closeErr
}

// Endpoint returns the provider's endpoint for golang.org/x/oauth2 with
// the given client authentication style.
func (p *OIDCProvider) Endpoint(style oauth2.AuthStyle) oauth2.Endpoint {
	return oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: style}
}

// ClientCredentials returns a client_credentials configuration asking for
// scopes: client OIDCFleetPostClientID when style is
// oauth2.AuthStyleInParams, else OIDCFleetClientID with
// oauth2.AuthStyleInHeader. (An auto-detecting style would cost the post
// client one invalid_client answer before it tries the body.)
func (p *OIDCProvider) ClientCredentials(style oauth2.AuthStyle, scopes ...string) *clientcredentials.Config {
	c := &clientcredentials.Config{
		ClientID:     OIDCFleetClientID,
		ClientSecret: OIDCFleetSecret,
		TokenURL:     p.TokenURL,
		Scopes:       scopes,
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	if style == oauth2.AuthStyleInParams {
		c.ClientID, c.AuthStyle = OIDCFleetPostClientID, style
	}
	return c
}

// AuthCodeConfig returns the authorization-code configuration of
// OIDCRotatingClientID, with the scopes openid, offline_access and
// OIDCScopeAPIRead and the redirect URL OIDCRedirectURL.
func (p *OIDCProvider) AuthCodeConfig() *oauth2.Config {
	return &oauth2.Config{
		ClientID:     OIDCRotatingClientID,
		ClientSecret: OIDCRotatingSecret,
		Endpoint:     p.Endpoint(oauth2.AuthStyleInHeader),
		RedirectURL:  OIDCRedirectURL,
		Scopes:       []string{"openid", "offline_access", OIDCScopeAPIRead},
	}
}

// HTTPClient is a client for the provider, on Issuer and on TLSURL (it
// trusts CACertPEM): no proxy, no idle connections left behind. Put it in
// a context under oauth2.HTTPClient.
func (p *OIDCProvider) HTTPClient() *http.Client {
	return &http.Client{Transport: p.tlsTransport(), Timeout: noProxyClient.Timeout}
}

// LoginRefreshToken runs the authorization-code flow of
// OIDCRotatingClientID for User, with PKCE (S256) and prompt=consent,
// through the provider's real authorization endpoint, and exchanges the
// code. The token holds a refresh token, a JWT access token for Resource
// and, in Extra("id_token"), an ID token. The exchange counts as one
// successful authorization_code request in TokenRequests.
func (p *OIDCProvider) LoginRefreshToken(ctx context.Context) (*oauth2.Token, error) {
	return p.login(ctx, User)
}

// login is LoginRefreshToken for account.
func (p *OIDCProvider) login(ctx context.Context, account string) (*oauth2.Token, error) {
	conf := p.AuthCodeConfig()
	code, verifier, err := p.authorize(ctx, conf, account)
	if err != nil {
		return nil, err
	}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, noProxyClient), code, verifier)
	if err != nil {
		return nil, fmt.Errorf("testserver: code exchange: %w", err)
	}
	if tok.RefreshToken == "" {
		return nil, errors.New("testserver: code exchange answered no refresh token")
	}
	return tok, nil
}

// AuthorizationCode runs the authorization request of AuthCodeConfig for
// User, with PKCE (S256), prompt=consent and opts, through the provider's
// real authorization endpoint, and returns the code and the option that
// carries its PKCE verifier, for the caller's own exchange:
//
//	tok, err := p.AuthCodeConfig().Exchange(ctx, code, verifier)
func (p *OIDCProvider) AuthorizationCode(ctx context.Context, opts ...oauth2.AuthCodeOption) (code string, verifier oauth2.AuthCodeOption, err error) {
	return p.authorize(ctx, p.AuthCodeConfig(), User, opts...)
}

// authorize is AuthorizationCode for conf and account.
func (p *OIDCProvider) authorize(ctx context.Context, conf *oauth2.Config, account string, opts ...oauth2.AuthCodeOption) (string, oauth2.AuthCodeOption, error) {
	v := oauth2.GenerateVerifier()
	var nonce [16]byte
	_, _ = rand.Read(nonce[:])
	state := hex.EncodeToString(nonce[:])
	authURL := conf.AuthCodeURL(state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(v),
		oauth2.SetAuthURLParam("prompt", "consent"), oauth2.SetAuthURLParam("login_hint", account)}, opts...)...)
	jar, err := cookiejar.New(nil)
	if err != nil {
		return "", nil, err
	}
	browser := &http.Client{
		Transport: noProxyClient.Transport,
		Timeout:   noProxyClient.Timeout,
		Jar:       jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if strings.HasPrefix(req.URL.String(), OIDCRedirectURL) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("more than 10 redirects")
			}
			return nil
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", nil, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("testserver: authorization request: %w", err)
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil || !strings.HasPrefix(loc.String(), OIDCRedirectURL) {
		return "", nil, fmt.Errorf("testserver: authorization request ended with %s, not a redirect to %s: %q", resp.Status, OIDCRedirectURL, body)
	}
	q := loc.Query()
	if e := q.Get("error"); e != "" {
		return "", nil, fmt.Errorf("testserver: authorization request: %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != state || q.Get("code") == "" {
		return "", nil, fmt.Errorf("testserver: authorization response without code or with another state: %s", redactQuery(loc))
	}
	return q.Get("code"), oauth2.VerifierOption(v), nil
}

// redactQuery is u without the value of code.
func redactQuery(u *url.URL) string {
	q := u.Query()
	if q.Has("code") {
		q.Set("code", "REDACTED")
	}
	r := *u
	r.RawQuery = q.Encode()
	return r.String()
}

// OIDCTokenCounts counts the answers of an OIDCProvider's token endpoint.
// The provider writes one line per answer before sending it, so a count
// taken after a response arrived includes it, whichever process sent the
// request.
type OIDCTokenCounts struct {
	// Success counts the tokens issued, by grant_type
	// ("client_credentials", "authorization_code", "refresh_token").
	Success map[string]int
	// Errors counts the error answers by grant_type ("" when the request
	// had none).
	Errors map[string]int
	// ErrorCodes counts the error answers by OAuth error code
	// ("invalid_grant", "invalid_client", "use_dpop_nonce", ...).
	ErrorCodes map[string]int
	// Details counts the error answers by code and oidc-provider's
	// error_detail, which the answer itself does not carry, e.g.
	// "invalid_grant: refresh token already used" (a rotated refresh
	// token again), "invalid_grant: refresh token not found" (unknown, or
	// its grant was revoked), "invalid_client: invalid secret provided".
	Details map[string]int
	// InvalidGrant is ErrorCodes["invalid_grant"]: e.g. a refresh token
	// used twice, expired, revoked or unknown.
	InvalidGrant int
	// GrantsRevoked counts the grants revoked: by the token endpoint when
	// a rotated refresh token is used again, or at the revocation
	// endpoint.
	GrantsRevoked int
}

// Successes is the number of tokens issued, all grant types.
func (c OIDCTokenCounts) Successes() int { return sum(c.Success) }

// Failures is the number of error answers, all grant types.
func (c OIDCTokenCounts) Failures() int { return sum(c.Errors) }

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Sub returns c minus earlier: what happened between two snapshots.
// Zero entries are dropped.
func (c OIDCTokenCounts) Sub(earlier OIDCTokenCounts) OIDCTokenCounts {
	return OIDCTokenCounts{
		Success:       diffCounts(c.Success, earlier.Success),
		Errors:        diffCounts(c.Errors, earlier.Errors),
		ErrorCodes:    diffCounts(c.ErrorCodes, earlier.ErrorCodes),
		Details:       diffCounts(c.Details, earlier.Details),
		InvalidGrant:  c.InvalidGrant - earlier.InvalidGrant,
		GrantsRevoked: c.GrantsRevoked - earlier.GrantsRevoked,
	}
}

// String is a compact form for test messages (without Details), e.g.
// "success{client_credentials:2} errors{refresh_token:1} codes{invalid_grant:1} revoked 1".
func (c OIDCTokenCounts) String() string {
	var b strings.Builder
	for _, part := range []struct {
		name string
		m    map[string]int
	}{{"success", c.Success}, {"errors", c.Errors}, {"codes", c.ErrorCodes}} {
		keys := make([]string, 0, len(part.m))
		for k := range part.m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		fmt.Fprintf(&b, "%s{", part.name)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s:%d", k, part.m[k])
		}
		b.WriteString("} ")
	}
	fmt.Fprintf(&b, "revoked %d", c.GrantsRevoked)
	return b.String()
}

// TokenRequests counts the token endpoint's answers since the start or
// the last Reset. For counts per test case among concurrent tests, take
// two snapshots and Sub them instead of calling Reset.
func (p *OIDCProvider) TokenRequests() OIDCTokenCounts {
	p.mu.Lock()
	from := p.countFrom
	p.mu.Unlock()
	c, _ := p.readEvents(from)
	return c
}

// Reset makes TokenRequests count from now on.
func (p *OIDCProvider) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, end := p.readEvents(p.countFrom)
	p.countFrom = end
}

// readEvents counts the complete lines of the event log from offset from
// and returns where they end.
func (p *OIDCProvider) readEvents(from int64) (OIDCTokenCounts, int64) {
	c := OIDCTokenCounts{Success: map[string]int{}, Errors: map[string]int{}, ErrorCodes: map[string]int{}, Details: map[string]int{}}
	events, end := eventLines[struct {
		Event     string `json:"event"`
		GrantType string `json:"grant_type"`
		Error     string `json:"error"`
		Detail    string `json:"error_detail"`
	}](p.eventLog, from)
	for _, e := range events {
		switch e.Event {
		case "grant.success":
			c.Success[e.GrantType]++
		case "grant.error":
			c.Errors[e.GrantType]++
			c.ErrorCodes[e.Error]++
			if e.Detail != "" {
				c.Details[e.Error+": "+e.Detail]++
			} else {
				c.Details[e.Error]++
			}
			if e.Error == "invalid_grant" {
				c.InvalidGrant++
			}
		case "grant.revoked":
			c.GrantsRevoked++
		}
	}
	return c, end
}
