package anyauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
)

// Strength orders the challenges that a Transport can answer: higher is
// stronger. The Selector tries the strongest first and never falls back to
// a weaker one after an answer was rejected.
type Strength int

// Base strengths of the standard schemes. A scheme may add up to 99 to its
// base to rank variants of itself (Digest ranks its algorithms and qop
// values this way); a custom scheme picks any value, for example
// StrengthDigest+50 to rank between Digest SHA-256 and Bearer.
const (
	StrengthBasic     Strength = 100
	StrengthDigest    Strength = 200
	StrengthBearer    Strength = 300
	StrengthNegotiate Strength = 400
)

// A Scheme answers challenges of one HTTP authentication scheme. It is
// the plug-in point of the Transport: Basic, Digest, Bearer and Negotiate
// are Schemes, and so is any custom scheme a user writes.
//
// A Scheme must be safe for concurrent use.
type Scheme interface {
	// Name returns the auth-scheme token this Scheme answers, such as
	// "Digest". Challenges are matched to it case-insensitively.
	Name() string

	// Strength reports how strong an answer to c would be, and false when
	// this Scheme cannot answer c (an unknown algorithm, say). It must not
	// block or look up credentials.
	Strength(c *Challenge) (Strength, bool)

	// Begin starts answering c for the request and protection space in a.
	// It returns the Session that builds the header values, or an error.
	// An error wrapping ErrNoCredentials means "nothing to answer with":
	// the Transport then tries the next challenge. Any other error ends the
	// request when no other challenge can be answered.
	Begin(ctx context.Context, c *Challenge, a *Attempt) (Session, error)
}

// An Attempt describes what a Scheme is asked to answer.
type Attempt struct {
	// Request is the outgoing request the answer is for. It is the
	// Transport's clone: a Scheme reads it and never modifies it. When
	// the body can be read again, Request.GetBody is set.
	Request *http.Request

	// Space is the protection space of the challenge.
	Space ProtectionSpace

	// Credentials looks up credentials: the Transport's origin provider
	// for a 401, its proxy provider for a 407. It is never nil.
	Credentials CredentialProvider

	// Logger receives the Scheme's diagnostics. It is never nil. Nothing
	// secret may be logged.
	Logger *slog.Logger

	// Rejected is the Session of the same scheme and realm whose answer
	// the server has just refused on this request, or nil. A Scheme may
	// carry state over from it: Digest keeps counting nc when the server
	// keeps its opaque, as Apache's AuthDigestNcCheck requires.
	Rejected Session
}

// A Session holds what a Scheme learned from one challenge in one
// protection space: the credentials it looked up and any server state
// (a Digest nonce, say). The Transport keeps a Session once it succeeded
// and calls Authorize for every later request in its space, possibly from
// many goroutines at once, so a Session must be safe for concurrent use.
type Session interface {
	// Authorize returns the value of the Authorization (or
	// Proxy-Authorization) header for req. req is read only; when its body
	// can be read again req.GetBody is set, and Authorize may read it
	// (Digest auth-int hashes it).
	Authorize(req *http.Request) (string, error)

	// Refresh is called when a request that carried this Session's answer
	// met a new challenge c of the same scheme in the same space. It
	// returns true when c asks for a retry with the same credentials
	// (Digest stale=true) and the Session has adopted c; the Transport
	// then retries once without counting a rejection. Otherwise it returns
	// false and the answer counts as rejected.
	Refresh(c *Challenge) bool

	// Complete inspects the final response to a request that carried this
	// Session's answer (Digest reads Authentication-Info, Negotiate the
	// mutual token). It must not read the body. A non-nil error fails the
	// request: the Transport closes resp and returns the error.
	Complete(resp *http.Response) error
}

// CleartextScheme is implemented by schemes whose header carries a
// reusable secret readable by anyone on the path (Basic, Bearer). The
// Transport refuses to send them over plain http to a host that is not a
// loopback address unless Transport.AllowCleartext permits it.
type CleartextScheme interface {
	Scheme
	// RevealsSecret reports whether the header built for c gives away a
	// reusable secret to whoever reads it.
	RevealsSecret() bool
}

// A Scoper is implemented by schemes whose challenges say which paths
// their protection space covers (Digest's domain parameter). Without it a
// space covers the directory of the challenged request (RFC 7617 §2.2).
type Scoper interface {
	Scheme
	// Scope returns the path prefixes on the origin of u (the challenged
	// request's URL) that c's protection space covers. Paths on other
	// origins must be left out: credentials never cross an origin.
	Scope(c *Challenge, u *url.URL) []string
}
