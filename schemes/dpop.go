package schemes

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// StrengthDPoP ranks DPoP above Bearer: a DPoP token is bound to a key
// the client proves it holds, so a stolen token alone is useless.
const StrengthDPoP = anyauth.StrengthBearer + 50

// DPoP answers DPoP challenges (RFC 9449) with access tokens bound to Key:
// every request carries "Authorization: DPoP <token>" and a DPoP header
// holding a proof made for it alone (its method, its URL without query
// and fragment, the time, a unique jti, the token's hash, and the
// server's nonce once it gave one). A replayed request, after a
// challenge or a retry, gets a new proof; no proof is ever sent twice.
//
// Server nonces (RFC 9449 §8, §9): a 401 with error="use_dpop_nonce" and
// a DPoP-Nonce header is answered with a proof carrying that nonce, and
// again (at most three times per leg) only when the next answer brings
// yet another nonce, as from a server that rotated it while the request
// was in flight; the last nonce of each origin, from any response, is kept,
// shared by every goroutine, and sent from then on, so a server that
// rotates its nonce costs one extra round trip per rotation.
// error="invalid_dpop_proof" is not retried: the server's response is
// returned. error="invalid_token" gets one new token, as Bearer does.
//
// The embedded Bearer holds the token source and its cache (Origins,
// Fetch or Renew, Store, ExpiryDelta, ...; see Bearer): the same single
// flight, refresh ahead, fleet store and bounds. Its tokens must have
// token_type DPoP: a Bearer token is never sent with a proof, nor a DPoP
// token by the Bearer scheme. With a Store, tokens are shared only by
// holders of the same key (TokenKey.Binding is the key's thumbprint).
//
// Token requests need proofs too: NewDPoPClientCredentials fetches with
// them, and TokenClient gives any golang.org/x/oauth2 flow a client that
// adds them and answers the token endpoint's use_dpop_nonce (a 400) the
// same way.
//
// Key is ES256 (ECDSA P-256, the usual choice), EdDSA (Ed25519) or RS256
// (RSA, 2048 bits or more), any crypto.Signer, so an HSM or a KMS can hold
// it. The key never appears in a log line, an error or the printed form
// of a DPoP. A DPoP must not be copied after first use.
type DPoP struct {
	Bearer

	// Key signs the proofs.
	Key crypto.Signer

	once   sync.Once
	key    *dpopKey
	keyErr error
	nonces sync.Map // origin → the server's last DPoP-Nonce
	// sharedNonces, when set, is the map of nonces used instead of
	// nonces: the DPoPs a Discovery makes for one key share theirs.
	sharedNonces *sync.Map
}

// nonceMap is the map d keeps the servers' nonces in.
func (d *DPoP) nonceMap() *sync.Map {
	if d.sharedNonces != nil {
		return d.sharedNonces
	}
	return &d.nonces
}

// NewDPoP returns a DPoP that signs with key, fetches DPoP-bound tokens
// with fetch, and answers origins only. fetch must send its own proofs
// (see TokenClient).
func NewDPoP(key crypto.Signer, fetch func(context.Context) (*oauth2.Token, error), origins ...string) *DPoP {
	d := &DPoP{Key: key}
	d.Origins, d.Fetch = origins, fetch
	return d
}

// NewDPoPClientCredentials returns a DPoP that obtains its tokens with the
// client credentials grant of cfg, sending a proof with each token
// request (and the token endpoint's nonce when it asks for one), and
// answers origins only.
func NewDPoPClientCredentials(key crypto.Signer, cfg *clientcredentials.Config, origins ...string) *DPoP {
	d := NewDPoP(key, nil, origins...)
	d.StoreKey = NewClientCredentialsBearer(cfg).StoreKey
	d.Fetch = func(ctx context.Context) (*oauth2.Token, error) {
		var base http.RoundTripper
		if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
			base = c.Transport
		}
		return cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, d.TokenClient(base)))
	}
	return d
}

// NewDPoPRefresh returns a DPoP that renews its tokens with cfg's
// refresh-token grant, starting from seed, each token request with a
// proof (and the token endpoint's nonce), so that every access token it
// gets is bound to key; it answers origins only. Refresh tokens that
// rotate work as with NewRefreshBearer, Store and StoreKey.Subject
// included. seed's access token is used first only if it is a DPoP token
// (a login made with the same key's proofs); otherwise the first request
// redeems seed's refresh token.
func NewDPoPRefresh(key crypto.Signer, cfg *oauth2.Config, seed *oauth2.Token, origins ...string) *DPoP {
	d := NewDPoP(key, nil, origins...)
	d.StoreKey = refreshKey(cfg)
	d.Renew = refreshWith(cfg, seed, func(ctx context.Context) context.Context {
		var base http.RoundTripper
		if c, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); ok && c != nil {
			base = c.Transport
		}
		return context.WithValue(ctx, oauth2.HTTPClient, d.TokenClient(base))
	})
	if seed != nil && seed.AccessToken != "" && strings.EqualFold(seed.TokenType, "DPoP") {
		d.cache.held = &heldToken{token: completed(seed, nil)}
	}
	return d
}

// init checks Key and makes the embedded Bearer a DPoP token cache.
func (d *DPoP) init() error {
	d.once.Do(func() {
		if d.key, d.keyErr = newDPoPKey(d.Key); d.keyErr == nil {
			d.Bearer.dpop = true
			d.Bearer.StoreKey.Binding = d.key.thumbprint
		}
	})
	return d.keyErr
}

// Thumbprint returns the JWK SHA-256 thumbprint (RFC 7638) of Key's
// public key: the "jkt" an authorization server binds the tokens to.
func (d *DPoP) Thumbprint() (string, error) {
	if err := d.init(); err != nil {
		return "", err
	}
	return d.key.thumbprint, nil
}

// AuthCodeOption returns the dpop_jkt parameter of an authorization
// request (RFC 9449 §10): Key's thumbprint, which binds the authorization
// code to Key, so that only a token request proved with Key can redeem
// it. Redeem the code through TokenClient:
//
//	opt, err := d.AuthCodeOption()
//	url := cfg.AuthCodeURL(state, opt, oauth2.S256ChallengeOption(verifier))
//	// … the user logs in, the redirect brings code …
//	ctx = context.WithValue(ctx, oauth2.HTTPClient, d.TokenClient(nil))
//	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
func (d *DPoP) AuthCodeOption() (oauth2.AuthCodeOption, error) {
	jkt, err := d.Thumbprint()
	if err != nil {
		return nil, err
	}
	return oauth2.SetAuthURLParam("dpop_jkt", jkt), nil
}

// Name returns "DPoP".
func (*DPoP) Name() string { return "DPoP" }

// Traits: the token and its proof are a secret for the proof's lifetime,
// so the cleartext guard applies, as to Bearer.
func (*DPoP) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Strength returns StrengthDPoP for every DPoP challenge.
func (*DPoP) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return StrengthDPoP, c.Token68 == ""
}

// Begin returns the Session of a space on one of d's origins, fetching a
// token if d holds none. A space elsewhere gets an error wrapping
// anyauth.ErrNoCredentials.
func (d *DPoP) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if err := d.init(); err != nil {
		return nil, err
	}
	log, err := d.admit(a, "DPoP")
	if err != nil {
		return nil, err
	}
	return &dpopSession{d: d, header: a.Space.AnswerHeader(), origin: a.Space.Origin(), log: log}, nil
}

// String describes d without its token or key: its origins, algorithm
// and key thumbprint.
func (d *DPoP) String() string {
	alg, jkt := "none", ""
	if d.init() == nil {
		alg, jkt = d.key.alg, d.key.thumbprint
	}
	d.cache.mu.Lock()
	has := d.cache.held != nil
	d.cache.mu.Unlock()
	return fmt.Sprintf("DPoP{Origins:%v alg:%s jkt:%s token held:%t}", []string(d.Origins), alg, jkt, has)
}

// Format prints String whatever the verb, so no token or key is printed.
func (d *DPoP) Format(f fmt.State, _ rune) { io.WriteString(f, d.String()) }

// nonce returns the last DPoP-Nonce of origin, "" for none.
func (d *DPoP) nonce(origin string) string {
	if v, ok := d.nonceMap().Load(origin); ok {
		return v.(string)
	}
	return ""
}

// maxNonce bounds a DPoP-Nonce kept: a server's nonce is an opaque
// token, not a document.
const maxNonce = 1024

// validNonce reports whether n can be sent as a proof's nonce.
func validNonce(n string) bool {
	return n != "" && len(n) <= maxNonce && !strings.ContainsAny(n, "\" \t\r\n")
}

// noteNonce keeps resp's DPoP-Nonce as origin's nonce.
func (d *DPoP) noteNonce(origin string, resp *http.Response) {
	if resp == nil {
		return
	}
	n := resp.Header.Get("DPoP-Nonce")
	if !validNonce(n) {
		return
	}
	if old, ok := d.nonceMap().Load(origin); !ok || old.(string) != n {
		d.nonceMap().Store(origin, n)
	}
}

// originOfURL is u's origin as ProtectionSpace.Origin writes it, the
// default port filled in: the key of DPoP's nonces, and the origin
// discovery scopes a token to.
func originOfURL(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = "80"
		if strings.EqualFold(u.Scheme, "https") {
			port = "443"
		}
	}
	return (&anyauth.ProtectionSpace{URLScheme: strings.ToLower(u.Scheme), Host: strings.ToLower(u.Hostname()), Port: port}).Origin()
}

// dpopSession is a DPoP's Session for one protection space.
type dpopSession struct {
	d      *DPoP
	header string
	origin string
	log    *slog.Logger
}

// Start takes the current token, fetching one if there is none.
func (s *dpopSession) Start(ctx context.Context, _ *http.Request) (anyauth.Leg, error) {
	h, err := s.d.current(ctx, nil, s.log)
	if err != nil {
		return nil, err
	}
	return &dpopLeg{s: s, held: h}, nil
}

func (s *dpopSession) String() string             { return "DPoP session (token REDACTED)" }
func (s *dpopSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// dpopLeg is one request's answer: its token, and a new proof per round
// trip.
type dpopLeg struct {
	s          *dpopSession
	held       *heldToken
	refreshed  bool   // a new token was fetched after invalid_token
	sentNonce  string // the nonce of the last proof sent
	askedNonce string // the nonce the server last asked for, "" before
	nonceAsks  int    // use_dpop_nonce answers so far
}

// maxNonceAsks bounds the use_dpop_nonce answers of one request. Each
// must carry a nonce other than the one just sent, so more than one only
// happens when the server rotates its nonce while the request is in
// flight, as a busy server with many concurrent clients does.
const maxNonceAsks = 3

// Apply sets "Authorization: DPoP <token>" and a fresh proof.
func (l *dpopLeg) Apply(req *http.Request) error {
	tok := l.held.token.AccessToken
	nonce := l.askedNonce
	if nonce == "" {
		nonce = l.s.d.nonce(l.s.origin)
	}
	l.sentNonce = nonce
	proof, err := l.s.d.key.proof(req.Method, req.URL, tok, nonce)
	if err != nil {
		return err
	}
	req.Header[l.s.header] = []string{"DPoP " + tok}
	req.Header["Dpop"] = []string{proof}
	return nil
}

// Continue answers again when the server asks for its nonce
// (use_dpop_nonce, with a DPoP-Nonce header other than the one just sent;
// up to maxNonceAsks times) or refused the token (invalid_token: one new
// token). Anything else, invalid_dpop_proof included, returns the
// server's response.
func (l *dpopLeg) Continue(ctx context.Context, resp *http.Response, c *anyauth.Challenge) (bool, error) {
	l.s.d.noteNonce(l.s.origin, resp)
	if c == nil {
		return false, nil
	}
	switch c.Param("error") {
	case "use_dpop_nonce":
		if resp == nil || l.nonceAsks >= maxNonceAsks {
			return false, nil
		}
		n := resp.Header.Get("DPoP-Nonce")
		if !validNonce(n) || n == l.sentNonce {
			return false, nil
		}
		l.nonceAsks++
		l.askedNonce = n
		return true, nil
	case "invalid_token":
		if l.refreshed {
			return false, nil
		}
		l.refreshed = true
		h, again, err := l.s.d.replaceRefused(ctx, l.held, l.s.log)
		l.held = h
		return again, err
	}
	return false, nil
}

// Finish keeps the response's nonce and notes that the token was
// accepted.
func (l *dpopLeg) Finish(resp *http.Response) error {
	l.s.d.noteNonce(l.s.origin, resp)
	if !l.held.accepted.Load() {
		l.held.accepted.Store(true)
	}
	return nil
}

func (l *dpopLeg) String() string             { return "DPoP leg (token REDACTED)" }
func (l *dpopLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }
