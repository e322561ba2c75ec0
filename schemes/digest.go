package schemes

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/anyauth/anyauth"
)

// Digest answers Digest challenges (RFC 7616, and the RFC 2617 and
// RFC 2069 forms it keeps compatible).
//
// It understands the algorithms MD5, SHA-256, SHA-512-256 (the FIPS 180-4
// SHA-512/256 function) and SHA-512, each also in its "-sess" variant,
// named in any case; a challenge without an algorithm means MD5. It
// answers qop=auth-int (hashing a request body it can read again),
// qop=auth, and challenges without qop. It sends a hashed user name when
// the server asks for userhash=true, and a user name that cannot travel in
// a quoted-string as an RFC 8187 username* parameter.
//
// A Digest value is a configuration: the nonces, their nonce counts and
// the credentials live in the Session that Begin returns, which the
// Transport keeps for the protection space and uses from many goroutines
// at once. The zero value is ready to use.
//
// Each request answers on a lane of the Session: a server nonce that no
// other request uses until the request ends, so that the nonce counts of
// a lane reach the server in order (Apache's AuthDigestNcCheck refuses
// any other). A request that finds every lane busy is sent without an
// answer and opens a lane with the 401 it gets; requests challenged at
// the same time share one Session. Nonce counts are kept per nonce in the
// Transport's Store, so no count is ever sent twice for a nonce, even by
// two Sessions given the same nonce.
//
// A leg signs the request-target as the request line carries it (path and
// query for an origin, the absolute URL for a proxy, the authority for
// CONNECT) and draws a fresh 16-byte cnonce for every request. It adopts
// a stale=true challenge of its realm (new nonce, same credentials) unless
// it would weaken the session (a weaker algorithm or qop, no userhash),
// adopts the nextnonce of Authentication-Info, and checks rspauth against
// the nonce, nc and cnonce it sent (see RequireMutualAuth). Its printed
// form shows neither the password nor HA1.
type Digest struct {
	// RequireMutualAuth makes the server prove that it knows the
	// password. A response that the server accepted (any status but 401,
	// or 407 for a proxy) must then carry an Authentication-Info (for a
	// proxy, Proxy-Authentication-Info) rspauth that matches, or the
	// request fails with an error wrapping ErrMutualAuth. Because only
	// the rspauth of a qop=auth or qop-less answer can be checked without
	// reading the response body, a Digest with RequireMutualAuth answers
	// with qop=auth rather than auth-int when the server offers both, and
	// a response to an auth-int answer fails.
	//
	// Without it, a mismatching rspauth is logged at Warn level through
	// the Attempt's Logger and the response is returned, and a missing
	// one is accepted.
	RequireMutualAuth bool

	// NoUserhash sends the user name itself (as username, or as
	// username* when it needs RFC 8187 encoding) even when the challenge
	// asks for userhash=true. The answer then says userhash=false.
	NoUserhash bool

	// NoAuthInt answers with qop=auth when the server offers both auth
	// and auth-int, so that a large request body is not read an extra
	// time to hash it.
	NoAuthInt bool

	// Rand is the source of the client nonces (cnonce), 16 bytes per
	// request; a Session serializes its reads. Nil means crypto/rand,
	// which is what anything but a test should use.
	Rand io.Reader

	// fixedCnonce, when set, is used as the cnonce of every request. It
	// exists for the tests that reproduce published vectors.
	fixedCnonce string
}

// Strengths of Digest answers, the floors a Selector can be given. A
// Digest answer ranks StrengthDigest plus 0 for MD5, 30 for SHA-256, 50
// for SHA-512 and 60 for SHA-512-256, plus 10 for a "-sess" algorithm,
// plus 2 for qop=auth-int, 1 for qop=auth and 0 without qop, plus 4 for
// userhash=true (unless NoUserhash). So after a userhash answer was
// refused, a challenge without userhash is a downgrade the Transport does
// not take: the user name does not go in the clear.
const (
	// StrengthDigestMD5 is the strength of an MD5 answer without qop.
	StrengthDigestMD5 = anyauth.StrengthDigest
	// StrengthDigestSHA256 is the strength of a SHA-256 answer without
	// qop: a floor at this value refuses every MD5 answer.
	StrengthDigestSHA256 = anyauth.StrengthDigest + 30
	// StrengthDigestSHA512 is the strength of a SHA-512 answer without
	// qop.
	StrengthDigestSHA512 = anyauth.StrengthDigest + 50
	// StrengthDigestSHA512_256 is the strength of a SHA-512-256 answer
	// without qop, the strongest algorithm RFC 7616 defines.
	StrengthDigestSHA512_256 = anyauth.StrengthDigest + 60
)

// Strength bonuses added to an algorithm's strength.
const (
	strengthSess    = 10
	strengthAuthInt = 2
	strengthAuth    = 1
	// strengthUserhash ranks an answer that hides the user name above
	// one of the same algorithm and qop that shows it.
	strengthUserhash = 4
)

// Errors of the Digest scheme. Errors returned by Digest and its Session
// wrap one of these (or the error of the CredentialProvider); none holds
// a password, an HA1 or a response hash.
var (
	// ErrMutualAuth means the server did not prove that it knows the
	// password: its rspauth did not match, or, with RequireMutualAuth,
	// it sent none that could be checked.
	// It is permanent (anyauth.IsPermanent): a retry layer must not send
	// the credentials to that server again.
	// It wraps anyauth.ErrMutualAuth.
	ErrMutualAuth = anyauth.Permanent(fmt.Errorf("digest: %w (rspauth)", anyauth.ErrMutualAuth))

	// ErrBodyNotReadable means the challenge allows only qop=auth-int,
	// which hashes the request body, and the body cannot be read again
	// (the request has a body and no GetBody).
	ErrBodyNotReadable = errors.New("digest: qop=auth-int needs the request body, which cannot be read again (set Request.GetBody)")

	// ErrUnsupportedAlgorithm means the challenge names an algorithm
	// Digest does not know.
	ErrUnsupportedAlgorithm = errors.New("digest: unsupported algorithm")

	// ErrUnsupportedQop means the challenge's qop list holds neither
	// auth nor auth-int.
	ErrUnsupportedQop = errors.New("digest: unsupported qop")

	// ErrBadChallenge means the challenge cannot be answered for another
	// reason: it is not a Digest challenge, it has no nonce, it names a
	// "-sess" algorithm without qop (its A1 needs a cnonce), or its
	// realm, nonce or opaque is longer than 2048 bytes.
	ErrBadChallenge = errors.New("digest: malformed challenge")
)

// Name returns "Digest".
func (Digest) Name() string { return "Digest" }

// Traits returns the zero Traits: a Digest answer reveals no reusable
// secret, is sent preemptively once its space is known, and is valid on
// any connection.
func (Digest) Traits() anyauth.Traits { return anyauth.Traits{} }

// Strength reports how strong an answer to c would be, ranking its
// algorithm, "-sess", the qop the Session would pick and userhash (see the
// StrengthDigest constants), and false when c is not a Digest challenge
// Digest can answer: an unknown algorithm, a qop list without auth or
// auth-int, a "-sess" algorithm without qop, a token68 form, or no
// nonce.
func (d Digest) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	ch, err := parseDigestChallenge(c)
	if err != nil {
		return 0, false
	}
	return d.offeredStrength(ch), true
}

// prefersAuthInt reports whether d answers ch with auth-int when the body
// allows it, rather than auth.
func (d Digest) prefersAuthInt(ch *digestChallenge) bool {
	if !ch.qopAuth {
		return true // auth-int is all there is
	}
	return !d.NoAuthInt && !d.RequireMutualAuth
}

// Begin looks up the credentials for a.Space and returns the Session that
// answers c and the later requests of the space. An error of the
// CredentialProvider is returned as it is (it may wrap
// anyauth.ErrNoCredentials); a challenge Digest cannot answer gives an
// error wrapping ErrUnsupportedAlgorithm, ErrUnsupportedQop or
// ErrBadChallenge.
func (d Digest) Begin(ctx context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	ch, err := parseDigestChallenge(c)
	if err != nil {
		return nil, err
	}
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	if up == nil {
		return nil, fmt.Errorf("digest: %w: the provider returned none", anyauth.ErrNoCredentials)
	}
	ch = ch.detached()
	logger := a.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &digestSession{
		cfg:   d,
		proxy: a.Space.Proxy,
		// The header names of the space: Proxy-* for a proxy.
		answerHeader: a.Space.AnswerHeader(),
		infoHeader:   a.Space.InfoHeader(),
		space:        a.Space.String(),
		logger:       logger,
		username:     up.Username,
		password:     up.Password,
		origin:       a.Space.Origin(),
		store:        a.Store,
	}
	if a.Space.Proxy {
		s.origin = "proxy " + s.origin
	}
	if s.store == nil {
		s.store = &anyauth.Store{}
	}
	var nc *counter
	if prev, ok := a.Rejected.(*digestSession); ok {
		if shared := prev.counterForOpaque(ch); shared != nil {
			nc = s.counterOr(ch, shared)
		}
	}
	if nc == nil {
		nc = s.counterLocked(ch)
	}
	s.state.Store(s.newState(ch, nc, nil))
	if a.Rejected == nil {
		// Requests challenged at the same time share one session, each
		// bringing a lane, instead of leaving one session each.
		if joined := s.join(ch, a.Space.Path); joined != nil {
			return joined, nil
		}
	}
	return s, nil
}

// sessionKey finds the live session of a challenge in the Transport's
// Store: sum is a SHA-256 digest of everything that must agree for two
// challenges to share a session (see sessionSum), so that the key stays
// small however long the values are.
type sessionKey struct {
	sum [sha256.Size]byte
	cfg Digest
}

// sessionSum digests what a session is made for: the server, the
// directory that challenged, the realm, the credentials, and the
// challenge's algorithm, qop offer and userhash. Sessions differing in any
// of these never share a lane; lanes of one session may differ only in
// the nonce and opaque that the same directory handed out.
func (s *digestSession) sessionSum(ch *digestChallenge, dir string) [sha256.Size]byte {
	h := sha256.New()
	for _, v := range []string{s.origin, dir, ch.realm, s.username, s.password, ch.algName} {
		io.WriteString(h, v)
		h.Write([]byte{0})
	}
	h.Write([]byte{boolByte(ch.qopAuth), boolByte(ch.qopAuthInt), boolByte(ch.userhash)})
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// join adds ch as a lane of the session the Transport already has for the
// same directory, credentials and challenge (see sessionSum), and returns
// that session. It returns nil (and registers s, when there is none) when
// there is none or it cannot take ch: a challenge that would weaken it,
// or maxLanes reached.
func (s *digestSession) join(ch *digestChallenge, dir string) *digestSession {
	if s.cfg.Rand != nil {
		return nil // a Digest with its own Rand is not a comparable key
	}
	key := sessionKey{s.sessionSum(ch, dir), s.cfg}
	old := s.store.Get(key, func() any { return s }).(*digestSession)
	if old == s || old.weakenedBy(ch) != "" {
		return nil
	}
	if !old.addLane(ch) {
		return nil
	}
	return old
}
