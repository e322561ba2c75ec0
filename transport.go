package anyauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// DefaultMaxAnswers is the default Transport.MaxAnswers.
const DefaultMaxAnswers = 4

// maxDrain is how much of an intermediate 401/407 body is read so its
// connection can be reused; a longer body is closed unread.
const maxDrain = 64 << 10

// Transport is an http.RoundTripper that answers authentication
// challenges. It sends each request through Base; when the response is a
// 401 (or a 407 from the proxy of a plain-http request) it picks the
// strongest challenge that one of Schemes understands and has credentials
// for, and replays the request with the answer, continuing multi-leg
// handshakes. A proxy's 407 to the CONNECT of an https request is
// answered on the tunnel (see Base). Once an answer succeeds, later
// requests in the same protection space carry it from the start.
//
// What a Transport remembers is exact. An answer is sent preemptively
// only in the protection space it succeeded in (scheme, origin or proxy,
// realm, path prefix) and only for the identity it was made for: the
// credential provider is asked on every request that meets a known space,
// once per realm and request, and the user name and password it gives
// (kept as the name and a SHA-256 digest) must be those of the cached
// answer. So one Transport may serve many users, each request's user
// chosen by a CredentialFunc reading its context. A scheme that holds its
// own credentials (a Bearer token, a Kerberos ticket cache) answers for
// whoever sends through the Transport. The cache keeps at most 64 spaces
// per origin or proxy and 4096 in all, within 4 MiB of realms and paths,
// dropping the least recently used first; an answer refused by the server
// is dropped at once, and Forget drops everything.
//
// A Transport must not be copied after first use. It is safe for
// concurrent use by multiple goroutines, never modifies the caller's
// request, always closes the request body, and honours the request's
// context.
//
// The zero Transport answers nothing: set Schemes and Credentials.
type Transport struct {
	// Base sends the requests. Nil means http.DefaultTransport.
	//
	// When Base is an *http.Transport with a proxy (its Proxy func, as
	// http.DefaultTransport's reads HTTP_PROXY, HTTPS_PROXY and
	// NO_PROXY, or Transport.Proxy), the Transport sends through a clone
	// of it, made at first use, so that it can answer the proxy: it opens
	// the CONNECT tunnels of https targets itself, answering each 407 on
	// the tunnel's connection, and then runs TLS over the tunnel with
	// Base's TLS settings. Changes to Base after first use are not seen.
	//
	// Connection-bound schemes (NTLM) need Base to be an *http.Transport:
	// their handshakes ride HTTP/1.1 connections that the Transport makes
	// with a keep-alive, HTTP/1.1-only clone of it (NewClientConn), and
	// keeps for later requests of the same space and credentials;
	// CloseIdleConnections and Forget close the idle ones. Over another
	// Base their challenges are not answered.
	Base http.RoundTripper

	// Schemes are the schemes the Transport answers with, matched to
	// challenges by name. Several may answer one name (Kerberos and NTLM
	// both answer Negotiate): each is a candidate, with its own Strength.
	// Order does not matter: Selector ranks.
	Schemes []Scheme

	// Credentials supplies user names and passwords for origin servers
	// (401). Nil means none.
	Credentials CredentialProvider

	// ProxyCredentials supplies them for proxies (407), whether the 407
	// answers a plain-http request or a CONNECT. Nil means only the proxy
	// URL's user info, if any. Proxy credentials never go to an origin,
	// nor origin ones to a proxy.
	ProxyCredentials CredentialProvider

	// Proxy chooses the proxy of each request. Nil means the Proxy func
	// of Base when Base is an *http.Transport. When Base is an
	// *http.Transport, the proxy the Transport answers is always the one
	// the request goes through: a Proxy set here replaces Base's in the
	// clone the Transport sends with. For another Base, Proxy must say
	// which proxy that Base uses; without it, no 407 is answered. A 407
	// from anything but that proxy is returned untouched.
	//
	// Credentials for a proxy come from ProxyCredentials, then from the
	// proxy URL's user info (http://user:pass@proxy:3128).
	Proxy func(*http.Request) (*url.URL, error)

	// Selector ranks the challenges of a response. Nil means
	// StrongestFirst{} (no floor).
	Selector Selector

	// MaxBodyBuffer is how many bytes of a request body that has neither
	// GetBody nor Seek are kept in memory to replay it. Such a body is
	// sent at once and copied as it goes; once more than MaxBodyBuffer
	// bytes of it were sent, a challenge fails RoundTrip with a
	// *BodyNotReplayableError (see ExpectContinue). Zero means
	// DefaultMaxBodyBuffer; negative means never buffer.
	MaxBodyBuffer int64

	// ExpectContinue sends "Expect: 100-continue" with a body that may not
	// be replayable (no GetBody, not seekable, and of unknown length or
	// over MaxBodyBuffer), so that a server can challenge before the body
	// is sent; the same body then goes with the answer. Base must wait for the server: an *http.Transport
	// needs a non-zero ExpectContinueTimeout (http.DefaultTransport has 1 s).
	ExpectContinue bool

	// MaxAnswers bounds how many times one request is answered and
	// replayed: each (scheme, realm) is begun at most once, and its legs
	// continue (a stale Digest nonce, a refreshed token, the next leg of a
	// handshake) while the budget lasts. Zero means DefaultMaxAnswers:
	// five round trips that carry answers, plus at most three that replace
	// a dead connection (one retry when a pooled authenticated connection
	// had closed, two restarts of a connection-bound handshake). It bounds
	// each CONNECT the same way (plus one redial when the proxy closes
	// without answering).
	MaxAnswers int

	// AllowDowngrade lets a request that had an answer rejected try a
	// weaker scheme next (Basic after Digest, say). Off by default: a
	// server, or someone in the middle, could otherwise talk a client
	// down to the weakest scheme it has.
	AllowDowngrade bool

	// AllowCleartext lets Basic and Bearer go over plain http to any host.
	// By default they go in the clear only to loopback addresses and to
	// CleartextHosts, and (with the proxy's own credentials) to a proxy
	// configured with an http:// URL: naming it is the consent, as with
	// curl -x. An origin's credentials never cross a plain-http hop to a
	// host that is not allowed.
	AllowCleartext bool

	// CleartextHosts are host names (or IP addresses) to which Basic and
	// Bearer may go over plain http.
	CleartextHosts []string

	// Jar, when set, receives the cookies of every 401 and 407, and
	// replays carry the jar's cookies, as http.Client does on redirects.
	Jar http.CookieJar

	// Logger receives a Debug record for every challenge seen, the
	// ranking, the choice and every round trip, and a Warn record when a
	// challenge goes back unanswered (no scheme understands it, no
	// credentials for it, refused, weaker than the floor), once per
	// origin, challenge and reason. Secrets are never logged. Nil logs
	// nothing.
	Logger *slog.Logger

	// ConnectTimeout bounds each CONNECT exchange with a proxy (every
	// leg of its authentication), on top of the request's context. Zero
	// means DefaultConnectTimeout.
	ConnectTimeout time.Duration

	cache   spaceCache
	digests passwordDigests
	warned  onceSet
	routing routeState
	store   Store
	bound   boundPool
}

var discardLogger = slog.New(slog.DiscardHandler)

func (t *Transport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

func (t *Transport) logger() *slog.Logger {
	if t.Logger != nil {
		return t.Logger
	}
	return discardLogger
}

func (t *Transport) selector() Selector {
	if t.Selector != nil {
		return t.Selector
	}
	return StrongestFirst{}
}

func (t *Transport) maxAnswers() int {
	if t.MaxAnswers > 0 {
		return t.MaxAnswers
	}
	return DefaultMaxAnswers
}

func (t *Transport) maxBodyBuffer() int64 {
	if t.MaxBodyBuffer != 0 {
		return t.MaxBodyBuffer
	}
	return DefaultMaxBodyBuffer
}

// RoundTrip sends req, answering the challenges it meets. It returns the
// final response; when nothing can be answered, that is the server's
// last 401 or 407, untouched.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil {
		closeBody(req)
		return nil, errors.New("anyauth: nil Request.URL")
	}
	if len(t.Schemes) == 0 {
		closeBody(req)
		return nil, ErrNoSchemes
	}
	body := newReplaySource(req, t.maxBodyBuffer())
	defer body.close()
	x := &exchange{
		t:    t,
		req:  req,
		body: body,
		log:  t.logger(),
		origin: side{
			challengeHeader: "Www-Authenticate",
			provider:        t.Credentials,
			disabled:        hasHeader(req.Header, "Authorization"),
		},
		proxy: side{
			proxy:           true,
			challengeHeader: "Proxy-Authenticate",
		},
	}
	x.proxyURL = t.proxyURL(req)
	x.proxy.disabled = x.proxyURL == nil || hasHeader(req.Header, "Proxy-Authorization")
	x.proxy.provider = t.proxyCredentials(x.proxyURL)
	defer x.end()
	return x.run()
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// maxDrainTime bounds how long an intermediate 401/407 body is read. A
// body that drips slower is closed unread: the replay then takes a new
// connection instead of waiting.
const maxDrainTime = 250 * time.Millisecond

// drainAndClose reads a little of a response body that is being thrown
// away, so the connection can carry the replay, and closes it. It reads
// at most maxDrain bytes for at most maxDrainTime.
func drainAndClose(resp *http.Response) {
	stop := time.AfterFunc(maxDrainTime, func() { resp.Body.Close() })
	io.CopyN(io.Discard, resp.Body, maxDrain)
	stop.Stop()
	resp.Body.Close()
}

// Forget drops every cached protection space, what the schemes keep in
// the Transport's Store, and the idle connections that a connection-bound
// scheme (NTLM) authenticated, so the next request in each space is
// challenged again.
func (t *Transport) Forget() {
	t.cache.reset()
	t.digests.reset()
	t.store.reset()
	t.bound.closeIdle()
}

// CloseIdleConnections closes the idle connections of Base, of the clone
// of Base the Transport sends through when it owns proxy tunnels, and the
// idle connections authenticated by a connection-bound scheme.
func (t *Transport) CloseIdleConnections() {
	t.bound.closeIdle()
	if c, ok := t.base().(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
	if r := t.route(); r.clone != nil {
		r.clone.CloseIdleConnections()
	}
}

// ctxErr returns the context's error, if it is done.
func ctxErr(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	default:
		return nil
	}
}

// String describes the Transport's configuration: its schemes and how
// many protection spaces it knows. It shows no credential.
func (t *Transport) String() string {
	names := make([]string, len(t.Schemes))
	for i, s := range t.Schemes {
		names[i] = s.Name()
	}
	spaces := t.cache.size()
	return fmt.Sprintf("anyauth.Transport{Schemes:%v, known spaces:%d}", names, spaces)
}

// Format prints String whatever the verb, so no credential or cached
// answer can be printed by accident.
func (t *Transport) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// hasHeader reports whether h holds a non-empty value of the field named
// canonicalKey, as h.Get(canonicalKey) != "" would, without canonicalizing
// the name again on every request.
func hasHeader(h http.Header, canonicalKey string) bool {
	v := h[canonicalKey]
	return len(v) > 0 && v[0] != ""
}
