package ntlm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// ErrInvalidCredentials is wrapped by errors about credentials NTLM cannot
// use (an empty user name). It is permanent (anyauth.IsPermanent).
var ErrInvalidCredentials = anyauth.ErrInvalidCredentials

// ErrMalformedChallenge is wrapped by errors about a server's NTLM
// challenge message that cannot be read.
var ErrMalformedChallenge = errors.New("ntlm: malformed challenge message")

// Options configure a Scheme.
type Options struct {
	// Domain is the domain of a user name given without one. "" sends
	// none, which most servers accept for local and default-domain
	// accounts.
	Domain string
	// Workstation is the client's NetBIOS name sent in the authenticate
	// message. "" sends none.
	Workstation string
}

// Scheme answers NTLM handshakes, under the auth-scheme name it was made
// for ("NTLM" or "Negotiate"). It is safe for concurrent use.
type Scheme struct {
	authScheme string
	strength   anyauth.Strength
	opts       Options
}

// New returns the Scheme that answers "NTLM" challenges.
func New(opts Options) *Scheme {
	return &Scheme{authScheme: "NTLM", strength: anyauth.StrengthNTLM, opts: opts}
}

// NewNegotiate returns the Scheme that answers "Negotiate" challenges with
// raw NTLM messages, as Windows clients do when Kerberos is not available.
// It ranks just below New's Scheme (anyauth.StrengthNTLM-1), so a server
// offering both gets plain NTLM, and it yields to a Kerberos Negotiate
// scheme that has credentials.
func NewNegotiate(opts Options) *Scheme {
	return &Scheme{authScheme: "Negotiate", strength: anyauth.StrengthNTLM - 1, opts: opts}
}

// Schemes returns New(opts) and NewNegotiate(opts), for
// anyauth.Transport.Schemes.
func Schemes(opts Options) []anyauth.Scheme {
	return []anyauth.Scheme{New(opts), NewNegotiate(opts)}
}

// Name returns "NTLM" or "Negotiate".
func (s *Scheme) Name() string { return s.authScheme }

// Traits reports that NTLM is connection-bound and never sent before a
// challenge.
func (s *Scheme) Traits() anyauth.Traits {
	return anyauth.Traits{ConnectionBound: true, NeverPreemptive: true}
}

// Strength ranks a challenge that opens a handshake (one without a
// token). A challenge that carries a token answers a leg this request did
// not send, and is not answered.
func (s *Scheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	if c.Token68 != "" || len(c.Params) > 0 {
		return 0, false
	}
	return s.strength, true
}

// Begin looks up the credentials of the challenge's protection space.
func (s *Scheme) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	if up == nil {
		return nil, fmt.Errorf("ntlm: %w: the provider returned none", anyauth.ErrNoCredentials)
	}
	user, domain := splitUser(up.Username, s.opts.Domain)
	if user == "" {
		return nil, fmt.Errorf("ntlm: %w: empty user name", ErrInvalidCredentials)
	}
	return &session{
		scheme:       s,
		user:         user,
		domain:       domain,
		password:     up.Password,
		answerHeader: a.Space.AnswerHeader(),
	}, nil
}

// splitUser splits "DOMAIN\user" and "user@domain"; a bare name gets
// defaultDomain.
func splitUser(name, defaultDomain string) (user, domain string) {
	if d, u, ok := strings.Cut(name, `\`); ok {
		return u, d
	}
	if i := strings.LastIndexByte(name, '@'); i > 0 {
		return name[:i], name[i+1:]
	}
	return name, defaultDomain
}

// session holds one identity's credentials for a protection space.
type session struct {
	scheme       *Scheme
	user         string
	domain       string
	password     string
	answerHeader string
}

// String names the identity without the password.
func (s *session) String() string {
	return fmt.Sprintf("ntlm session{%s\\%s}", s.domain, s.user)
}

// Format prints String whatever the verb.
func (s *session) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// Start begins a handshake: its first leg is the negotiate message.
func (s *session) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return &leg{s: s}, nil
}
