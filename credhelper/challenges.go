package credhelper

import (
	"context"
	"fmt"
	"io"
	"net/url"

	"github.com/anyauth/anyauth"
)

// WithChallenges returns schemes, each wrapped so that the providers of
// this package learn which challenge they are asked to answer: the
// wrapper hands it to them through the context given to the provider
// during Begin, and Git passes it to "git credential fill" as a wwwauth[]
// line. Without the wrapper Git writes that line from the protection
// space's scheme and realm, which leaves out the challenge's other
// parameters.
//
// It has nothing to do with approval: Git, Docker and GoAuth are
// anyauth.CredentialVerdicts, and the Transport tells them whether their
// credentials worked, wrapped or not.
//
// A wrapped scheme keeps its name, strength and traits, and the optional
// interfaces of the Transport (anyauth.Scoper, anyauth.Volunteer); its
// sessions and legs are the wrapped scheme's own.
func WithChallenges(schemes []anyauth.Scheme) []anyauth.Scheme {
	out := make([]anyauth.Scheme, len(schemes))
	for i, sc := range schemes {
		w := &challengeScheme{inner: sc}
		_, scoper := sc.(anyauth.Scoper)
		_, volunteer := sc.(anyauth.Volunteer)
		switch {
		case scoper && volunteer:
			out[i] = &challengeScoperVolunteer{w}
		case scoper:
			out[i] = &challengeScoper{w}
		case volunteer:
			out[i] = &challengeVolunteer{w}
		default:
			out[i] = w
		}
	}
	return out
}

// The providers of this package hear the Transport's verdicts.
var (
	_ anyauth.CredentialVerdicts = (*Git)(nil)
	_ anyauth.CredentialVerdicts = (*Docker)(nil)
	_ anyauth.CredentialVerdicts = (*GoAuth)(nil)
)

// challengeKey is the context key of the challenge being answered.
type challengeKey struct{}

// withChallenge returns ctx carrying c, for the providers of this package.
func withChallenge(ctx context.Context, c *anyauth.Challenge) context.Context {
	if c == nil {
		return ctx
	}
	return context.WithValue(ctx, challengeKey{}, c)
}

// challengeFrom returns the challenge that ctx carries, or nil.
func challengeFrom(ctx context.Context) *anyauth.Challenge {
	c, _ := ctx.Value(challengeKey{}).(*anyauth.Challenge)
	return c
}

// challengeScheme wraps a Scheme so that its Begin hands the challenge
// to the provider through the context.
type challengeScheme struct {
	inner anyauth.Scheme
}

// Name returns the wrapped scheme's name.
func (s *challengeScheme) Name() string { return s.inner.Name() }

// Traits returns the wrapped scheme's traits.
func (s *challengeScheme) Traits() anyauth.Traits { return s.inner.Traits() }

// Strength returns the wrapped scheme's strength.
func (s *challengeScheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return s.inner.Strength(c)
}

// Begin begins the wrapped scheme with c in the context.
func (s *challengeScheme) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	return s.inner.Begin(withChallenge(ctx, c), c, a)
}

// String names the wrapped scheme.
func (s *challengeScheme) String() string { return "WithChallenges(" + s.inner.Name() + ")" }

// Format prints String whatever the verb.
func (s *challengeScheme) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

type challengeScoper struct{ *challengeScheme }

// Scope returns the wrapped scheme's scope.
func (s *challengeScoper) Scope(c *anyauth.Challenge, u *url.URL) []string {
	return s.inner.(anyauth.Scoper).Scope(c, u)
}

type challengeVolunteer struct{ *challengeScheme }

// Volunteers asks the wrapped scheme.
func (s *challengeVolunteer) Volunteers(u *url.URL) bool {
	return s.inner.(anyauth.Volunteer).Volunteers(u)
}

type challengeScoperVolunteer struct{ *challengeScheme }

// Scope returns the wrapped scheme's scope.
func (s *challengeScoperVolunteer) Scope(c *anyauth.Challenge, u *url.URL) []string {
	return s.inner.(anyauth.Scoper).Scope(c, u)
}

// Volunteers asks the wrapped scheme.
func (s *challengeScoperVolunteer) Volunteers(u *url.URL) bool {
	return s.inner.(anyauth.Volunteer).Volunteers(u)
}
