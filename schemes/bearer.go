package schemes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
)

// Bearer answers Bearer challenges (RFC 6750) with OAuth 2.0 access
// tokens, on the origins it is given only.
//
// A Bearer holds one current token, shared by every protection space and
// every request. It fetches a token when it has none, when the one it has
// is within ExpiryDelta of its Expiry, and when a server refuses the token
// a request sent with error="invalid_token". Fetches are single-flight:
// 32 requests refused together cause one fetch, and a request refused
// with a token that another request has already replaced just uses the
// new one. A request is sent again after a refusal once; a second
// refusal, or any other error code (invalid_request; insufficient_scope
// comes as a 403), returns the server's response as it is, and
// BearerErrorOf reads its error fields.
//
// The request is replayed after a refusal like after any 401, because the
// server did not act on it: a POST too, when its body can be replayed
// (GetBody, a seekable body, or one no larger than
// Transport.MaxBodyBuffer).
//
// Once an origin has asked for Bearer, the Transport sends the token to
// every path of that origin from the first request on. A token is a
// reusable secret: it goes over plain http only to loopback hosts unless
// the Transport allows cleartext (RFC 6750 §5.3). No token appears in a
// log line, an error, or the printed form of a Bearer, its sessions or
// legs.
//
// A Bearer must not be copied after first use; NewBearer,
// NewStaticBearer and NewBearerFromSource return pointers.
type Bearer struct {
	// Origins are the origins ("https://api.example.com") the token may
	// be sent to. Challenges from anywhere else, proxies included, are
	// not answered: a token is never handed to whoever asks.
	Origins anyauth.Origins

	// Fetch returns a new token. It should not cache: Bearer caches, and
	// calls Fetch again only when the token it holds expires or is
	// refused. clientcredentials.Config.Token fits as it is. ctx carries
	// the values of the request that needed the token (such as
	// oauth2.HTTPClient) but not its cancellation, since other requests
	// may wait for the same fetch.
	Fetch func(ctx context.Context) (*oauth2.Token, error)

	// ExpiryDelta is how long before its Expiry a token is fetched anew.
	// Zero means DefaultExpiryDelta.
	ExpiryDelta time.Duration

	cache tokenCache
}

// NewBearer returns a Bearer that fetches tokens with fetch and sends them
// to origins only.
func NewBearer(fetch func(context.Context) (*oauth2.Token, error), origins ...string) *Bearer {
	return &Bearer{Origins: origins, Fetch: fetch}
}

// NewStaticBearer returns a Bearer that sends token to origins only. A
// refused static token is not retried.
func NewStaticBearer(token string, origins ...string) *Bearer {
	t := &oauth2.Token{AccessToken: token, TokenType: "Bearer"}
	return NewBearer(func(context.Context) (*oauth2.Token, error) { return t, nil }, origins...)
}

// NewBearerFromSource returns a Bearer that takes tokens from src and sends
// them to origins only. src's Token method has no context, so a request
// waiting for it gives up when its context ends while the call goes on.
// Give an uncached source: an oauth2.ReuseTokenSource (what most Config
// methods return) hands back the refused token until it expires by its
// clock, so a refusal cannot be cured.
func NewBearerFromSource(src oauth2.TokenSource, origins ...string) *Bearer {
	return NewBearer(func(context.Context) (*oauth2.Token, error) { return src.Token() }, origins...)
}

func (b *Bearer) source(ctx context.Context) (*oauth2.Token, error) {
	if b.Fetch == nil {
		return nil, fmt.Errorf("bearer: %w: Bearer.Fetch is nil", anyauth.ErrNoCredentials)
	}
	return b.Fetch(ctx)
}

// Name returns "Bearer".
func (*Bearer) Name() string { return "Bearer" }

// Traits reports that a Bearer header reveals a reusable secret, so the
// Transport applies its cleartext guard.
func (*Bearer) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Strength returns anyauth.StrengthBearer for every Bearer challenge.
func (*Bearer) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthBearer, c.Token68 == ""
}

// Scope returns "/": a token is valid on its whole origin, so once one
// path has asked for Bearer, every path of the origin gets the token at
// once.
func (*Bearer) Scope(*anyauth.Challenge, *url.URL) []string { return []string{"/"} }

// Begin returns the Session of a space on one of b's origins, fetching a
// token if b holds none. A space elsewhere gets an error wrapping
// anyauth.ErrNoCredentials.
func (b *Bearer) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if !b.Origins.Allows(&a.Space) {
		return nil, fmt.Errorf("bearer: %w: %s is not among the Bearer's origins", anyauth.ErrNoCredentials, a.Space.Origin())
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &bearerSession{b: b, header: a.Space.AnswerHeader(), log: log}, nil
}

// String describes b without its token.
func (b *Bearer) String() string {
	b.cache.mu.Lock()
	has := b.cache.token != nil
	b.cache.mu.Unlock()
	return fmt.Sprintf("Bearer{Origins:%v token held:%t}", []string(b.Origins), has)
}

// Format prints String whatever the verb, so no token is ever printed.
func (b *Bearer) Format(f fmt.State, _ rune) { io.WriteString(f, b.String()) }

// bearerSession is a Bearer's Session for one protection space.
type bearerSession struct {
	b      *Bearer
	header string
	log    *slog.Logger
}

// Start takes the Bearer's current token, fetching one if it has none or
// it is about to expire.
func (s *bearerSession) Start(ctx context.Context, _ *http.Request) (anyauth.Leg, error) {
	t, err := s.b.current(ctx, "", s.log)
	if err != nil {
		return nil, err
	}
	return &bearerLeg{s: s, token: t}, nil
}

func (s *bearerSession) String() string             { return "Bearer session (token REDACTED)" }
func (s *bearerSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// bearerLeg is one request's answer: the token it sends.
type bearerLeg struct {
	s         *bearerSession
	token     *oauth2.Token
	refreshed bool
}

// Apply sets "Authorization: Bearer <token>".
func (l *bearerLeg) Apply(req *http.Request) error {
	req.Header.Set(l.s.header, "Bearer "+l.token.AccessToken)
	return nil
}

// Continue fetches a fresh token once when the server refused the one
// this request sent with error="invalid_token", and asks for the request
// to be sent again with it.
func (l *bearerLeg) Continue(ctx context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if c == nil || l.refreshed || c.Param("error") != "invalid_token" {
		return false, nil
	}
	l.refreshed = true
	t, err := l.s.b.current(ctx, l.token.AccessToken, l.s.log)
	if err != nil {
		return false, err
	}
	if t.AccessToken == l.token.AccessToken {
		l.s.log.Debug("anyauth: bearer token not retried", "why", ErrTokenRefused.Error())
		return false, nil
	}
	l.token = t
	return true, nil
}

// Finish accepts the response: Bearer has nothing to verify.
func (l *bearerLeg) Finish(*http.Response) error { return nil }

func (l *bearerLeg) String() string             { return "Bearer leg (token REDACTED)" }
func (l *bearerLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }
