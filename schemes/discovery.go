package schemes

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Discovery answers Bearer challenges that say where to learn how to get
// a token (RFC 9728): "WWW-Authenticate: Bearer resource_metadata=URL".
// It needs only a client ID and secret and the authorization servers it
// trusts; the rest comes from the challenge:
//
//  1. the protected resource's metadata at resource_metadata (or, for a
//     challenge without it, at the well-known URLs of the requested
//     origin: see NoProbe), whose "resource" must be the URL requested
//     (or a path prefix of it on the same origin);
//  2. the first of its "authorization_servers" that is in Issuers, and
//     that server's metadata (RFC 8414, or OpenID Connect discovery),
//     whose "issuer" must be the one asked for;
//  3. a token from its token endpoint with the client credentials grant
//     and the resource as the "resource" parameter (RFC 8707), or from
//     Sources for that issuer;
//
// and then answers as a Bearer (or, with DPoPKey, as a DPoP) scoped to the
// resource's origin, caching and refreshing the token like one, for every
// path of the resource once its metadata is known (see Scope). A 403
// insufficient_scope gets a token for the wider scope (see NoStepUp). Metadata
// documents are cached by their Cache-Control max-age or Expires (a day
// at most, not at all with no-store or no-cache), at most 256 KiB each
// and fetched within 10 s.
//
// Its rules, each refused with an error wrapping ErrDiscoveryRefused:
// the client secret goes only to the token endpoint of an allowed
// issuer; metadata on another origin than the resource is refused unless
// AllowCrossOriginMetadata; metadata naming another resource is refused;
// discovery follows no http URL except to loopback hosts.
//
// A Discovery must not be copied after first use.
type Discovery struct {
	// ClientID and ClientSecret are the client's credentials at every
	// allowed issuer.
	ClientID, ClientSecret string
	// Scopes to ask for first; nil asks for the scopes of the first
	// challenge's "scope" parameter, else the resource's
	// "scopes_supported", else none (the Model Context Protocol's order).
	Scopes []string
	// NoStepUp turns off the scope step-up: by default, a 403 whose
	// challenge says error="insufficient_scope" and names scopes not
	// asked for yet gets a token for them too (RFC 6750 §3.1), and the
	// request goes again with it, once per request; later requests to the
	// resource use the wider token. The tokens stay bound to the resource
	// (RFC 8707), and the issuer decides what it grants.
	NoStepUp bool
	// Issuers are the authorization servers (their issuer identifiers,
	// "https://as.example") that may be sent the client's credentials.
	Issuers []string
	// Sources, when one is set for an issuer, fetch its tokens instead
	// of the client credentials grant; resource is the resource
	// identifier of the metadata.
	Sources map[string]func(ctx context.Context, resource string) (*oauth2.Token, error)
	// DPoPKey, when set, makes Discovery answer DPoP challenges with
	// DPoP-bound tokens instead of Bearer challenges (Name "DPoP").
	DPoPKey crypto.Signer
	// AllowCrossOriginMetadata accepts resource metadata on another
	// origin than the resource's.
	AllowCrossOriginMetadata bool
	// NoProbe turns off the well-known probe: by default a challenge
	// without resource_metadata makes Discovery look for the resource's
	// metadata at the well-known URLs of the requested URL's origin, as
	// the Model Context Protocol requires (RFC 9728 §3.1): the
	// path-inserted one first (/.well-known/oauth-protected-resource/PATH),
	// then the root one. Such a challenge ranks just below a Bearer's, so
	// that a Bearer or DPoP configured for the origin answers it instead.
	// A probe that finds nothing is not made again for 5 minutes, and the
	// server's 401 is returned.
	NoProbe bool
	// HTTPClient fetches metadata and tokens; nil means a client on
	// http.DefaultTransport that follows no redirects.
	HTTPClient *http.Client
	// Store, when set, is given to every token cache Discovery makes
	// (see Bearer.Store).
	Store TokenStore

	mu        sync.Mutex
	docs      map[string]*metadataDoc        // by URL
	resources map[string]*discoveredResource // by issuer and resource
	covers    map[string]string              // resource_metadata URL → the resource it named
	absent    map[string]time.Time           // well-known URL → until when it is known to answer 404
	nonces    sync.Map                       // the DPoP nonces of every answer, by origin
}

// ErrDiscoveryRefused is wrapped by the errors of Discovery's security
// rules.
var ErrDiscoveryRefused = errors.New("discovery: refused")

// otherResourceError is metadata that names another resource than the
// one requested (RFC 9728 §3.3). It wraps ErrDiscoveryRefused.
type otherResourceError struct{ resource, target string }

func (e *otherResourceError) Error() string {
	return fmt.Sprintf("%v: the resource metadata names the resource %q, not %s (RFC 9728 §3.3)", ErrDiscoveryRefused, e.resource, e.target)
}

func (e *otherResourceError) Unwrap() error { return ErrDiscoveryRefused }

// metadataTimeout and maxMetadata bound one metadata fetch.
const (
	metadataTimeout = 10 * time.Second
	maxMetadata     = 256 << 10
	maxMetadataAge  = 24 * time.Hour
)

// Name returns "Bearer", or "DPoP" when DPoPKey is set.
func (d *Discovery) Name() string {
	if d.DPoPKey != nil {
		return "DPoP"
	}
	return "Bearer"
}

// Traits: a token is a reusable secret.
func (*Discovery) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Strength answers challenges with resource_metadata and, unless
// NoProbe, those without it one below, so that a scheme configured for
// the origin answers those first.
func (d *Discovery) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	if c.Token68 != "" {
		return 0, false
	}
	st := anyauth.StrengthBearer
	if d.DPoPKey != nil {
		st = StrengthDPoP
	}
	switch {
	case c.Param("resource_metadata") != "":
		return st, true
	case d.NoProbe:
		return 0, false
	}
	return st - 1, true
}

// Scope covers the resource's paths: once the metadata at c's
// resource_metadata has named the resource (RFC 9728 §2), a challenge
// that points to it answers for every path under the resource
// identifier, not only the challenged request's directory, so that other
// paths of the resource get the token without a 401 first. Before that,
// and for a request the resource does not cover, it covers the directory.
func (d *Discovery) Scope(c *anyauth.Challenge, u *url.URL) []string {
	d.mu.Lock()
	resource, ok := d.covers[c.Param("resource_metadata")]
	d.mu.Unlock()
	if !ok || !resourceCovers(resource, u) {
		return nil
	}
	ru, err := url.Parse(resource)
	if err != nil {
		return nil
	}
	switch p := ru.EscapedPath(); {
	case p == "" || p == "/":
		return []string{"/"}
	case p == u.EscapedPath():
		return nil // the resource is this very path: its directory
	default:
		return []string{strings.TrimSuffix(p, "/") + "/"}
	}
}

// Begin discovers how to get a token for the space's resource and begins
// answering with it.
func (d *Discovery) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if a.Space.Proxy {
		return nil, fmt.Errorf("discovery: %w: a proxy's challenge", anyauth.ErrNoCredentials)
	}
	var r *discoveredResource
	var err error
	if metaURL := c.Param("resource_metadata"); metaURL != "" {
		r, err = d.discover(ctx, metaURL, a.Request.URL, strings.Fields(c.Param("scope")))
	} else {
		r, err = d.probe(ctx, a.Request.URL, strings.Fields(c.Param("scope")))
	}
	if err != nil {
		return nil, err
	}
	s := &discoverySession{r: r, attempt: anyauth.Attempt{Space: a.Space, Logger: a.Logger, Store: a.Store}}
	if _, _, err := s.current(ctx); err != nil { // the answer's own checks
		return nil, err
	}
	return s, nil
}

// discover returns what it learned of the resource of metaURL, requested
// at target, whose challenge asked for the scopes asked.
func (d *Discovery) discover(ctx context.Context, metaURL string, target *url.URL, asked []string) (*discoveredResource, error) {
	mu, err := d.followable(metaURL)
	if err != nil {
		return nil, err
	}
	if !d.AllowCrossOriginMetadata && !anyauth.SameOrigin(mu, target) {
		return nil, fmt.Errorf("%w: the resource metadata %s is on another origin than %s (Discovery.AllowCrossOriginMetadata allows it)", ErrDiscoveryRefused, safeLink(mu), originOfURL(target))
	}
	var rm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
	}
	if err := d.metadata(ctx, mu, &rm); err != nil {
		return nil, err
	}
	if !resourceCovers(rm.Resource, target) {
		return nil, &otherResourceError{resource: truncateForError(rm.Resource), target: safeLink(target)}
	}
	d.mu.Lock()
	if d.covers == nil || len(d.covers) >= 256 {
		d.covers = map[string]string{}
	}
	d.covers[metaURL] = rm.Resource
	d.mu.Unlock()
	issuer := ""
	for _, as := range rm.AuthorizationServers {
		for _, allowed := range d.Issuers {
			if strings.TrimSuffix(as, "/") == strings.TrimSuffix(allowed, "/") {
				issuer = allowed
				break
			}
		}
		if issuer != "" {
			break
		}
	}
	if issuer == "" {
		return nil, fmt.Errorf("%w: none of the resource's authorization servers %q is in Discovery.Issuers", ErrDiscoveryRefused, truncateList(rm.AuthorizationServers))
	}
	key := issuer + "\x00" + rm.Resource
	d.mu.Lock()
	r := d.resources[key]
	d.mu.Unlock()
	if r != nil {
		if d.Scopes == nil {
			r.widen(asked)
		}
		return r, nil
	}
	tokenURL, err := d.tokenEndpoint(ctx, issuer)
	if err != nil {
		return nil, err
	}
	scopes := d.Scopes
	switch {
	case scopes != nil:
	case len(asked) > 0:
		scopes = asked
	default:
		scopes = rm.ScopesSupported
	}
	r = &discoveredResource{d: d, issuer: issuer, tokenURL: tokenURL, resource: rm.Resource, origin: originOfURL(target)}
	r.widen(scopes)
	if r.answer == nil { // no scopes
		r.answer = d.newAnswer(issuer, tokenURL, rm.Resource, r.origin, nil)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.resources == nil {
		d.resources = map[string]*discoveredResource{}
	}
	if old := d.resources[key]; old != nil {
		return old, nil
	}
	d.resources[key] = r
	return r, nil
}

// newAnswer makes the token cache that answers for resource at origin
// with tokens of scopes.
func (d *Discovery) newAnswer(issuer, tokenURL, resource, origin string, scopes []string) anyauth.Scheme {
	cfg := &clientcredentials.Config{ClientID: d.ClientID, ClientSecret: d.ClientSecret, TokenURL: tokenURL, Scopes: scopes,
		EndpointParams: url.Values{"resource": {resource}}}
	withClient := func(ctx context.Context) context.Context {
		return context.WithValue(ctx, oauth2.HTTPClient, d.client())
	}
	var b *Bearer
	var answer anyauth.Scheme
	if d.DPoPKey != nil {
		dp := NewDPoPClientCredentials(d.DPoPKey, cfg, origin)
		dp.sharedNonces = &d.nonces // a stepped-up answer knows the servers' nonces
		fetch := dp.Fetch
		dp.Fetch = func(ctx context.Context) (*oauth2.Token, error) { return fetch(withClient(ctx)) }
		b, answer = &dp.Bearer, dp
	} else {
		b = NewClientCredentialsBearer(cfg, origin)
		b.Fetch = func(ctx context.Context) (*oauth2.Token, error) { return cfg.Token(withClient(ctx)) }
		answer = b
	}
	if src := d.Sources[issuer]; src != nil {
		b.Fetch = func(ctx context.Context) (*oauth2.Token, error) { return src(withClient(ctx), resource) }
	}
	b.Store = d.Store
	return answer
}

// tokenEndpoint reads issuer's metadata (RFC 8414 §3, then OpenID
// Connect discovery) and returns its token endpoint.
func (d *Discovery) tokenEndpoint(ctx context.Context, issuer string) (string, error) {
	iu, err := d.followable(issuer)
	if err != nil {
		return "", err
	}
	var am struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
	}
	wellKnown := *iu
	wellKnown.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(iu.Path, "/")
	wellKnown.RawPath = ""
	err = d.metadata(ctx, &wellKnown, &am)
	if errors.Is(err, errNotFound) {
		oidc := *iu
		oidc.Path = strings.TrimSuffix(iu.Path, "/") + "/.well-known/openid-configuration"
		oidc.RawPath = ""
		err = d.metadata(ctx, &oidc, &am)
	}
	if err != nil {
		return "", err
	}
	if strings.TrimSuffix(am.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
		return "", fmt.Errorf("%w: the metadata of %s names the issuer %q (RFC 8414 §3.3)", ErrDiscoveryRefused, safeLink(iu), truncateForError(am.Issuer))
	}
	tu, err := d.followable(am.TokenEndpoint)
	if err != nil {
		return "", err
	}
	return tu.String(), nil
}

// followable parses a URL discovery may fetch or post to: https, or http
// to a loopback host.
func (d *Discovery) followable(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("%w: %q is not an absolute URL without user info", ErrDiscoveryRefused, truncateForError(raw))
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("%w: %s is plain http; discovery follows http only to loopback hosts", ErrDiscoveryRefused, safeLink(u))
		}
	default:
		return nil, fmt.Errorf("%w: %s: discovery follows https only", ErrDiscoveryRefused, safeLink(u))
	}
	return u, nil
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// resourceCovers reports whether the resource identifier covers target:
// the same origin, and a path that is target's or a prefix of it ending
// at a segment.
func resourceCovers(resource string, target *url.URL) bool {
	ru, err := url.Parse(resource)
	if err != nil || ru.Host == "" || ru.RawQuery != "" || ru.Fragment != "" || !anyauth.SameOrigin(ru, target) {
		return false
	}
	rp, tp := ru.EscapedPath(), target.EscapedPath()
	if rp == "" || rp == "/" || rp == tp {
		return true
	}
	return strings.HasPrefix(tp, strings.TrimSuffix(rp, "/")+"/")
}

// safeLink names a URL in an error: scheme, host and path.
func safeLink(u *url.URL) string {
	return truncateForError(u.Scheme + "://" + u.Host + u.EscapedPath())
}

func truncateList(l []string) string {
	if len(l) > 5 {
		l = l[:5]
	}
	return truncateForError(strings.Join(l, " "))
}

// client is the HTTP client of metadata and token requests.
func (d *Discovery) client() *http.Client {
	if d.HTTPClient != nil {
		return d.HTTPClient
	}
	return noRedirectClient
}

var noRedirectClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// String describes d without its secret.
func (d *Discovery) String() string {
	return fmt.Sprintf("Discovery{ClientID:%q ClientSecret:REDACTED Issuers:%q DPoP:%t}", d.ClientID, d.Issuers, d.DPoPKey != nil)
}

// Format prints String whatever the verb.
func (d *Discovery) Format(f fmt.State, _ rune) { io.WriteString(f, d.String()) }
