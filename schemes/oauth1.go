package schemes

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/anyauth/anyauth"
)

// An OAuth1Method is an OAuth 1.0 signature method (RFC 5849 §3.4).
type OAuth1Method string

// The signature methods OAuth1 signs with.
const (
	// OAuth1HMACSHA1 is HMAC-SHA1 keyed with the client and token
	// secrets (RFC 5849 §3.4.2), the default.
	OAuth1HMACSHA1 OAuth1Method = "HMAC-SHA1"
	// OAuth1HMACSHA256 is HMAC-SHA256, the same with SHA-256 (not in RFC
	// 5849, but as widely served: oauthlib, Jira, LTI).
	OAuth1HMACSHA256 OAuth1Method = "HMAC-SHA256"
	// OAuth1RSASHA1 is RSASSA-PKCS1-v1_5 over SHA-1 with the client's
	// private key (RFC 5849 §3.4.3); the token secret is not used.
	OAuth1RSASHA1 OAuth1Method = "RSA-SHA1"
	// OAuth1RSASHA256 is RSASSA-PKCS1-v1_5 over SHA-256.
	OAuth1RSASHA256 OAuth1Method = "RSA-SHA256"
	// OAuth1Plaintext sends both secrets themselves as the signature
	// (RFC 5849 §3.4.4): a reusable secret, for https only (see OAuth1).
	OAuth1Plaintext OAuth1Method = "PLAINTEXT"
)

// Strengths of OAuth 1.0 answers. A signed answer reveals no reusable
// secret, so it ranks above Bearer (whose token anyone who reads it can
// replay) and below Negotiate; PLAINTEXT gives both secrets away, as
// Basic gives the password, and ranks just above Basic.
const (
	// StrengthOAuth1Plaintext is the strength of a PLAINTEXT answer.
	StrengthOAuth1Plaintext = anyauth.StrengthBasic + 10
	// StrengthOAuth1SHA1 is the strength of an HMAC-SHA1 or RSA-SHA1
	// answer.
	StrengthOAuth1SHA1 = anyauth.StrengthBearer + 10
	// StrengthOAuth1SHA256 is the strength of an HMAC-SHA256 or
	// RSA-SHA256 answer.
	StrengthOAuth1SHA256 = anyauth.StrengthBearer + 20
)

// OAuth1 answers "OAuth" challenges with OAuth 1.0 signatures (RFC 5849
// §3), with a client's (consumer's) credentials and a token's, on the
// origins it is given only.
//
// Every round trip that carries the answer is signed anew, with a fresh
// oauth_nonce (24 random letters and digits) and oauth_timestamp: a
// request replayed after a challenge, with its body, never repeats a
// nonce. The signature covers the method, the base string URI (scheme
// and host in lower case, default port dropped, the host as the Host
// header says it), the query parameters, the parameters of an
// application/x-www-form-urlencoded body (read through the request's
// GetBody, which the Transport sets on a body it can replay), and the
// protocol parameters (§3.4.1). With BodyHash, another body is covered by
// oauth_body_hash (the OAuth Request Body Hash draft): its SHA-1 for
// HMAC-SHA1 and RSA-SHA1, its SHA-256 for HMAC-SHA256 and RSA-SHA256.
// The challenge's realm is echoed in the header and is not signed.
//
// Which "OAuth" challenges it answers: the scheme name "OAuth" was also
// used for OAuth 2.0, by its drafts up to draft-ietf-oauth-v2-10
// (`OAuth realm="...", error="invalid_token"`) and by Facebook's Graph
// API (`OAuth "Facebook Platform" "invalid_token" "..."`, which is not
// even well-formed and is dropped by the parser). OAuth1 answers a
// challenge only when it has no token68 and none of the parameters that
// only OAuth 2.0 sends (error, error_description, error_uri, scope),
// whatever its realm: RFC 5849's own challenge carries a realm at most,
// and the oauth_problem parameters of the Problem Reporting extension do
// not disqualify it. A bare `WWW-Authenticate: OAuth` is answered. And it
// answers only challenges of Origins, never a proxy's.
//
// A refused signature is not sent again: a request whose signed answer
// was challenged again returns the server's response as it came (2 round
// trips, or 1 with Preemptive), since the same credentials would be
// refused again. That holds also when the refusal names a realm that the
// preemptive signature, sent before any challenge, did not know.
//
// PLAINTEXT puts both secrets on the wire, so OAuth1 with it reveals a
// reusable secret (Traits.RevealsSecret) and the Transport's cleartext
// guard applies, as to Basic: over https anywhere, over plain http only
// to loopback hosts, Transport.CleartextHosts, or anywhere with
// Transport.AllowCleartext; elsewhere the request fails with an
// *anyauth.CleartextError (permanent), and nothing signed is sent. RFC
// 5849 §3.4.4 wants PLAINTEXT over TLS only: a loopback host is the one
// exception the Transport makes by default. The other methods reveal no
// secret (only the consumer key and token identifier, which are not) and
// go over plain http too, as OAuth 1.0 was designed to.
//
// No secret (the client secret, the token secret, the private key)
// appears in an error, a log line, or the printed form of an OAuth1, its
// sessions or legs.
//
// Why not github.com/dghubble/oauth1 (v0.7.3): it is a whole client. It
// signs only inside its own Transport's RoundTrip (the signing code is
// unexported), where this Transport needs a signature per attempt from a
// Leg; it reads and replaces the request's Body instead of using
// GetBody; it keeps only the first value of a repeated parameter and
// takes a form body only when Content-Type is exactly
// "application/x-www-form-urlencoded" (no charset), both of which break
// signatures (§3.4.1.3); it ships no PLAINTEXT or RSA-SHA256 signer, takes
// an *rsa.PrivateKey rather than a crypto.Signer, and has no body hash;
// and its default nonces (44 base64 characters, with "+/=") are refused
// by oauthlib's default validator (20 to 30 letters and digits). The
// signer here is a few hundred lines, checked against RFC 5849's
// examples and against oauthlib.
//
// An OAuth1 is configuration: it may be used as a value or through
// NewOAuth1's pointer, by any number of goroutines.
type OAuth1 struct {
	// Origins are the origins ("https://api.example.com") requests may
	// be signed for. Challenges from anywhere else, proxies included, are
	// not answered.
	Origins anyauth.Origins

	// ConsumerKey and ConsumerSecret are the client credentials (RFC
	// 5849 §1.1). The secret is not used by the RSA methods.
	ConsumerKey    string
	ConsumerSecret string

	// Token and TokenSecret are the token credentials. Token is sent as
	// oauth_token when not empty (a request on behalf of a resource
	// owner); without it the request is signed for the client alone.
	Token       string
	TokenSecret string

	// Method is the signature method; "" means OAuth1HMACSHA1.
	Method OAuth1Method

	// PrivateKey signs for OAuth1RSASHA1 and OAuth1RSASHA256: an
	// *rsa.PrivateKey, or any crypto.Signer whose public key is an
	// *rsa.PublicKey (a key in an HSM or an agent).
	PrivateKey crypto.Signer

	// Preemptive signs every request to Origins from the first one,
	// without waiting for a challenge (see anyauth.Volunteer): for APIs
	// that answer 401 without "WWW-Authenticate: OAuth". N requests then
	// cost N round trips. Without it, the first request to an origin is
	// sent unsigned, and its OAuth challenge answered; later ones are
	// signed from the start.
	Preemptive bool

	// BodyHash adds oauth_body_hash to requests whose body is not
	// form-encoded (the empty body of a GET included), so that the
	// signature covers the body too. It is not sent with PLAINTEXT, to
	// which it adds nothing. A body that cannot be read before it is
	// sent (no GetBody) then fails the request, rather than go unsigned.
	BodyHash bool

	// now and nonce replace the clock and crypto/rand in tests.
	now   func() time.Time
	nonce func() (string, error)
}

// NewOAuth1 returns an OAuth1 that signs with HMAC-SHA1 with the given
// client and token credentials, for origins only. Set Method (and
// PrivateKey) for another signature method.
func NewOAuth1(consumerKey, consumerSecret, token, tokenSecret string, origins ...string) *OAuth1 {
	return &OAuth1{Origins: origins, ConsumerKey: consumerKey, ConsumerSecret: consumerSecret, Token: token, TokenSecret: tokenSecret}
}

// method returns Method, or HMAC-SHA1 when empty.
func (o OAuth1) method() OAuth1Method {
	if o.Method == "" {
		return OAuth1HMACSHA1
	}
	return o.Method
}

// Name returns "OAuth".
func (OAuth1) Name() string { return "OAuth" }

// Traits reports that a PLAINTEXT answer reveals a reusable secret, so
// that the Transport's cleartext guard applies to it; a signed one does
// not.
func (o OAuth1) Traits() anyauth.Traits {
	return anyauth.Traits{RevealsSecret: o.method() == OAuth1Plaintext}
}

// Strength ranks the answer by signature method (StrengthOAuth1SHA256,
// StrengthOAuth1SHA1, StrengthOAuth1Plaintext), and refuses a challenge
// that is not OAuth 1.0's: one with a token68, or with a parameter only
// OAuth 2.0 sends (error, error_description, error_uri, scope).
func (o OAuth1) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	if c.Token68 != "" || oauth2Challenge(c) {
		return 0, false
	}
	switch o.method() {
	case OAuth1Plaintext:
		return StrengthOAuth1Plaintext, true
	case OAuth1HMACSHA256, OAuth1RSASHA256:
		return StrengthOAuth1SHA256, true
	}
	return StrengthOAuth1SHA1, true
}

// oauth2Challenge reports whether c has a parameter that only OAuth 2.0
// (RFC 6749 and RFC 6750, and the drafts that still called the scheme
// "OAuth") sends.
func oauth2Challenge(c *anyauth.Challenge) bool {
	for _, p := range c.Params {
		switch strings.ToLower(p.Name) {
		case "error", "error_description", "error_uri", "scope":
			return true
		}
	}
	return false
}

// Volunteers reports whether requests to u's origin are signed from the
// start: Preemptive is set and the origin is among Origins (see
// anyauth.Volunteer).
func (o OAuth1) Volunteers(u *url.URL) bool {
	if !o.Preemptive || u == nil {
		return false
	}
	return o.Origins.AllowsURL(u)
}

// Scope returns "/": credentials are valid on their whole origin, so once
// one path was challenged, every path of the origin is signed from the
// start.
func (OAuth1) Scope(*anyauth.Challenge, *url.URL) []string { return []string{"/"} }

// check reports what makes o unusable: a missing consumer key, an
// unknown method, an RSA method without an RSA key. Such errors wrap
// ErrInvalidCredentials, and are permanent.
func (o OAuth1) check() error {
	if len(o.Origins) == 0 {
		return fmt.Errorf("oauth1: %w: OAuth1.Origins is empty, so nothing may be signed; list the origins the credentials are for (NewOAuth1(key, secret, token, tokenSecret, \"https://api.example.com\"))", ErrInvalidCredentials)
	}
	if err := o.Origins.Check(); err != nil {
		return fmt.Errorf("oauth1: %w: %s", ErrInvalidCredentials, strings.TrimPrefix(err.Error(), "anyauth: "))
	}
	if o.ConsumerKey == "" {
		return fmt.Errorf("oauth1: %w: OAuth1.ConsumerKey is empty", ErrInvalidCredentials)
	}
	m := o.method()
	if m.hash() == 0 && m != OAuth1Plaintext {
		return fmt.Errorf("oauth1: %w: unknown signature method %q (HMAC-SHA1, HMAC-SHA256, RSA-SHA1, RSA-SHA256 or PLAINTEXT)", ErrInvalidCredentials, truncateForError(string(m)))
	}
	if m.rsa() {
		if o.PrivateKey == nil {
			return fmt.Errorf("oauth1: %w: %s needs OAuth1.PrivateKey", ErrInvalidCredentials, m)
		}
		if _, ok := o.PrivateKey.Public().(*rsa.PublicKey); !ok {
			return fmt.Errorf("oauth1: %w: %s needs an RSA key, and OAuth1.PrivateKey is a %T", ErrInvalidCredentials, m, o.PrivateKey.Public())
		}
	}
	return nil
}

// Begin returns the Session of a space on one of o's origins. A space
// elsewhere, and a request whose own signature was just refused, get an
// error wrapping anyauth.ErrNoCredentials; an unusable configuration an
// error wrapping ErrInvalidCredentials.
func (o OAuth1) Begin(_ context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if !o.Origins.Allows(&a.Space) {
		return nil, fmt.Errorf("oauth1: %w: %s is not among the OAuth1's origins", anyauth.ErrNoCredentials, a.Space.Origin())
	}
	header := a.Space.AnswerHeader()
	if a.Request != nil && sentOAuth(a.Request.Header[header]) {
		// The request that met this challenge carried a signature
		// already: a preemptive one, made before the realm was known.
		// The same credentials would be refused again.
		return nil, fmt.Errorf("oauth1: %w: the OAuth signature this request carried was refused", anyauth.ErrNoCredentials)
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &oauth1Session{cfg: o, realm: strings.Clone(c.Realm()), header: header, log: log}, nil
}

// sentOAuth reports whether an answer header holds an OAuth answer.
func sentOAuth(values []string) bool {
	for _, v := range values {
		if len(v) >= 6 && strings.EqualFold(v[:6], "OAuth ") {
			return true
		}
	}
	return false
}

// String describes o without its secrets or key.
func (o OAuth1) String() string {
	return fmt.Sprintf("OAuth1{Origins:%v ConsumerKey:%q Method:%s token:%t Preemptive:%t BodyHash:%t (secrets REDACTED)}",
		[]string(o.Origins), o.ConsumerKey, o.method(), o.Token != "", o.Preemptive, o.BodyHash)
}

// Format prints String whatever the verb, so no secret is ever printed.
func (o OAuth1) Format(f fmt.State, _ rune) { io.WriteString(f, o.String()) }

// oauth1Session is an OAuth1's Session for one protection space. It holds
// nothing per request, so it is its own Leg: every Apply signs anew.
type oauth1Session struct {
	cfg    OAuth1
	realm  string
	header string
	log    *slog.Logger
}

// Start returns s.
func (s *oauth1Session) Start(context.Context, *http.Request) (anyauth.Leg, error) { return s, nil }

// Apply signs req with a fresh nonce and timestamp and sets the answer
// header.
func (s *oauth1Session) Apply(req *http.Request) error {
	in := oauth1Input{cfg: &s.cfg, realm: s.realm}
	var err error
	if s.cfg.nonce != nil {
		in.nonce, err = s.cfg.nonce()
	} else {
		in.nonce, err = oauth1Nonce()
	}
	if err != nil {
		return err
	}
	now := time.Now
	if s.cfg.now != nil {
		now = s.cfg.now
	}
	in.timestamp = now().Unix()
	h, err := in.sign(req)
	if err != nil {
		return err
	}
	req.Header[s.header] = []string{h} // the name is canonical already
	return nil
}

// Continue returns false: a challenge after a signed answer is a
// refusal, and the same credentials would be refused again. The
// server's oauth_problem (the Problem Reporting extension), if any, is
// logged at Debug.
func (s *oauth1Session) Continue(_ context.Context, resp *http.Response, c *anyauth.Challenge) (bool, error) {
	problem := ""
	if c != nil {
		problem = c.Param("oauth_problem")
	}
	s.log.Debug("anyauth: oauth1 signature refused", slog.Int("status", resp.StatusCode), slog.String("oauth_problem", truncateForError(problem)))
	return false, nil
}

// Finish accepts the response: OAuth 1.0 has nothing to verify.
func (s *oauth1Session) Finish(*http.Response) error { return nil }

// String names the client and method, never a secret.
func (s *oauth1Session) String() string {
	return fmt.Sprintf("OAuth1 session for %q, %s (secrets REDACTED)", s.cfg.ConsumerKey, s.cfg.method())
}

// Format prints String whatever the verb.
func (s *oauth1Session) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }
