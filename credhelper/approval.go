package credhelper

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"

	"github.com/anyauth/anyauth"
)

// An Approver is told what became of the credentials a provider gave: as
// git calls "git credential approve" once a credential worked, and
// "git credential reject" once the server refused it. Git and Docker
// implement it, and so does GoAuth for its git entries. An Approver is
// told about every credential that a wrapped scheme used, whichever
// provider gave it: it acts only on those it gave itself.
//
// The Transport has no such hook of its own; WithApproval adds it by
// wrapping the schemes that answer with a user name and password.
type Approver interface {
	// Approve is called once a session's answer made with up in space
	// was accepted with a status below 400.
	Approve(ctx context.Context, space *anyauth.ProtectionSpace, up *anyauth.UserPassword) error
	// Reject is called when the server refused an answer made with up
	// in space: it challenged the same scheme and realm again.
	Reject(ctx context.Context, space *anyauth.ProtectionSpace, up *anyauth.UserPassword) error
}

// WithApproval returns schemes, each wrapped so that approvers learn
// whether the credentials it got from the Transport's provider worked:
// Approve once per session, after the first response with a status below
// 400 that accepted its answer; Reject when the server challenged the
// same scheme and realm again after an answer (a wrong password, or one
// that stopped working). A challenge of another realm, a 403, a 404 or a
// 5xx is neither. A stale Digest nonce is not a refusal either: Digest
// continues it.
//
// Wrap the schemes that answer with the provider's user name and
// password, Basic and Digest (anything else is passed to the approvers
// only if it asked the provider). A wrapped scheme keeps its name,
// strength, traits and optional interfaces (Scoper, Volunteer, EndingLeg,
// ProbingLeg), and a Digest session carried over after a refusal
// (Attempt.Rejected) reaches Digest unwrapped.
//
// The wrapper also hands the challenge being answered to the providers
// of this package through the context, so that Git passes it to
// "git credential fill" as a wwwauth[] line.
//
// Approve and Reject run on the request's goroutine, within its context;
// their errors are logged at Warn level through the Transport's Logger and
// do not fail the request.
func WithApproval(schemes []anyauth.Scheme, approvers ...Approver) []anyauth.Scheme {
	out := make([]anyauth.Scheme, len(schemes))
	for i, sc := range schemes {
		w := &approvalScheme{inner: sc, approvers: approvers}
		_, scoper := sc.(anyauth.Scoper)
		_, volunteer := sc.(anyauth.Volunteer)
		switch {
		case scoper && volunteer:
			out[i] = &approvalScoperVolunteer{w}
		case scoper:
			out[i] = &approvalScoper{w}
		case volunteer:
			out[i] = &approvalVolunteer{w}
		default:
			out[i] = w
		}
	}
	return out
}

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

// approvalScheme wraps a Scheme so that its sessions report to approvers.
type approvalScheme struct {
	inner     anyauth.Scheme
	approvers []Approver
}

// Name returns the wrapped scheme's name.
func (s *approvalScheme) Name() string { return s.inner.Name() }

// Traits returns the wrapped scheme's traits.
func (s *approvalScheme) Traits() anyauth.Traits { return s.inner.Traits() }

// Strength returns the wrapped scheme's strength.
func (s *approvalScheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return s.inner.Strength(c)
}

// Begin begins the wrapped scheme, noting the credentials it takes from
// the provider.
func (s *approvalScheme) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	rec := &recordingProvider{inner: a.Credentials, space: a.Space}
	inner := *a
	inner.Credentials = rec
	if r, ok := a.Rejected.(*approvalSession); ok {
		inner.Rejected = r.inner
	}
	session, err := s.inner.Begin(withChallenge(ctx, c), c, &inner)
	if err != nil {
		return nil, err
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &approvalSession{inner: session, space: a.Space, up: rec.got(), approvers: s.approvers, log: log}, nil
}

// String names the wrapped scheme.
func (s *approvalScheme) String() string { return "WithApproval(" + s.inner.Name() + ")" }

type approvalScoper struct{ *approvalScheme }

// Scope returns the wrapped scheme's scope.
func (s *approvalScoper) Scope(c *anyauth.Challenge, u *url.URL) []string {
	return s.inner.(anyauth.Scoper).Scope(c, u)
}

type approvalVolunteer struct{ *approvalScheme }

// Volunteers asks the wrapped scheme.
func (s *approvalVolunteer) Volunteers(u *url.URL) bool {
	return s.inner.(anyauth.Volunteer).Volunteers(u)
}

type approvalScoperVolunteer struct{ *approvalScheme }

// Scope returns the wrapped scheme's scope.
func (s *approvalScoperVolunteer) Scope(c *anyauth.Challenge, u *url.URL) []string {
	return s.inner.(anyauth.Scoper).Scope(c, u)
}

// Volunteers asks the wrapped scheme.
func (s *approvalScoperVolunteer) Volunteers(u *url.URL) bool {
	return s.inner.(anyauth.Volunteer).Volunteers(u)
}

// recordingProvider passes a scheme's questions on, and keeps what the
// provider answered for the Attempt's space.
type recordingProvider struct {
	inner anyauth.CredentialProvider
	space anyauth.ProtectionSpace

	mu sync.Mutex
	up *anyauth.UserPassword
}

// Credentials asks the wrapped provider, and keeps its answer for the
// Attempt's space.
func (r *recordingProvider) Credentials(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	up, err := r.inner.Credentials(ctx, space)
	if err == nil && up != nil && sameSpace(space, &r.space) {
		c := *up
		r.mu.Lock()
		r.up = &c
		r.mu.Unlock()
	}
	return up, err
}

func (r *recordingProvider) got() *anyauth.UserPassword {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.up
}

// String names the wrapped provider's kind only.
func (r *recordingProvider) String() string { return fmt.Sprintf("recording(%T)", r.inner) }

// Format prints String whatever the verb.
func (r *recordingProvider) Format(f fmt.State, _ rune) { io.WriteString(f, r.String()) }

// sameSpace reports whether a and b are one realm of one scheme on one
// origin or proxy.
func sameSpace(a, b *anyauth.ProtectionSpace) bool {
	return a.Proxy == b.Proxy && a.URLScheme == b.URLScheme && a.Host == b.Host && a.Port == b.Port &&
		a.Realm == b.Realm && a.AuthScheme == b.AuthScheme
}

// approvalSession is a wrapped Session: it knows the credentials its
// scheme took, and reports once whether they worked.
type approvalSession struct {
	inner     anyauth.Session
	space     anyauth.ProtectionSpace
	up        *anyauth.UserPassword // nil when the scheme did not ask
	approvers []Approver
	log       *slog.Logger

	approved sync.Once
	rejected sync.Once
}

// Start starts the wrapped session's leg.
func (s *approvalSession) Start(ctx context.Context, req *http.Request) (anyauth.Leg, error) {
	leg, err := s.inner.Start(ctx, req)
	if err != nil {
		return nil, err
	}
	l := &approvalLeg{inner: leg, s: s}
	_, ending := leg.(anyauth.EndingLeg)
	_, probing := leg.(anyauth.ProbingLeg)
	switch {
	case ending && probing:
		return &approvalEndingProbingLeg{l}, nil
	case ending:
		return &approvalEndingLeg{l}, nil
	case probing:
		return &approvalProbingLeg{l}, nil
	}
	return l, nil
}

func (s *approvalSession) approve(ctx context.Context) {
	if s.up == nil {
		return
	}
	s.approved.Do(func() {
		for _, a := range s.approvers {
			if err := a.Approve(ctx, &s.space, s.up); err != nil {
				s.log.Warn("credhelper: approve failed", slog.String("space", s.space.String()), slog.String("error", err.Error()))
			}
		}
	})
}

func (s *approvalSession) reject(ctx context.Context) {
	if s.up == nil {
		return
	}
	s.rejected.Do(func() {
		for _, a := range s.approvers {
			if err := a.Reject(ctx, &s.space, s.up); err != nil {
				s.log.Warn("credhelper: reject failed", slog.String("space", s.space.String()), slog.String("error", err.Error()))
			}
		}
	})
}

// String describes the session without its credentials.
func (s *approvalSession) String() string {
	return "WithApproval session of " + s.space.String() + " (credentials REDACTED)"
}

// Format prints String whatever the verb.
func (s *approvalSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// approvalLeg is a wrapped Leg.
type approvalLeg struct {
	inner anyauth.Leg
	s     *approvalSession
}

// Apply applies the wrapped leg.
func (l *approvalLeg) Apply(req *http.Request) error { return l.inner.Apply(req) }

// Continue asks the wrapped leg; when it does not continue and the server
// challenged the same scheme and realm again, the credentials were
// refused.
func (l *approvalLeg) Continue(ctx context.Context, resp *http.Response, c *anyauth.Challenge) (bool, error) {
	retry, err := l.inner.Continue(ctx, resp, c)
	if err == nil && !retry && c != nil {
		l.s.reject(ctx)
	}
	return retry, err
}

// Finish lets the wrapped leg check the response; when it accepts one
// below 400, the credentials worked.
func (l *approvalLeg) Finish(resp *http.Response) error {
	if err := l.inner.Finish(resp); err != nil {
		return err
	}
	if resp.StatusCode < 400 {
		ctx := context.Background()
		if resp.Request != nil {
			ctx = resp.Request.Context()
		}
		l.s.approve(ctx)
	}
	return nil
}

// String describes the leg without its credentials.
func (l *approvalLeg) String() string { return "WithApproval leg (credentials REDACTED)" }

// Format prints String whatever the verb.
func (l *approvalLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }

type approvalEndingLeg struct{ *approvalLeg }

// End ends the wrapped leg.
func (l *approvalEndingLeg) End() { l.inner.(anyauth.EndingLeg).End() }

type approvalProbingLeg struct{ *approvalLeg }

// Probing asks the wrapped leg.
func (l *approvalProbingLeg) Probing() bool { return l.inner.(anyauth.ProbingLeg).Probing() }

type approvalEndingProbingLeg struct{ *approvalLeg }

// End ends the wrapped leg.
func (l *approvalEndingProbingLeg) End() { l.inner.(anyauth.EndingLeg).End() }

// Probing asks the wrapped leg.
func (l *approvalEndingProbingLeg) Probing() bool { return l.inner.(anyauth.ProbingLeg).Probing() }
