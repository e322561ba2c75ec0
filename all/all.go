// Package all assembles every scheme of anyauth into one Transport, for a
// program that meets whatever a corporate network asks for: Negotiate
// (Kerberos, from kinit's ticket or the password given), NTLM (alone and
// inside Negotiate), Digest and Basic, and Bearer when a token source is
// given.
//
//	client := &http.Client{Transport: all.NewTransport("https://intranet.example.com", `CORP\alice`, password)}
//
// It is a package of its own because it imports every scheme package and
// so their dependencies (gokrb5, go-ntlmssp, oauth2); a program that
// needs only Basic and Digest uses schemes.NewTransport and compiles none
// of them.
package all

import (
	"net/http"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// An Option changes what NewTransport assembles.
type Option func(*options)

type options struct {
	base   http.RoundTripper
	tokens oauth2.TokenSource
}

// WithBase sends through base instead of http.DefaultTransport. NTLM
// needs an *http.Transport (see anyauth.Transport.Base).
func WithBase(base http.RoundTripper) Option { return func(o *options) { o.base = base } }

// WithTokenSource adds Bearer, with tokens from src, for origin only.
// Give a source that does not cache (see schemes.NewBearerFromSource).
func WithTokenSource(src oauth2.TokenSource) Option { return func(o *options) { o.tokens = src } }

// NewTransport returns a Transport that answers the challenges of origin
// with every scheme of the library, strongest first: Negotiate with
// Kerberos (a ticket from kinit for the user wins, else a login with
// username and password; "CORP\alice", "alice@CORP.EXAMPLE" and "alice"
// are understood), Bearer (with WithTokenSource), NTLM, Digest and Basic.
// The user name and password go to origin only (anyauth.ForOrigin), and
// proxies are answered with the proxy URL's user info. Set the returned
// Transport's ProxyCredentials for other proxy credentials.
func NewTransport(origin, username, password string, opts ...Option) *anyauth.Transport {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	s := []anyauth.Scheme{
		&negotiate.Kerberos{},
		ntlm.NewNegotiate(ntlm.Options{}),
		ntlm.New(ntlm.Options{}),
		schemes.Digest{},
		schemes.Basic{},
	}
	if o.tokens != nil {
		s = append(s, schemes.NewBearerFromSource(o.tokens, origin))
	}
	return &anyauth.Transport{
		Base:        o.base,
		Schemes:     s,
		Credentials: anyauth.ForOrigin(origin, username, password),
	}
}
