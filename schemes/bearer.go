package schemes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
)

// Bearer answers Bearer challenges (RFC 6750) with OAuth 2.0 access
// tokens, on the origins it is given only.
//
// A Bearer holds one current token, shared by every protection space and
// every request. It fetches a token when it has none, ahead of its
// expiry (see ExpiryDelta), and when a server refuses the token
// a request sent with error="invalid_token". Fetches are single-flight:
// 32 requests refused together cause one fetch, and a request refused
// with a token that another request has already replaced just uses the
// new one. A request is sent again after a refusal once; a second
// refusal, or any other error code (invalid_request; insufficient_scope
// comes as a 403), returns the server's response as it is, and
// BearerErrorOf reads its error fields.
//
// Fetches are bounded, so that a token endpoint that hangs or throttles,
// or a resource server that refuses every token, cannot wedge the Bearer
// or make it hammer the endpoint:
//
//   - Each call of Fetch gets FetchTimeout. A call that overruns it is
//     abandoned, even if Fetch ignores its context: the requests waiting
//     for it get an error wrapping context.DeadlineExceeded, the next
//     request starts a new fetch, and whatever the abandoned call returns
//     later is dropped. A request that joined a fetch already under way
//     and sees it abandoned starts one more (once), so that it is not
//     failed by a fetch it did not see begin. No request waits beyond its
//     own context.
//   - A 429 or 503 from the token endpoint (an *oauth2.RetrieveError) is
//     retried after its Retry-After, seconds or an HTTP-date, taken as at
//     least 1 s (also when missing) and at most 60 s; one fetch calls
//     Fetch at most 3 times. Requests that come meanwhile wait for the
//     same fetch, each within its own context; when none waits any more,
//     the fetch ends, and the next one still waits out the Retry-After.
//     Any other 4xx but 408 (invalid_client, invalid_grant) is permanent
//     (anyauth.IsPermanent) and is not retried.
//   - A refusal replaces the token at most once per MinRefreshInterval
//     when refreshing does not help: if the token refused was itself
//     fetched after a refusal, no request has been accepted with it, and
//     it is younger than MinRefreshInterval, the refused request gets the
//     server's 401 without a fetch. A server that refuses every token thus
//     costs one fetch per MinRefreshInterval, not one per request; a
//     token that was accepted before it was refused (it expired, or was
//     revoked) is replaced at once.
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
	// may wait for the same fetch; its deadline is FetchTimeout away.
	Fetch func(ctx context.Context) (*oauth2.Token, error)

	// ExpiryDelta is how long before its Expiry a token is no longer
	// sent: a request then waits for a new one. Zero means
	// DefaultExpiryDelta, but no more than a tenth of the token's
	// lifetime (expires_in), so that a 20 s token is used for 18 s.
	//
	// Before that, within a fifth of its lifetime (at most five minutes)
	// of its Expiry, the token is refreshed ahead: one fetch starts in the
	// background while requests go on with the token held, so that they
	// seldom wait for a fetch at all.
	ExpiryDelta time.Duration

	// Preemptive sends the token to Origins from the first request,
	// without waiting for a challenge, as oauth2.NewClient does: for APIs
	// that answer 401 without "WWW-Authenticate: Bearer", which would
	// otherwise never get it. N requests then cost N round trips. The
	// token still goes to Origins only, and over plain http only where
	// the Transport allows cleartext.
	Preemptive bool

	// FetchTimeout bounds each call of Fetch: it is the deadline of the
	// context Fetch gets, and a call still running when it passes is
	// abandoned, its late result dropped. Zero or less means
	// DefaultFetchTimeout (30 s). It bounds the Bearer, not a request:
	// a request gives up sooner when its own context ends.
	FetchTimeout time.Duration

	// MinRefreshInterval is how long a token fetched after a refusal,
	// and refused in turn before any server accepted it, is kept: within
	// it, a refusal returns the server's 401 without a fetch. It is also
	// how long a token endpoint's refusal of the grant (a permanent error
	// such as invalid_grant or invalid_client) is returned to requests
	// without asking again. Zero means
	// DefaultMinRefreshInterval (5 s); less than zero turns the limit off,
	// so that every refusal may cause a fetch.
	MinRefreshInterval time.Duration

	// Renew, used instead of Fetch, returns a new token given the last
	// one (nil when there is none yet), for grants whose refresh token
	// changes: NewRefreshBearer redeems last's refresh token with it. With
	// a Store, last is the token the fleet stored, so that the refresh
	// token that another process rotated is the one redeemed, by one
	// process at a time. A new token that comes without a refresh token
	// keeps last's. When both are set, Renew is used.
	Renew func(ctx context.Context, last *oauth2.Token) (*oauth2.Token, error)

	// Store, if set, shares tokens with the other Bearers (in this
	// process or others) that use the same store and StoreKey, so that
	// a fleet fetches one token per expiry instead of one per process
	// (see TokenStore). Requests still take the token this Bearer holds
	// without touching the store; it is read only when this Bearer has no
	// valid token, when its token comes near its expiry, or when its token
	// was refused. A refused token is invalidated in the store only if it
	// is still the one stored. When the store fails, the Bearer fetches on
	// its own (logged at Warn once per outage, at Info when it is back),
	// so no request fails because of it; a refresh-token Bearer then
	// refreshes only once its token has expired. nil keeps tokens in this
	// Bearer only.
	Store TokenStore

	// StoreKey names what the tokens are for: Bearers with equal keys
	// share their tokens through Store, so it names the token endpoint,
	// the client and its secret, the scopes, the audience and, for a
	// user's grant, the user. Only its SHA-256 reaches the store. It must
	// be set when Store is; NewClientCredentialsBearer and
	// NewRefreshBearer set it.
	StoreKey TokenKey

	// StoreLease is how long the process fetching a token holds the
	// store's lease on it: others wait for its token that long at most,
	// then fetch themselves, so it bounds the wait when a fetcher dies.
	// It is never less than FetchTimeout plus 2 s, which is also its
	// default.
	StoreLease time.Duration

	// dpop makes the Bearer the token cache of a DPoP scheme: its tokens
	// must be of type DPoP. Set before the first fetch (DPoP.init).
	dpop bool

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
// them to origins only. src's Token method has no context, so a call that
// hangs goes on after FetchTimeout, abandoned; a request waiting for it
// gives up when its own context ends or the call is abandoned.
// Give an uncached source: an oauth2.ReuseTokenSource (what most Config
// methods return) hands back the refused token until it expires by its
// clock, so a refusal cannot be cured.
func NewBearerFromSource(src oauth2.TokenSource, origins ...string) *Bearer {
	return NewBearer(func(context.Context) (*oauth2.Token, error) { return src.Token() }, origins...)
}

// source calls Renew with last, or else Fetch.
func (b *Bearer) source(ctx context.Context, last *oauth2.Token) (*oauth2.Token, error) {
	switch {
	case b.Renew != nil:
		return b.Renew(ctx, last)
	case b.Fetch != nil:
		return b.Fetch(ctx)
	}
	return nil, fmt.Errorf("bearer: %w: Bearer.Fetch and Bearer.Renew are nil", anyauth.ErrNoCredentials)
}

// Volunteers reports whether requests to u's origin carry the token from
// the start: Preemptive is set and the origin is among Origins (see
// anyauth.Volunteer).
func (b *Bearer) Volunteers(u *url.URL) bool {
	if !b.Preemptive || u == nil {
		return false
	}
	return b.Origins.AllowsURL(u)
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
	log, err := b.admit(a, "Bearer")
	if err != nil {
		return nil, err
	}
	return &bearerSession{b: b, header: a.Space.AnswerHeader(), log: log}, nil
}

// admit checks that b's tokens may answer a's space: b lists origins,
// its Store is configured, and the space's origin is listed (else an
// error wrapping anyauth.ErrNoCredentials). It returns a's logger, or one
// that discards. scheme names the scheme in errors: "Bearer", "DPoP".
func (b *Bearer) admit(a *anyauth.Attempt, scheme string) (*slog.Logger, error) {
	prefix := strings.ToLower(scheme) + ": "
	if len(b.Origins) == 0 {
		return nil, errors.New(prefix + scheme + ".Origins is empty, so the token goes nowhere; list the origins it may be sent to (New" + scheme + "(..., \"https://api.example.com\"))")
	}
	if err := b.checkStore(); err != nil {
		return nil, err
	}
	if !b.Origins.Allows(&a.Space) {
		return nil, fmt.Errorf("%s%w: %s is not among the %s's origins", prefix, anyauth.ErrNoCredentials, a.Space.Origin(), scheme)
	}
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler), nil
	}
	return a.Logger, nil
}

// String describes b without its token.
func (b *Bearer) String() string {
	b.cache.mu.Lock()
	has := b.cache.held != nil
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
	h, err := s.b.current(ctx, nil, s.log)
	if err != nil {
		return nil, err
	}
	return &bearerLeg{s: s, held: h}, nil
}

func (s *bearerSession) String() string             { return "Bearer session (token REDACTED)" }
func (s *bearerSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// bearerLeg is one request's answer: the token it sends.
type bearerLeg struct {
	s         *bearerSession
	held      *heldToken
	refreshed bool
}

// Apply sets "Authorization: Bearer <token>".
func (l *bearerLeg) Apply(req *http.Request) error {
	req.Header[l.s.header] = []string{"Bearer " + l.held.token.AccessToken} // the name is canonical already
	return nil
}

// Continue fetches a fresh token once when the server refused the one
// this request sent with error="invalid_token", and asks for the request
// to be sent again with it. It does not when Bearer.MinRefreshInterval
// holds the refresh back, nor when the fetch brings the refused token
// back.
func (l *bearerLeg) Continue(ctx context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if c == nil || l.refreshed || c.Param("error") != "invalid_token" {
		return false, nil
	}
	l.refreshed = true
	h, again, err := l.s.b.replaceRefused(ctx, l.held, l.s.log)
	l.held = h
	return again, err
}

// replaceRefused gets the token that replaces held, which a server
// refused, and reports whether the request should be sent again with
// it: not when MinRefreshInterval holds the refresh back, nor when the
// source hands back the refused token.
func (b *Bearer) replaceRefused(ctx context.Context, held *heldToken, log *slog.Logger) (*heldToken, bool, error) {
	h, err := b.current(ctx, held, log)
	if err != nil {
		return held, false, err
	}
	if h == held {
		return held, false, nil // held back; current logged why
	}
	if h.token.AccessToken == held.token.AccessToken {
		log.Debug("anyauth: bearer token not retried", "why", ErrTokenRefused.Error())
		return held, false, nil
	}
	return h, true, nil
}

// Finish accepts the response: Bearer has nothing to verify. It notes
// that the token was accepted, which lifts MinRefreshInterval's hold on
// refreshing it.
func (l *bearerLeg) Finish(*http.Response) error {
	if !l.held.accepted.Load() {
		l.held.accepted.Store(true)
	}
	return nil
}

func (l *bearerLeg) String() string             { return "Bearer leg (token REDACTED)" }
func (l *bearerLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }
