package anyauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
)

// Strength orders the challenges that a Transport can answer: higher is
// stronger. The Selector tries the strongest first, and after an answer
// was rejected no weaker one is tried on the same request, unless
// Transport.AllowDowngrade.
type Strength int

// Base strengths of the standard schemes, in the order .NET and curl
// prefer them: Negotiate (Kerberos) > Bearer > NTLM > Digest > Basic. A
// scheme may add up to 99 to its base to rank variants of itself (Digest
// ranks its algorithms, qop values and userhash this way, up to StrengthDigest+76);
// a custom scheme picks any value, for example StrengthDigest+50 to rank
// between Digest SHA-256 and NTLM.
const (
	StrengthBasic     Strength = 100
	StrengthDigest    Strength = 200
	StrengthNTLM      Strength = 280
	StrengthBearer    Strength = 300
	StrengthNegotiate Strength = 400
)

// A Scheme answers challenges of one HTTP authentication scheme. It is
// the plug-in point of the Transport: Basic, Digest, Bearer and Negotiate
// are Schemes, and so is any scheme a user writes.
//
// The contract has three lifetimes:
//   - the Scheme is configuration, shared by every protection space;
//   - a Session belongs to one protection space: Begin creates it from the
//     first challenge, and the Transport keeps it (unless the scheme is
//     NeverPreemptive) for every later request in the space, from many
//     goroutines at once;
//   - a Leg belongs to one request: Session.Start creates it, only the
//     request's goroutine uses it, and it remembers what that request sent
//     (a Digest nonce count, the token a Bearer request carried), so that a
//     refusal or a mutual-authentication token is judged against it.
//
// A Scheme must be safe for concurrent use.
type Scheme interface {
	// Name returns the auth-scheme token this Scheme answers, such as
	// "Digest". Challenges are matched to it case-insensitively.
	Name() string

	// Traits tells the Transport how to treat the Scheme's answers.
	Traits() Traits

	// Strength reports how strong an answer to c would be, and false when
	// this Scheme cannot answer c (an unknown algorithm, say). It must not
	// block or look up credentials.
	Strength(c *Challenge) (Strength, bool)

	// Begin starts answering c for the protection space in a, and returns
	// the space's Session. An error wrapping ErrNoCredentials means
	// "nothing to answer with": the Transport then tries the next
	// challenge. Any other error ends the request when no other challenge
	// can be answered.
	Begin(ctx context.Context, c *Challenge, a *Attempt) (Session, error)
}

// Traits tell the Transport what a Scheme's answers need. The zero value
// describes a scheme like Digest: no reusable secret on the wire, sent
// preemptively once its space is known, valid on any connection.
type Traits struct {
	// RevealsSecret means the header carries a reusable secret that
	// anyone who reads it can replay (Basic's password, a Bearer token).
	// The Transport then sends it over plain http only to loopback hosts,
	// Transport.CleartextHosts, or anywhere with Transport.AllowCleartext.
	// For a request through a proxy, the hop that matters is the one to
	// the proxy. A proxy's own challenge is answered whatever its host:
	// the user named that proxy, http:// and all, which is the consent.
	RevealsSecret bool

	// NeverPreemptive means a request is answered only after it was
	// challenged: the Transport does not keep the Session for later
	// requests (NTLM, whose answers are bound to a connection, and a
	// user's scheme whose answer holds what only one challenge may
	// carry). A space of a
	// ConnectionBound scheme is remembered all the same, but only to find
	// the connections it authenticated.
	NeverPreemptive bool

	// ConnectionBound means the handshake authenticates the connection
	// rather than the request (NTLM): every leg must ride one connection,
	// and that connection must serve no other identity. The Transport runs
	// such a handshake on an HTTP/1.1 connection it owns (made with
	// (*http.Transport).NewClientConn, so Base must be an *http.Transport;
	// over another Base their challenges are skipped, saying so in the
	// Debug log), drains every 401 or 407 body on it, and afterwards keeps
	// the authenticated connection for later requests in the same
	// protection space with the same credentials, and for no other. Inside
	// a CONNECT, the tunnel's own connection carries the legs.
	ConnectionBound bool
}

// An Attempt describes what a Scheme is asked to answer.
type Attempt struct {
	// Request is the outgoing request the answer is first for. It is the
	// Transport's clone: a Scheme reads it and never modifies it. When
	// the body can be read again, Request.GetBody is set.
	Request *http.Request

	// Space is the protection space of the challenge.
	Space ProtectionSpace

	// Credentials looks up user names and passwords: the Transport's
	// origin provider for a 401, its proxy provider for a 407. It is
	// never nil. Schemes that answer with something else (a token, a key,
	// a ticket) hold it themselves, scoped with Origins.
	Credentials CredentialProvider

	// Logger receives the Scheme's diagnostics. It is never nil. Nothing
	// secret may be logged.
	Logger *slog.Logger

	// Store holds what the schemes of the Transport share across spaces
	// and sessions. It is never nil when the Transport makes the Attempt.
	Store *Store

	// Rejected is the Session of the same scheme and realm whose answer
	// the server has just refused on this request, or nil. A Scheme may
	// carry state over from it: Digest keeps counting nc when the server
	// keeps its opaque, as Apache's AuthDigestNcCheck requires.
	Rejected Session
}

// A Session holds what a Scheme learned in one protection space: the
// credentials it looked up and any server state (a Digest nonce, a
// token). The Transport keeps it once a request it answered succeeded,
// and starts a Leg of it for every later request in the space, possibly
// from many goroutines at once, so a Session must be safe for concurrent
// use.
type Session interface {
	// Start begins the answer to one request. req is the Transport's
	// clone of the request, read only. An error wrapping
	// ErrNoCredentials sends the request without this answer; any other
	// error fails the request.
	Start(ctx context.Context, req *http.Request) (Leg, error)
}

// A Leg is one request's part of a handshake. It is used by one goroutine
// at a time and lives until the request's final response. The Transport
// calls, in order:
//
//   - Apply before each round trip that carries the answer;
//   - then, on the response: Continue when the server (or the proxy, for
//     a proxy's Leg) challenged again, or Finish when it accepted.
//
// Continue returning true leads to another Apply and round trip, as long
// as the request's answer budget (Transport.MaxAnswers) lasts, so a
// multi-leg handshake takes as many legs as it needs.
type Leg interface {
	// Apply sets the answer on req, the next round trip's request: the
	// header named by Space.AnswerHeader, and any other header the scheme
	// needs. When req's body can be read again, req.GetBody is set and
	// Apply may read it (Digest auth-int hashes it): each call returns a
	// reader of its own that leaves the round trip's body where it is.
	// For a body that is streamed (no GetBody of the caller, not
	// seekable), reading past Transport.MaxBodyBuffer through it fails
	// with an error wrapping ErrBodyNotReplayable.
	Apply(req *http.Request) error

	// Continue is called when the request that carried the answer was
	// challenged again by the same side. c is the response's challenge of
	// the Leg's scheme and realm, or nil when it has none. Continue
	// returns true when the Leg has adopted c and the request should be
	// sent again with it (Digest stale=true, a fresh Bearer token after
	// invalid_token, the next leg of a Negotiate handshake); false means
	// the answer was rejected, and the Transport looks for another
	// challenge to answer, no weaker than this one. An error ends the
	// request.
	Continue(ctx context.Context, resp *http.Response, c *Challenge) (retry bool, err error)

	// Finish inspects a response that the server (or the proxy) accepted:
	// Digest's Authentication-Info, Negotiate's mutual-authentication
	// token. It must not read the body. An error fails the request: the
	// Transport closes resp and returns the error.
	Finish(resp *http.Response) error
}

// An EndingLeg is a Leg that holds something for its request, such as a
// Digest nonce that no other request may use meanwhile, and must be told
// when the request is over. The Transport calls End exactly once for
// every Leg it started that implements it, when RoundTrip returns
// (whether with a response or an error, and so also for a leg that was
// rejected or never sent).
type EndingLeg interface {
	Leg
	End()
}

// A ProbingLeg is a Leg whose next round trip can only move the
// handshake on and never be accepted: NTLM's negotiate message is one.
// When Probing reports true, the Transport sends that round trip without
// the request's body (Content-Length: 0), so that a body goes only with
// the leg that can be accepted, as curl does. That also spares servers
// and proxies that stall on a large body sent with a handshake leg.
type ProbingLeg interface {
	Leg
	Probing() bool
}

// A Scoper is implemented by schemes whose challenges say which paths
// their protection space covers (Digest's domain parameter), or whose
// spaces cover more than a directory (a Bearer token is valid on its whole
// origin). Without it a space covers the directory of the challenged
// request (RFC 7617 §2.2).
type Scoper interface {
	Scheme
	// Scope returns the path prefixes on the origin of u (the challenged
	// request's URL) that c's protection space covers. Paths on other
	// origins must be left out: credentials never cross an origin.
	Scope(c *Challenge, u *url.URL) []string
}
