package schemes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
)

// Registry answers the Bearer challenges of container registries, the
// token authentication of the Docker Registry HTTP API v2 that Docker
// Hub, GHCR, Quay, Harbor, GitLab and distribution's registry use:
//
//	WWW-Authenticate: Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull"
//
// It asks the token server at realm for a token for that service and
// scope (GET realm?service=…&scope=…), with the registry's user name and
// password from the Transport's Credentials (credhelper.DockerConfig
// reads docker login's), or anonymously when there are none, and answers
// with the token. When the registry then asks for more
// (error="insufficient_scope", a push after a pull), a token for the new
// scope is fetched and the request goes again, once per scope.
//
// Tokens are cached per registry, token server, service, scope and
// identity (the user and a hash of the password), and renewed before they
// expire, as a Bearer's are; none is sent to another registry than the
// one that challenged for it.
//
// The registry's password goes only to a token server on the
// registry's own origin or listed in Realms, over https (or http to a
// loopback host): a registry cannot have it sent elsewhere by naming
// another realm. A realm not allowed is not asked, and the registry's
// 401 is returned.
//
// Not done: the token server's OAuth 2 form (a POST with a refresh token,
// docker login's "identity token") and offline tokens. A registry that
// challenges with Basic instead is answered by schemes.Basic with the same
// credentials.
//
// A Registry must not be copied after first use.
type Registry struct {
	// Realms are the token servers' origins, besides the registry's
	// own, that may be sent the registry's credentials and asked for
	// tokens: Docker Hub's is "https://auth.docker.io".
	Realms anyauth.Origins
	// HTTPClient makes the token requests; nil means a client on
	// http.DefaultTransport that follows no redirects.
	HTTPClient *http.Client

	mu     sync.Mutex
	tokens map[string]*Bearer // by registry, realm, service, scope and identity
}

// maxRegistryTokens bounds the token caches a Registry keeps; past it,
// it starts again empty.
const maxRegistryTokens = 1024

// maxRegistryTokenAnswer bounds a token server's answer.
const maxRegistryTokenAnswer = 1 << 20

// defaultRegistryTokenLifetime is a token's lifetime when the token
// server gives none (the spec's default).
const defaultRegistryTokenLifetime = 60 * time.Second

// Name returns "Bearer".
func (*Registry) Name() string { return "Bearer" }

// Traits: a token is a reusable secret.
func (*Registry) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Strength answers Bearer challenges with a realm and a service, a little
// above a plain Bearer's, so that a Registry beside a Bearer answers the
// registry's challenges.
func (*Registry) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	if c.Token68 != "" || c.Param("realm") == "" || c.Param("service") == "" {
		return 0, false
	}
	return anyauth.StrengthBearer + 1, true
}

// Begin checks the challenge's realm, takes the registry's credentials
// (none: anonymous) and begins answering with tokens for the
// challenge's scope.
func (r *Registry) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if a.Space.Proxy {
		return nil, fmt.Errorf("registry: %w: a proxy's challenge", anyauth.ErrNoCredentials)
	}
	realm, err := r.allowedRealm(c.Param("realm"), &a.Space)
	if err != nil {
		return nil, err
	}
	var up *anyauth.UserPassword
	if a.Credentials != nil {
		up, err = a.Credentials.Credentials(ctx, &a.Space)
		if err != nil && !errors.Is(err, anyauth.ErrNoCredentials) {
			return nil, err
		}
	}
	s := &registrySession{r: r, realm: realm, service: c.Param("service"), origin: a.Space.Origin(),
		attempt: anyauth.Attempt{Space: a.Space, Logger: a.Logger, Store: a.Store}}
	if up != nil {
		s.user = *up
	}
	s.scope = registryScopes(c.Param("scope"))
	if _, err := s.session(ctx, s.scope); err != nil {
		return nil, err
	}
	return s, nil
}

// allowedRealm parses realm, a token server the registry of space names:
// https (or http to a loopback host), on space's origin or in Realms.
func (r *Registry) allowedRealm(realm string, space *anyauth.ProtectionSpace) (*url.URL, error) {
	u, err := url.Parse(realm)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return nil, fmt.Errorf("registry: %w: the realm %q is not an absolute URL", anyauth.ErrNoCredentials, truncateForError(realm))
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !isLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("registry: %w: the token server %s is plain http", anyauth.ErrNoCredentials, safeLink(u))
		}
	default:
		return nil, fmt.Errorf("registry: %w: the token server %s is not http(s)", anyauth.ErrNoCredentials, safeLink(u))
	}
	if originOfURL(u) != space.Origin() && !r.Realms.AllowsURL(u) {
		return nil, fmt.Errorf("registry: %w: the token server %s is neither the registry's origin nor in Registry.Realms", anyauth.ErrNoCredentials, safeLink(u))
	}
	return u, nil
}

// registryScopes splits a challenge's scope into its scopes (the spec
// separates several by spaces), each with its actions sorted
// ("repository:team/app:pull,push", which distribution writes in either
// order), sorted, without duplicates.
func registryScopes(scope string) []string {
	s := strings.Fields(scope)
	for i, one := range s {
		// type:name:actions, where the name may hold a colon (a port).
		typ, rest, ok1 := strings.Cut(one, ":")
		j := strings.LastIndexByte(rest, ':')
		if !ok1 || j < 0 {
			continue
		}
		actions := strings.Split(rest[j+1:], ",")
		slices.Sort(actions)
		s[i] = typ + ":" + rest[:j] + ":" + strings.Join(slices.Compact(actions), ",")
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// tokenCache returns the Bearer that caches the tokens of realm, service
// and scopes for user, sent to origin only.
func (r *Registry) tokenCache(realm *url.URL, service string, scopes []string, user anyauth.UserPassword, origin string) *Bearer {
	sum := sha256.Sum256([]byte(user.Password))
	key := strings.Join([]string{origin, realm.String(), service, strings.Join(scopes, " "), user.Username, hex.EncodeToString(sum[:])}, "\x00")
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.tokens[key]; b != nil {
		return b
	}
	if r.tokens == nil || len(r.tokens) >= maxRegistryTokens {
		r.tokens = map[string]*Bearer{}
	}
	b := NewBearer(func(ctx context.Context) (*oauth2.Token, error) {
		return r.fetch(ctx, realm, service, scopes, user)
	}, origin)
	r.tokens[key] = b
	return b
}

// RegistryTokenError is a token server's refusal. It wraps an
// *oauth2.RetrieveError with the answer's status and headers (not its
// body), so that the token cache treats it as a Bearer's token endpoint:
// a 429 or 503 is retried after its Retry-After, and another 4xx is
// permanent (anyauth.IsPermanent) and not asked again for
// Bearer.MinRefreshInterval.
type RegistryTokenError struct {
	// Realm is the token server's URL, without its query.
	Realm string
	// StatusCode is its answer's status.
	StatusCode int
	// Anonymous tells that no credentials were sent.
	Anonymous bool

	header http.Header
}

// Unwrap returns the refusal as an *oauth2.RetrieveError.
func (e *RegistryTokenError) Unwrap() error {
	return &oauth2.RetrieveError{Response: &http.Response{StatusCode: e.StatusCode, Status: fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode)), Header: e.header}}
}

// Error names the token server and its status, never a credential.
func (e *RegistryTokenError) Error() string {
	who := "with the registry's credentials"
	if e.Anonymous {
		who = "anonymously"
	}
	return fmt.Sprintf("registry: the token server %s answered %d when asked %s", e.Realm, e.StatusCode, who)
}

// fetch asks the token server for a token.
func (r *Registry) fetch(ctx context.Context, realm *url.URL, service string, scopes []string, user anyauth.UserPassword) (*oauth2.Token, error) {
	u := *realm
	q := u.Query()
	q.Set("service", service)
	for _, s := range scopes {
		q.Add("scope", s)
	}
	if user.Username != "" {
		q.Set("account", user.Username)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if user.Username != "" || user.Password != "" {
		req.SetBasicAuth(user.Username, user.Password)
	}
	client := r.HTTPClient
	if client == nil {
		client = noRedirectClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry: asking the token server %s: %w", safeLink(realm), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxRegistryTokenAnswer))
		return nil, &RegistryTokenError{Realm: safeLink(realm), StatusCode: resp.StatusCode, Anonymous: user.Username == "" && user.Password == "",
			header: http.Header{"Retry-After": resp.Header.Values("Retry-After")}}
	}
	var answer struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		IssuedAt    string `json:"issued_at"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRegistryTokenAnswer)).Decode(&answer); err != nil {
		return nil, fmt.Errorf("registry: the token server %s answered no JSON token: %w", safeLink(realm), errors.New("unreadable answer"))
	}
	tok := answer.Token
	if tok == "" {
		tok = answer.AccessToken
	}
	if tok == "" || strings.ContainsAny(tok, " \t\r\n\"") {
		return nil, fmt.Errorf("registry: the token server %s answered no usable token", safeLink(realm))
	}
	life := time.Duration(answer.ExpiresIn) * time.Second
	if answer.ExpiresIn <= 0 {
		life = defaultRegistryTokenLifetime
	}
	start := time.Now()
	if t, err := time.Parse(time.RFC3339, answer.IssuedAt); err == nil && t.Before(start) && start.Sub(t) < life {
		start = t
	}
	return &oauth2.Token{AccessToken: tok, TokenType: "Bearer", Expiry: start.Add(life)}, nil
}

// String describes r without any token.
func (r *Registry) String() string {
	return fmt.Sprintf("Registry{Realms:%v}", []string(r.Realms))
}

// Format prints String whatever the verb.
func (r *Registry) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }
