package schemes

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
)

// This file holds what Discovery learned about one resource, and the
// scope step-up: a resource that answers 403 with error="insufficient_scope"
// and the scope it wants (RFC 6750 §3.1, as the Model Context Protocol's
// authorization uses it) gets a token for the scopes held so far and the
// ones asked for, and the request goes again with it, once per request.

// discoveredResource is one resource at one allowed issuer: its token
// endpoint, and the answer for the widest scopes asked for so far. Its
// sessions (discoverySession) follow the answer when the scopes widen.
type discoveredResource struct {
	d                          *Discovery
	issuer, tokenURL, resource string
	origin                     string // the origin the tokens go to

	mu     sync.Mutex
	scopes []string       // asked for so far, sorted, no duplicates
	answer anyauth.Scheme // a Bearer or DPoP for scopes
	gen    int            // counts the answers made: a session's answer is current when its gen is
}

// current returns the answer for the scopes asked for so far, and its
// generation.
func (r *discoveredResource) current() (anyauth.Scheme, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.answer, r.gen
}

// widen adds scopes to those asked for and, when one is new, makes the
// answer for all of them. It reports whether the answer changed.
func (r *discoveredResource) widen(scopes []string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	union := unionScopes(r.scopes, scopes)
	if len(union) == len(r.scopes) {
		return false
	}
	r.scopes = union
	r.answer = r.d.newAnswer(r.issuer, r.tokenURL, r.resource, r.origin, union)
	r.gen++
	return true
}

// unionScopes returns the sorted union of a and b, without duplicates or
// empty names; a is sorted and without duplicates already.
func unionScopes(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if s == "" {
			continue
		}
		if i, found := slices.BinarySearch(out, s); !found {
			out = slices.Insert(out, i, s)
		}
	}
	return out
}

// maxStepUpScopes bounds the scopes one resource may ask for, so that a
// resource cannot grow a token request without end.
const maxStepUpScopes = 64

// discoverySession answers one protection space with the resource's
// current answer: after a step-up, its next leg begins a session of the
// widened answer.
type discoverySession struct {
	r       *discoveredResource
	attempt anyauth.Attempt // Space and Logger, for beginning again

	mu    sync.Mutex
	inner anyauth.Session
	gen   int
}

// current returns the session of the resource's current answer, and
// the answer's generation. The session of an answer is begun once, when
// the answer changed since the last.
func (s *discoverySession) current(ctx context.Context) (anyauth.Session, int, error) {
	answer, gen := s.r.current()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inner != nil && s.gen == gen {
		return s.inner, gen, nil
	}
	a := s.attempt
	inner, err := answer.Begin(ctx, &anyauth.Challenge{Scheme: answer.Name()}, &a)
	if err != nil {
		return nil, 0, err
	}
	s.inner, s.gen = inner, gen
	return inner, gen, nil
}

// start starts a leg of the resource's current answer, and returns it
// with the answer's generation.
func (s *discoverySession) start(ctx context.Context, req *http.Request) (anyauth.Leg, int, error) {
	inner, gen, err := s.current(ctx)
	if err != nil {
		return nil, 0, err
	}
	leg, err := inner.Start(ctx, req)
	return leg, gen, err
}

// Start starts a leg of the current answer.
func (s *discoverySession) Start(ctx context.Context, req *http.Request) (anyauth.Leg, error) {
	leg, gen, err := s.start(ctx, req)
	if err != nil {
		return nil, err
	}
	return &discoveryLeg{swappableLeg: swappableLeg{leg}, s: s, gen: gen}, nil
}

func (s *discoverySession) String() string {
	return "Discovery session for " + s.r.resource + " (token REDACTED)"
}
func (s *discoverySession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// discoveryLeg is the leg of the current answer, which it replaces by the
// widened answer's on an insufficient_scope refusal, once.
type discoveryLeg struct {
	swappableLeg
	s       *discoverySession
	gen     int // the generation of inner's answer
	stepped bool
}

func (l *discoveryLeg) Continue(ctx context.Context, resp *http.Response, c *anyauth.Challenge) (bool, error) {
	return l.inner.Continue(ctx, resp, c)
}

// RetryAfterResponse steps up on a 403 whose Bearer or DPoP challenge says
// error="insufficient_scope" and names scopes the token was not asked
// for: the resource's answer widens to them and the request goes again
// with a token of the widened answer. Once per request; never with
// Discovery.NoStepUp, nor when the scopes named were asked for already
// (the server refuses for another reason, and its 403 is returned).
func (l *discoveryLeg) RetryAfterResponse(ctx context.Context, resp *http.Response, _ func(int) ([]byte, error)) (bool, error) {
	if l.stepped || l.s.r.d.NoStepUp || resp.StatusCode != http.StatusForbidden {
		return false, nil
	}
	scopes := insufficientScope(resp)
	if len(scopes) == 0 || len(scopes) > maxStepUpScopes {
		return false, nil
	}
	l.stepped = true
	l.s.r.widen(scopes)
	if _, now := l.s.r.current(); now == l.gen {
		return false, nil // asked for already: refused for another reason
	}
	if log := l.s.attempt.Logger; log != nil {
		log.Debug("discovery: stepping up the token's scopes", "resource", l.s.r.resource, "asked", strings.Join(scopes, " "))
	}
	leg, gen, err := l.s.start(ctx, resp.Request)
	if err != nil {
		return false, err
	}
	l.swap(leg)
	l.gen = gen
	return true, nil
}

func (l *discoveryLeg) String() string             { return "Discovery leg (token REDACTED)" }
func (l *discoveryLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }

var _ anyauth.RetryingLeg = (*discoveryLeg)(nil)
var _ anyauth.EndingLeg = (*discoveryLeg)(nil)

// insufficientScope returns the scopes of resp's Bearer or DPoP challenge
// with error="insufficient_scope", or nil.
func insufficientScope(resp *http.Response) []string {
	for _, c := range anyauth.ParseChallenges(resp.Header.Values("WWW-Authenticate")...) {
		if (strings.EqualFold(c.Scheme, "Bearer") || strings.EqualFold(c.Scheme, "DPoP")) && c.Param("error") == "insufficient_scope" {
			return strings.Fields(c.Param("scope"))
		}
	}
	return nil
}
