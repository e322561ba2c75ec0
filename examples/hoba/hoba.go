// Package hoba answers HOBA challenges (RFC 7486, HTTP Origin-Bound
// Authentication) through an anyauth.Transport. It is written outside
// the library, as any user could write it, with the public API of
// github.com/anyauth/anyauth only; NewServer is a small in-process HOBA
// server for its tests and examples.
//
// # The protocol
//
// The server challenges with
//
//	WWW-Authenticate: HOBA max-age="180", challenge="<base64url>"[, realm="…"]
//
// and the client answers with a signature made by a key pair it holds for
// that origin:
//
//	Authorization: HOBA result="<kid>.<challenge>.<nonce>.<signature>"
//
// where kid, nonce and signature are base64url without padding and the
// challenge is repeated as the server sent it (RFC 7486 §3). What is
// signed is the HOBA-TBS blob of RFC 7486 §2 (see ToBeSigned): six
// length-prefixed fields, in this order,
//
//	len(nonce) ":" nonce  len(alg) ":" alg  len(origin) ":" origin
//	len(realm) ":" realm  len(kid) ":" kid  len(challenge) ":" challenge
//
// with len the field's length in decimal. The origin is written
// "scheme://host:port" with the port always explicit, as the ABNF of §2
// has it (origin = scheme "://" authority ":" port; its example is
// "https://www.example.com:8080"), so https://example.com and
// https://example.com:443 sign the same "https://example.com:443" (see
// Origin). A challenge without a realm signs an empty realm ("0:").
//
// # What later requests cost
//
// A challenge may be answered for max-age seconds after the server sent
// it (RFC 7486 §3: max-age is the time "for which responses to this
// challenge can be sent by the client"), so the scheme is not
// NeverPreemptive: the Session keeps the challenge, and every later
// request on the origin carries a fresh answer at once, signed over the
// same challenge with a new nonce. The first request of an origin costs
// a 401 and a replay (2 round trips); later ones within max-age cost 1.
// Once max-age has (nearly) passed, the Session stops answering, the
// request goes without an answer, and the new challenge of its 401 is
// answered: 2 round trips again. A server that forgot its challenge
// earlier (a restart, a clock ahead) refuses the answer; the Transport
// then drops the Session and answers the new challenge of that 401: 2
// round trips as well, once.
//
// Reusing a challenge makes the server's job to refuse a replayed
// answer: the Server here remembers the (challenge, nonce) pairs it
// accepted until the challenge expires.
//
// # What the plug-in uses, and what it gets for free
//
// It implements anyauth.Scheme (Name, Traits, Strength, Begin) and
// anyauth.Scoper (a HOBA key is bound to an origin, so a space covers the
// whole origin, not a directory); Begin returns an anyauth.Session whose
// Start returns an anyauth.Leg (Apply signs; Continue and Finish have
// nothing to do). Its Traits are the zero value: no reusable secret on the
// wire (RevealsSecret false: the header proves possession of a key it
// does not reveal), preemptive once its space is known, not bound to a
// connection. The key goes only to the origins listed in Origins
// (anyauth.Origins), never to a proxy.
//
// The Transport gives it, for free: parsing the WWW-Authenticate header
// (quoted strings, several challenges in one field), ranking HOBA against
// the other challenges of a response (Strength), replaying the request
// and its body after the 401 (registration POSTs a form), remembering the
// protection space so later requests are answered preemptively, dropping
// a Session that a server refused, the answer budget (MaxAnswers), and
// running it from many goroutines at once.
package hoba

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anyauth/anyauth"
)

// Signature algorithms, the "alg" field of the signed blob. RFC 7486 §9.3
// registers 0 (RSA-SHA256) and 1 (RSA-SHA1) only; the IANA registry
// leaves 2-99 unassigned. The ECDSA and Ed25519 numbers below are this
// example's own choice, not registered: a client and a server that use
// them must agree on them.
const (
	// AlgRSASHA256 is RSASSA-PKCS1-v1_5 with SHA-256 (registered, 0).
	AlgRSASHA256 = "0"
	// AlgECDSAP256SHA256 is ECDSA on P-256 with SHA-256, the signature in
	// ASN.1 DER as crypto.Signer returns it (unregistered).
	AlgECDSAP256SHA256 = "98"
	// AlgEd25519 is Ed25519 over the blob itself (unregistered).
	AlgEd25519 = "99"
)

// Strength is the strength of every HOBA answer: StrengthDigest+78,
// above every Digest answer (Digest tops out at StrengthDigest+76,
// SHA-512-256-sess with auth-int and userhash) and below NTLM, Bearer and Negotiate.
//
// Above Digest, because a HOBA answer holds no password and nothing
// derived from one: an eavesdropper cannot guess a password offline from
// it, a server stores no password database, and a phishing origin gets a
// signature over its own origin, useless elsewhere. So a Digest floor
// (schemes.StrengthDigestSHA256 and up) never refuses HOBA, and a server
// that offers both gets HOBA. Below NTLM, Bearer and Negotiate, because
// the library's order for those follows .NET and curl, and a server that
// offers one of them beside HOBA (an Experimental RFC) has usually made
// it its main way in: HOBA does not jump ahead of it. (StrengthDigest+50,
// a round number, would tie with Digest SHA-512 and rank below
// SHA-512-256 and the -sess variants.)
const Strength = anyauth.StrengthDigest + 78

// RegisterPath is where a client registers its key (RFC 7486 §6.1.1).
const RegisterPath = "/.well-known/hoba/register"

var b64 = base64.RawURLEncoding

// Errors of the scheme.
var (
	// ErrUnsupportedKey is returned for a key that is neither ECDSA
	// P-256, Ed25519 nor RSA.
	ErrUnsupportedKey = errors.New("hoba: unsupported key type (want ECDSA P-256, Ed25519 or RSA)")
	// ErrBadKeyID is returned for a KeyID that is not base64url.
	ErrBadKeyID = errors.New("hoba: KeyID must be non-empty base64url (A-Z a-z 0-9 - _)")
)

// Scheme answers HOBA challenges with a signing key. Its zero value
// answers nothing; set Key and Origins. It is safe for concurrent use.
type Scheme struct {
	// Key signs the challenges: an *ecdsa.PrivateKey on P-256, an
	// ed25519.PrivateKey, an *rsa.PrivateKey, or any crypto.Signer whose
	// public key is one of those (a hardware key, say).
	Key crypto.Signer

	// KeyID is the kid the server knows the key by, base64url. Empty
	// means KeyIDOf(Key.Public()).
	KeyID string

	// Origins are the origins the key may answer, in the form
	// "scheme://host[:port]". A challenge from any other origin, or from
	// a proxy, gets nothing: the Transport returns its 401 untouched.
	Origins anyauth.Origins

	now func() time.Time // nil: time.Now (tests set it)
}

var (
	_ anyauth.Scheme = Scheme{}
	_ anyauth.Scoper = Scheme{}
)

// Name returns "HOBA".
func (Scheme) Name() string { return "HOBA" }

// Traits returns the zero Traits: nothing replayable is revealed (the
// answer proves possession of the key without revealing it, and the
// server refuses a nonce it has seen), and answers are sent preemptively
// while the challenge they sign is within its max-age.
func (Scheme) Traits() anyauth.Traits { return anyauth.Traits{} }

// Strength returns Strength for a well-formed HOBA challenge: one with a
// base64url challenge and a max-age (both required by RFC 7486 §3).
func (Scheme) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	if c.Token68 != "" || !isB64URL(c.Param("challenge")) {
		return 0, false
	}
	if _, err := maxAgeOf(c); err != nil {
		return 0, false
	}
	return Strength, true
}

// Scope returns "/": a HOBA key is bound to an origin, and a challenge is
// valid on the whole origin that issued it.
func (Scheme) Scope(*anyauth.Challenge, *url.URL) []string { return []string{"/"} }

// Begin checks that the key may answer the space's origin, and returns a
// Session that signs c's challenge until its max-age runs out.
func (s Scheme) Begin(_ context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if s.Key == nil {
		return nil, fmt.Errorf("%w: hoba: no key", anyauth.ErrNoCredentials)
	}
	if a.Space.Proxy || !s.Origins.Allows(&a.Space) {
		return nil, fmt.Errorf("%w: hoba: %s is not in Origins", anyauth.ErrNoCredentials, a.Space.Origin())
	}
	alg, err := algOf(s.Key.Public())
	if err != nil {
		return nil, err
	}
	kid, err := s.kid()
	if err != nil {
		return nil, err
	}
	maxAge, err := maxAgeOf(c)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	sess := &session{
		key:       s.Key,
		alg:       alg,
		kid:       kid,
		origin:    a.Space.Origin(), // scheme://host:port, port explicit
		realm:     c.Realm(),
		challenge: c.Param("challenge"),
		header:    a.Space.AnswerHeader(),
		expires:   now().Add(maxAge - margin(maxAge)),
		now:       now,
	}
	sess.fresh.Store(true)
	return sess, nil
}

// Register registers the scheme's public key with the HOBA server at
// baseURL (its origin), a simplified RFC 7486 §6.1.1 registration: a POST
// to RegisterPath of a form with "kid" and "pub" (the public key, PKIX
// DER in base64url), which the server challenges, so that the POST is
// replayed with a HOBA answer signed by the key being registered (proof
// of possession). client must send through an anyauth.Transport that
// holds s. The server answers 200 with "Hobareg: regok".
func (s Scheme) Register(ctx context.Context, client *http.Client, baseURL string) error {
	if s.Key == nil {
		return errors.New("hoba: no key")
	}
	kid, err := s.kid()
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKIXPublicKey(s.Key.Public())
	if err != nil {
		return fmt.Errorf("hoba: %w", err)
	}
	form := url.Values{"kid": {kid}, "pub": {b64.EncodeToString(der)}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+RegisterPath, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("hoba: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Hobareg") != "regok" {
		return fmt.Errorf("hoba: registration refused: %s", resp.Status)
	}
	return nil
}

func (s Scheme) kid() (string, error) {
	if s.KeyID == "" {
		return KeyIDOf(s.Key.Public())
	}
	if !isB64URL(s.KeyID) {
		return "", ErrBadKeyID
	}
	return s.KeyID, nil
}

func (s Scheme) clock() func() time.Time {
	if s.now != nil {
		return s.now
	}
	return time.Now
}

// margin is how long before the server's deadline the client stops
// answering a challenge: the client counts max-age from the 401's
// arrival, later than the server, and a request needs time to get there.
func margin(maxAge time.Duration) time.Duration {
	return min(maxAge/10, 5*time.Second)
}

// session is the HOBA Session of one origin and realm: the challenge it
// signs and until when. It holds no per-request state (every Apply signs
// a new nonce), so it is its own Leg.
type session struct {
	key                                        crypto.Signer
	alg, kid, origin, realm, challenge, header string
	expires                                    time.Time
	fresh                                      atomic.Bool // the leg that Begin's answer starts
	now                                        func() time.Time
}

// Start answers the request, unless the challenge is too old: then the
// request goes without an answer, and its 401 brings a new challenge. The
// first Start (the request whose 401 carried the challenge) always
// answers, even with max-age=0.
func (s *session) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	if !s.fresh.CompareAndSwap(true, false) && !s.now().Before(s.expires) {
		return nil, fmt.Errorf("%w: hoba: challenge past its max-age", anyauth.ErrNoCredentials)
	}
	return s, nil
}

// Apply signs the challenge with a new nonce and sets the answer.
func (s *session) Apply(req *http.Request) error {
	var n [32]byte
	if _, err := rand.Read(n[:]); err != nil {
		return err
	}
	nonce := b64.EncodeToString(n[:])
	sig, err := sign(s.key, s.alg, ToBeSigned(nonce, s.alg, s.origin, s.realm, s.kid, s.challenge))
	if err != nil {
		return fmt.Errorf("hoba: signing: %w", err)
	}
	req.Header.Set(s.header, `HOBA result="`+s.kid+"."+s.challenge+"."+nonce+"."+b64.EncodeToString(sig)+`"`)
	return nil
}

// Continue returns false: a refused signature is not retried by this Leg.
// When the refused answer was a remembered one (the server forgot or
// expired the challenge), the Transport drops this Session and answers
// the new challenge of the 401 with a new one; when it was a fresh one
// (an unknown key), the 401 is the final response.
func (s *session) Continue(context.Context, *http.Response, *anyauth.Challenge) (bool, error) {
	return false, nil
}

// Finish has nothing to check: HOBA has no mutual authentication.
func (s *session) Finish(*http.Response) error { return nil }

// ToBeSigned returns the HOBA-TBS blob of RFC 7486 §2: nonce, alg,
// origin, realm, kid and challenge, each preceded by its length in
// decimal and a colon. origin is as Origin returns it; realm is "" when
// the challenge has none; nonce, kid and challenge are base64url text.
func ToBeSigned(nonce, alg, origin, realm, kid, challenge string) []byte {
	var b []byte
	for _, f := range [...]string{nonce, alg, origin, realm, kid, challenge} {
		b = strconv.AppendInt(b, int64(len(f)), 10)
		b = append(b, ':')
		b = append(b, f...)
	}
	return b
}

// Origin returns the origin of rawURL as the signed blob spells it
// (RFC 7486 §2): "scheme://host:port", lower case, the port always
// written, the default one included: "https://example.com/x" and
// "https://example.com:443" both give "https://example.com:443".
func Origin(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("hoba: origin: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	switch {
	case scheme != "http" && scheme != "https", u.Hostname() == "":
		return "", fmt.Errorf("hoba: origin %q is not http(s)://host[:port]", rawURL)
	case port == "" && scheme == "https":
		port = "443"
	case port == "":
		port = "80"
	}
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port), nil
}

// KeyIDOf returns the default kid of a public key: the base64url SHA-256
// of its PKIX DER encoding.
func KeyIDOf(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("hoba: %w", err)
	}
	sum := sha256.Sum256(der)
	return b64.EncodeToString(sum[:]), nil
}

func algOf(pub crypto.PublicKey) (string, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return AlgECDSAP256SHA256, nil
		}
	case ed25519.PublicKey:
		return AlgEd25519, nil
	case *rsa.PublicKey:
		return AlgRSASHA256, nil
	}
	return "", ErrUnsupportedKey
}

func sign(key crypto.Signer, alg string, blob []byte) ([]byte, error) {
	if alg == AlgEd25519 {
		return key.Sign(rand.Reader, blob, crypto.Hash(0))
	}
	sum := sha256.Sum256(blob)
	return key.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// verify checks sig over blob with pub.
func verify(pub crypto.PublicKey, blob, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(blob)
		return k.Curve == elliptic.P256() && ecdsa.VerifyASN1(k, sum[:], sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, blob, sig)
	case *rsa.PublicKey:
		sum := sha256.Sum256(blob)
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	}
	return false
}

func maxAgeOf(c *anyauth.Challenge) (time.Duration, error) {
	v, ok := c.Lookup("max-age")
	if !ok {
		return 0, errors.New("hoba: challenge without max-age")
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("hoba: bad max-age %q", v)
	}
	return time.Duration(n) * time.Second, nil
}

// isB64URL reports whether s is non-empty base64url text without padding.
func isB64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
