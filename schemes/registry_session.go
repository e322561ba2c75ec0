package schemes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
)

// registrySession answers one protection space of a registry (a
// repository's directory) with tokens for its scope; after an
// insufficient_scope refusal it answers with the scope asked for.
type registrySession struct {
	r       *Registry
	realm   *url.URL
	service string
	origin  string
	user    anyauth.UserPassword // zero: anonymous
	attempt anyauth.Attempt      // Space and Logger, for beginning a Bearer

	mu       sync.Mutex
	scope    []string                   // the scope later requests are answered with
	sessions map[string]anyauth.Session // by scope
}

// session returns the session of the Bearer that caches the tokens of
// scope, beginning it the first time.
func (s *registrySession) session(ctx context.Context, scope []string) (anyauth.Session, error) {
	key := strings.Join(scope, " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if inner := s.sessions[key]; inner != nil {
		return inner, nil
	}
	b := s.r.tokenCache(s.realm, s.service, scope, s.user, s.origin)
	a := s.attempt
	inner, err := b.Begin(ctx, &anyauth.Challenge{Scheme: "Bearer"}, &a)
	if err != nil {
		return nil, err
	}
	if s.sessions == nil || len(s.sessions) >= maxRegistryTokens {
		s.sessions = map[string]anyauth.Session{}
	}
	s.sessions[key] = inner
	return inner, nil
}

// Start starts a leg with a token for the session's scope.
func (s *registrySession) Start(ctx context.Context, req *http.Request) (anyauth.Leg, error) {
	s.mu.Lock()
	scope := s.scope
	s.mu.Unlock()
	inner, err := s.session(ctx, scope)
	if err != nil {
		return nil, err
	}
	leg, err := inner.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	return &registryLeg{swappableLeg: swappableLeg{leg}, s: s, asked: [][]string{scope}}, nil
}

func (s *registrySession) String() string {
	return "Registry session for " + s.service + " (token REDACTED)"
}
func (s *registrySession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// maxRegistryScopesAsked bounds the scopes one request asks tokens for.
const maxRegistryScopesAsked = 4

// registryLeg is one request's answer: a token for a scope, replaced by
// one for the scope the registry asks for when it says
// insufficient_scope.
type registryLeg struct {
	swappableLeg
	s     *registrySession
	asked [][]string // the scopes this request got tokens for
}

// Continue answers an insufficient_scope challenge with a token for the
// scope it names, once per scope; later requests of the space are
// answered with that scope. Other challenges go to the token's own leg
// (invalid_token: one new token).
func (l *registryLeg) Continue(ctx context.Context, resp *http.Response, c *anyauth.Challenge) (bool, error) {
	if c == nil || c.Param("error") != "insufficient_scope" {
		return l.inner.Continue(ctx, resp, c)
	}
	scope := registryScopes(c.Param("scope"))
	if len(scope) == 0 || len(l.asked) >= maxRegistryScopesAsked ||
		slices.ContainsFunc(l.asked, func(s []string) bool { return slices.Equal(s, scope) }) {
		return false, nil
	}
	if c.Param("service") != "" && c.Param("service") != l.s.service {
		return false, nil // another service's token is another session's
	}
	inner, err := l.s.session(ctx, scope)
	if err != nil {
		return false, err
	}
	leg, err := inner.Start(ctx, resp.Request)
	if err != nil {
		return false, err
	}
	l.asked = append(l.asked, scope)
	l.swap(leg)
	l.s.mu.Lock()
	l.s.scope = scope
	l.s.mu.Unlock()
	return true, nil
}

func (l *registryLeg) String() string             { return "Registry leg (token REDACTED)" }
func (l *registryLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }
