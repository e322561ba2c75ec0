// Package sigv4 signs the requests of an anyauth.Transport with AWS
// Signature Version 4, as curl's --aws-sigv4 does: a Signer is an
// anyauth.Scheme that volunteers a signature to the origins it is given,
// from the first request, for the region and service it is given.
//
// The signature is made by the AWS SDK's own signer
// (github.com/aws/aws-sdk-go-v2/aws/signer/v4, Signer.SignHTTP) with
// credentials from an aws.CredentialsProvider; this package chooses what to
// sign, hashes the body through the Transport's replay source, keeps the
// clock offset of each origin, and keeps secrets out of logs. Only the SDK's
// core module is needed: its default credential chain (environment, shared
// files, SSO, IMDS, ...) lives in the nested module
// github.com/anyauth/anyauth/sigv4/awsdefault, so that importing this
// package does not pull the whole SDK in. To use the default chain without
// it:
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	// handle err
//	s := sigv4.New(cfg.Region, "s3", cfg.Credentials, "https://bucket.s3.eu-west-1.amazonaws.com")
//
// # What is signed
//
// Every round trip that carries the signature is signed anew (the
// Transport calls Leg.Apply before each one), with a fresh X-Amz-Date: a
// request replayed after a proxy's 407 is signed again, and so is every
// leg of a handshake with a proxy. The signature covers the method, the
// path (escaped once for S3, twice for every other service, as AWS wants;
// for S3 the path is also sent as it is signed, every byte but the
// unreserved ones percent-encoded, so that "$", "+" or "=" in a key mean
// the same to S3 and to the signature), the query parameters (the request is sent with its query in the
// canonical form it was signed in), the Host, X-Amz-Date,
// X-Amz-Content-Sha256, Content-Length when it is known, X-Amz-Security-Token
// with temporary credentials, and every other header of the request except
// the ones the SDK never signs (User-Agent, Expect, Transfer-Encoding,
// X-Amzn-Trace-Id) and the hop-by-hop ones that a proxy may remove or
// rewrite (Connection and the headers it names, Keep-Alive,
// Proxy-Authorization, Proxy-Connection, TE, Trailer, Upgrade).
//
// # The payload
//
// X-Amz-Content-Sha256 is set on every request, and signed: S3 needs it,
// and other services take it as one more signed header. Its value is, by
// Signer.Payload:
//
//   - PayloadAuto (the default): the hex SHA-256 of the body when the
//     body can be read before it is sent, which is whenever the Transport
//     can replay it (the request's GetBody, a seekable body such as an
//     *os.File, or a stream no larger than Transport.MaxBodyBuffer); the
//     hash is read through the GetBody the Transport gives the round trip,
//     a reader of its own that leaves the body to be sent where it is, so
//     the caller's body is never consumed twice (an *os.File is read with
//     ReadAt; a stream is read from its source once, into the Transport's
//     replay buffer, and sent from there, so it starts going out only once
//     it was hashed). The hash is computed once per request: the replay
//     after a 407 reuses it without reading the body again. A body that
//     cannot be read
//     before it is sent (a stream over the buffer) goes with
//     UNSIGNED-PAYLOAD over https, and fails the request over plain http
//     with an error wrapping anyauth.ErrBodyNotReplayable, as the SDK's S3
//     client refuses an unseekable body without TLS;
//   - PayloadSigned: always the hash; a body that cannot be read first
//     fails the request;
//   - PayloadUnsigned: UNSIGNED-PAYLOAD for every request with a body,
//     which is then never read before it is sent (a stream of any size,
//     a body the caller produces as it goes). S3 accepts it, over plain
//     http too; most other services do not.
//
// A request without a body gets the hash of the empty string. A request
// whose caller set X-Amz-Content-Sha256 is signed with that value and its
// body is not read (curl does the same): STREAMING-UNSIGNED-PAYLOAD-TRAILER
// or a hash computed ahead.
//
// UNSIGNED-PAYLOAD leaves the body out of the signature: whoever can change
// the request in transit can change the body, and the server still accepts
// the signature. The signature still covers the method, the target, the
// signed headers and the time. Over https, TLS protects the body; over
// plain http nothing does, which is why PayloadAuto never falls back to it
// there.
//
// # Clock skew
//
// AWS refuses a signature made more than 15 minutes away from its own
// clock (403 RequestTimeTooSkewed). A Signer keeps a clock offset per
// origin, as the SDK's clock skew correction does: every response that
// reaches the Leg (every final response of a signed request, and a 401)
// with a Date header, not from a cache (no Age header) and received less
// than 15 minutes after the request was signed, sets the origin's offset
// to the server's Date minus the local clock when the response came; the
// signing time is the local clock plus the offset. So once one response
// told the server's time, the next request is signed on it.
//
// The request that met RequestTimeTooSkewed itself is returned to the
// caller as it came (403): the Transport hands a Leg only challenges (401
// and 407) to answer, and shows it other responses only through Finish,
// which can neither read the body (where S3 says RequestTimeTooSkewed) nor
// send the request again. The Leg has a method for that hook
// (RetryAfterResponse); a Transport that calls it sends the request again,
// once, signed on the server's clock.
//
// # Scope and secrets
//
// A Signer signs only requests to its Origins, which must be listed: it
// volunteers to them (anyauth.Volunteer) and to nothing else, answers no
// challenge of another origin or of a proxy, and a redirect elsewhere goes
// unsigned. It composes with the schemes that answer challenges: a proxy's
// 407 is answered by the proxy's scheme (Transport.ProxyCredentials) and
// the replay is signed again. The secret access key is never logged, put
// in an error, or printed: String and Format of a Signer, its sessions and
// legs redact it, and the credentials it holds are never formatted.
package sigv4

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Name is the scheme name of a Signer: the algorithm of its Authorization
// header.
const Name = "AWS4-HMAC-SHA256"

// UnsignedPayload is the X-Amz-Content-Sha256 value of a request whose body
// the signature does not cover.
const UnsignedPayload = "UNSIGNED-PAYLOAD"

// EmptyPayloadHash is the hex SHA-256 of an empty body, the
// X-Amz-Content-Sha256 of a request without one.
const EmptyPayloadHash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// StrengthSigV4 is the strength of a Signer's answer: a signature that
// reveals no reusable secret, ranked above Bearer and below Negotiate. It
// matters only if a server challenges with the scheme "AWS4-HMAC-SHA256",
// which AWS does not do: a Signer volunteers its signature instead.
const StrengthSigV4 = anyauth.StrengthBearer + 30

// MaxClockSkew is how far from the server's clock AWS accepts a signature.
// A response received later than this after its request was signed does
// not tell the clock offset.
const MaxClockSkew = 15 * time.Minute

// Payload chooses the X-Amz-Content-Sha256 of requests with a body.
type Payload int

// The payload modes; see the package documentation.
const (
	// PayloadAuto signs the body's SHA-256 when the body can be read
	// before it is sent; otherwise UNSIGNED-PAYLOAD over https, and an
	// error over plain http.
	PayloadAuto Payload = iota
	// PayloadSigned always signs the body's SHA-256, and fails requests
	// whose body cannot be read before it is sent.
	PayloadSigned
	// PayloadUnsigned sends UNSIGNED-PAYLOAD with every body, which is
	// then not read before it is sent (S3 only).
	PayloadUnsigned
)

// String names the mode.
func (p Payload) String() string {
	switch p {
	case PayloadAuto:
		return "auto"
	case PayloadSigned:
		return "signed"
	case PayloadUnsigned:
		return "unsigned"
	}
	return fmt.Sprintf("Payload(%d)", int(p))
}

// ErrInvalidConfig is wrapped by the errors of a Signer that cannot sign:
// no origins, no region, service or credentials, an unknown Payload.
var ErrInvalidConfig = errors.New("sigv4: invalid configuration")

// A Signer signs requests to its Origins with AWS Signature Version 4 for
// Region and Service. It is an anyauth.Scheme and an anyauth.Volunteer:
// put it in Transport.Schemes. See the package documentation for what it
// signs and how.
//
// A Signer must not be copied after first use (it keeps the clock offsets
// and a credentials cache); New returns a pointer. It is safe for
// concurrent use.
type Signer struct {
	// Origins are the origins ("https://bucket.s3.eu-west-1.amazonaws.com")
	// whose requests are signed, from the first one. Nothing else is.
	Origins anyauth.Origins

	// Region is the region the requests are signed for ("us-east-1").
	Region string

	// Service is the signing name of the service ("s3", "execute-api",
	// "es"). For "s3" the path is escaped once, as S3 wants.
	Service string

	// Credentials supplies the access key. It is asked on every round
	// trip, through an aws.CredentialsCache unless it is one, so that
	// temporary credentials are renewed before they expire.
	// awsdefault.Credentials is the SDK's default chain; StaticCredentials
	// a fixed key.
	Credentials aws.CredentialsProvider

	// Payload chooses what X-Amz-Content-Sha256 says of a body.
	Payload Payload

	// DisableClockSkewCorrection signs with the local clock as it is, and
	// keeps no offset.
	DisableClockSkewCorrection bool

	// now replaces the clock in tests; omitContentSHA256 leaves
	// X-Amz-Content-Sha256 out and escapeOnce escapes the path once
	// whatever the service, for the test suite's vectors.
	now               func() time.Time
	omitContentSHA256 bool
	escapeOnce        bool

	once sync.Once
	st   *state // set by init; a pointer, so that printing a Signer shows no credentials
}

// state is what a Signer makes at first use.
type state struct {
	creds  aws.CredentialsProvider
	signer *v4.Signer
	clocks clocks
}

// New returns a Signer for region and service that signs the requests to
// origins with the credentials of provider.
func New(region, service string, provider aws.CredentialsProvider, origins ...string) *Signer {
	return &Signer{Origins: origins, Region: region, Service: service, Credentials: provider}
}

// StaticCredentials returns a provider of a fixed access key, secret key
// and (for temporary credentials, else "") session token.
func StaticCredentials(accessKeyID, secretAccessKey, sessionToken string) aws.CredentialsProvider {
	return staticCredentials{aws.Credentials{
		AccessKeyID:     accessKeyID,
		SecretAccessKey: secretAccessKey,
		SessionToken:    sessionToken,
		Source:          "sigv4.StaticCredentials",
	}}
}

// staticCredentials is StaticCredentials' provider. It prints without its
// secrets.
type staticCredentials struct{ c aws.Credentials }

// Retrieve returns the credentials, or an error when the keys are empty.
func (s staticCredentials) Retrieve(context.Context) (aws.Credentials, error) {
	if !s.c.HasKeys() {
		return aws.Credentials{}, fmt.Errorf("sigv4: %w: the static access key or secret key is empty", anyauth.ErrNoCredentials)
	}
	return s.c, nil
}

// String names the access key, never the secret key or session token.
func (s staticCredentials) String() string {
	return fmt.Sprintf("sigv4.StaticCredentials{AccessKeyID:%q (secret REDACTED)}", s.c.AccessKeyID)
}

// Format prints String whatever the verb.
func (s staticCredentials) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// init prepares the SDK signer and the credentials cache once.
func (s *Signer) init() {
	s.once.Do(func() {
		st := &state{signer: v4.NewSigner(), creds: s.Credentials}
		if _, cached := st.creds.(*aws.CredentialsCache); st.creds != nil && !cached {
			if _, static := st.creds.(staticCredentials); !static {
				st.creds = aws.NewCredentialsCache(st.creds)
			}
		}
		s.st = st
	})
}

// check reports what makes s unable to sign.
func (s *Signer) check() error {
	switch {
	case len(s.Origins) == 0:
		return fmt.Errorf("%w: Signer.Origins is empty, so nothing may be signed; list the origins the credentials are for (sigv4.New(region, service, creds, \"https://bucket.s3.us-east-1.amazonaws.com\"))", ErrInvalidConfig)
	case s.Region == "":
		return fmt.Errorf("%w: Signer.Region is empty", ErrInvalidConfig)
	case s.Service == "":
		return fmt.Errorf("%w: Signer.Service is empty", ErrInvalidConfig)
	case s.Credentials == nil:
		return fmt.Errorf("%w: Signer.Credentials is nil", ErrInvalidConfig)
	case s.Payload < PayloadAuto || s.Payload > PayloadUnsigned:
		return fmt.Errorf("%w: unknown Signer.Payload %d", ErrInvalidConfig, int(s.Payload))
	case strings.ContainsAny(s.Region+s.Service, "/ \t\r\n"):
		return fmt.Errorf("%w: Signer.Region and Signer.Service may not hold '/' or spaces", ErrInvalidConfig)
	}
	if err := s.Origins.Check(); err != nil {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.TrimPrefix(err.Error(), "anyauth: "))
	}
	return nil
}

// Name returns "AWS4-HMAC-SHA256".
func (*Signer) Name() string { return Name }

// Traits reports that a signature reveals no reusable secret: it goes over
// plain http too, like a Digest answer.
func (*Signer) Traits() anyauth.Traits { return anyauth.Traits{} }

// Strength returns StrengthSigV4 for a challenge without a token68.
func (*Signer) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return StrengthSigV4, c.Token68 == ""
}

// Scope returns "/": a signature is valid on the whole origin.
func (*Signer) Scope(*anyauth.Challenge, *url.URL) []string { return []string{"/"} }

// Volunteers reports whether u's origin is among Origins: its requests are
// signed from the first one.
func (s *Signer) Volunteers(u *url.URL) bool {
	if u == nil {
		return false
	}
	return s.Origins.AllowsURL(u)
}

// Begin returns the Session of a space on one of the Signer's origins. A
// space elsewhere, a proxy's included, gets an error wrapping
// anyauth.ErrNoCredentials. A Signer that cannot sign (see
// ErrInvalidConfig) fails each request at Session.Start, so that its
// requests are not sent unsigned.
func (s *Signer) Begin(_ context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if !s.Origins.Allows(&a.Space) {
		return nil, fmt.Errorf("sigv4: %w: %s is not among the Signer's origins", anyauth.ErrNoCredentials, a.Space.Origin())
	}
	s.init()
	return &session{s: s, origin: a.Space.Origin(), header: a.Space.AnswerHeader(), log: a.Logger}, nil
}

// String describes s without its credentials.
func (s *Signer) String() string {
	return fmt.Sprintf("sigv4.Signer{Origins:%v Region:%q Service:%q Payload:%s credentials:%t (secret REDACTED)}",
		[]string(s.Origins), s.Region, s.Service, s.Payload, s.Credentials != nil)
}

// Format prints String whatever the verb, so no secret is ever printed.
func (s *Signer) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// ClockOffset returns the clock offset the Signer keeps for origin
// ("https://host:port", "https://host" for the default port): how far the
// server's clock is ahead of the local one, as its last response told.
func (s *Signer) ClockOffset(origin string) time.Duration {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return 0
	}
	space := anyauth.ProtectionSpace{URLScheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Hostname()), Port: u.Port()}
	if space.Port == "" {
		space.Port = "80"
		if space.URLScheme == "https" {
			space.Port = "443"
		}
	}
	s.init()
	return s.st.clocks.offset(space.Origin())
}

// clock returns the local time.
func (s *Signer) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}
