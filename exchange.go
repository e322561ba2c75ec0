package anyauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// side is the state of one kind of authentication (origin or proxy)
// during one RoundTrip.
type side struct {
	challengeHeader string // WWW-Authenticate or Proxy-Authenticate
	proxy           bool
	disabled        bool         // the caller set the answer header itself, or no proxy is known
	fromCache       bool         // entry came from the cache (preemptive)
	why             giveUpReason // why the last challenge found no answer

	entry    *cacheEntry // the space being answered, nil for none
	leg      Leg         // this request's leg of entry's session, nil until started
	applied  int         // round trips that carried leg
	bound    *cacheEntry // a known connection-bound space of the request, whose connections it may reuse
	floor    Strength    // no answer weaker than a rejected one
	answered []string    // scheme+realm keys answered on this request
	lastSkip error       // the last scheme's reason for not answering
	// provider is the side's credential provider, nil for none.
	provider CredentialProvider
	// first is the provider's answer for the first realm asked about,
	// kept inline: a request that meets only a cached space asks once and
	// allocates nothing. memo takes over (made by credentials) as soon as
	// more is asked: another realm, a challenge to answer.
	first firstAnswer
	memo  *requestCredentials
}

// askedForRealm reports whether a challenge of the given realm is among
// challenges.
func askedForRealm(challenges []Challenge, realm string) bool {
	for i := range challenges {
		if challenges[i].Realm() == realm {
			return true
		}
	}
	return false
}

func (s *side) name() string {
	if s.proxy {
		return "proxy"
	}
	return "origin"
}

func (s *side) wasAnswered(key string) bool {
	for _, k := range s.answered {
		if k == key {
			return true
		}
	}
	return false
}

func answeredKey(scheme, realm string) string { return strings.ToLower(scheme) + "\x00" + realm }

// exchange is one RoundTrip: the request, its replayable body, and the
// state of its origin and proxy authentication.
type exchange struct {
	t        *Transport
	req      *http.Request
	body     replaySource
	log      *slog.Logger
	proxyURL *url.URL
	origin   side
	proxy    side
	sent     int   // round trips made
	legs     []Leg // every leg started, to End when the request is over
	legsBuf  [2]Leg

	tc         *tunnelConn  // the connection to the proxy a CONNECT rides, nil until dialled
	conn       *boundConn   // the owned connection of a connection-bound handshake, nil while requests go through Base
	tunnel     bool         // a CONNECT, negotiated on a connection of its own (tunnel.go)
	connPooled bool         // conn came from the pool of authenticated connections
	gaveUp     giveUpReason // why the exchange returned a challenge unanswered
	// expectContinue sends the body behind "Expect: 100-continue" (after
	// a reset while it was written, see resetWhileWritingBody).
	expectContinue bool
	redials        int32 // tunnel connections dialled again after the proxy closed one
	restarts       int32 // handshakes restarted because their connection closed
}

// end tells every leg started on this request that it is over, and closes
// an owned connection that no response took over, and a proxy connection
// that did not become a tunnel.
func (x *exchange) end() {
	for _, l := range x.legs {
		if e, ok := l.(EndingLeg); ok {
			e.End()
		}
	}
	if x.conn != nil {
		x.conn.cc.Close()
		x.conn = nil
	}
	x.closeTunnelConn()
}

func (x *exchange) ctx() context.Context { return x.req.Context() }

func (x *exchange) debug(msg string, attrs ...slog.Attr) {
	if x.log.Enabled(x.ctx(), slog.LevelDebug) {
		x.log.LogAttrs(x.ctx(), slog.LevelDebug, msg, attrs...)
	}
}

// run drives the exchange: it sends the request, answers each challenge
// of the origin (401) or the proxy (407) while the budget lasts, and
// returns the final response, or the last challenge untouched when
// nothing more can be answered (x.gaveUp says why). Requests to an
// origin, through a proxy, on an owned connection and a CONNECT all run
// here; they differ only in how a round trip is sent (send.go).
func (x *exchange) run() (*http.Response, error) {
	x.usePreemptive(&x.origin, x.req.URL)
	x.usePreemptive(&x.proxy, x.proxyURL)
	if err := x.reuseBound(); err != nil {
		return nil, err
	}
	answers := 0
	for {
		out, resp, err := x.roundTrip()
		if err != nil {
			return nil, err
		}
		s, err := x.challenged(resp)
		if err != nil {
			drainAndClose(resp)
			return nil, err
		}
		if s == nil {
			// canReplay ends the attempt of a streamed body: ask only
			// when a Leg wants the request again.
			if answers < x.t.maxAnswers() && x.mayRetryAfterResponse() {
				retry, err := x.retryAfterResponse(resp)
				if err != nil {
					drainAndClose(resp)
					return nil, err
				}
				if retry && x.body.canReplay() {
					answers++
					drainAndClose(resp)
					continue
				}
				if retry {
					x.debug("anyauth: a Leg would send the request again, but its body cannot be replayed", slog.Int("status", resp.StatusCode))
				}
			}
			return x.finish(resp)
		}
		if s.disabled {
			return x.giveUp(resp, reasonDisabled), nil
		}
		if answers >= x.t.maxAnswers() {
			x.debug("anyauth: giving up, answer budget spent", slog.Int("answers", answers))
			return x.giveUp(resp, reasonBudgetSpent), nil
		}
		ok, err := x.answer(s, out, resp)
		if err != nil {
			drainAndClose(resp)
			return nil, err
		}
		if !ok {
			return x.giveUp(resp, s.why), nil
		}
		answers++
		if !x.body.canReplay() {
			drainAndClose(resp)
			return nil, &BodyNotReplayableError{Method: x.req.Method, URL: safeURL(x.req.URL), Status: resp.StatusCode, Limit: x.t.maxBodyBuffer()}
		}
		if err := x.readyForNextLeg(s, resp); err != nil {
			return nil, err
		}
	}
}

// roundTrip builds and sends the next request. A connection that was
// lost before its response came is replaced where the sender allows it
// (see recoverFrom).
func (x *exchange) roundTrip() (*http.Request, *http.Response, error) {
	for {
		if err := ctxErr(x.ctx()); err != nil {
			return nil, nil, x.sendError(err)
		}
		if err := x.ready(); err != nil {
			return nil, nil, err
		}
		out, err := x.build()
		if err != nil {
			return nil, nil, err
		}
		x.sent++
		resp, err := x.send(out)
		if err != nil {
			if retry, err := x.recoverFrom(err); !retry {
				return nil, nil, err
			}
			continue
		}
		x.trace(out, resp)
		return out, resp, nil
	}
}

// trace logs a round trip at Debug level.
func (x *exchange) trace(out *http.Request, resp *http.Response) {
	if !x.log.Enabled(x.ctx(), slog.LevelDebug) {
		return
	}
	if x.tunnel {
		x.debug("anyauth: CONNECT",
			slog.Int("n", x.sent),
			slog.String("proxy", safeURL(x.proxyURL)),
			slog.String("target", out.Host),
			slog.String("proxy_authorization", describe(&x.proxy)),
			slog.Int("status", resp.StatusCode))
		return
	}
	x.debug("anyauth: round trip",
		slog.Int("n", x.sent),
		slog.String("method", out.Method),
		slog.String("url", safeURL(out.URL)),
		slog.String("authorization", describe(&x.origin)),
		slog.String("proxy_authorization", describe(&x.proxy)),
		slog.Int("status", resp.StatusCode))
}

// challenged returns the side that resp challenges: the origin for a 401,
// the proxy for a 407, nil for a final response (anything else, and
// anything but a 407 to a CONNECT).
func (x *exchange) challenged(resp *http.Response) (*side, error) {
	var s *side
	switch {
	case resp.StatusCode == http.StatusProxyAuthRequired:
		s = &x.proxy
	case resp.StatusCode == http.StatusUnauthorized && !x.tunnel:
		// The proxy let the request through: its answer was accepted.
		if err := x.accepted(&x.proxy, resp); err != nil {
			return nil, err
		}
		s = &x.origin
	default:
		return nil, nil
	}
	if x.conn != nil {
		// Challenged: no longer known to be authenticated.
		x.t.bound.unkey(x.conn, x.connPooled && x.sent == 1 && s.leg == nil)
	}
	x.saveCookies(resp)
	return s, nil
}

// giveUpReason says why a challenge went unanswered.
type giveUpReason uint8

const (
	reasonNone          giveUpReason = iota
	reasonDisabled                   // the caller set the answer header, or no proxy is known
	reasonBudgetSpent                // MaxAnswers answers were sent
	reasonNoScheme                   // no configured scheme answers the challenges
	reasonNoCredentials              // a scheme would, but has no credentials
	reasonRefused                    // the answer sent was refused, none as strong is left
	reasonBelowFloor                 // every challenge understood is weaker than the floor
)

// String says the reason in words, for the Warn log.
func (r giveUpReason) String() string {
	switch r {
	case reasonDisabled:
		return "the caller set the answer header itself"
	case reasonBudgetSpent:
		return "answer budget (Transport.MaxAnswers) spent"
	case reasonNoScheme:
		return "no configured scheme understands the challenge"
	case reasonNoCredentials:
		return "no credentials for the protection space"
	case reasonRefused:
		return "the credentials were refused, and no scheme at least as strong is left (no downgrade)"
	case reasonBelowFloor:
		return "every challenge understood is weaker than the Selector's floor"
	}
	return ""
}

// proxyReason is the reason of a ProxyConnectError.
func (r giveUpReason) proxyReason() ProxyConnectReason {
	switch r {
	case reasonBudgetSpent:
		return ProxyBudgetSpent
	case reasonNoCredentials, reasonDisabled:
		return ProxyNoCredentials
	case reasonRefused:
		return ProxyRefused
	}
	return ProxyNoScheme
}

// giveUp returns resp, a challenge that will not be answered, as it came,
// and records why.
func (x *exchange) giveUp(resp *http.Response, why giveUpReason) *http.Response {
	x.gaveUp = why
	x.warnUnanswered(resp, why)
	return x.handOver(resp)
}

// describe names the answer a side is sending, for logs.
func describe(s *side) string {
	if s.entry == nil {
		return "none"
	}
	how := "answer"
	if s.fromCache {
		how = "preemptive"
	}
	return s.entry.space.AuthScheme + " (" + how + ")"
}

// finish lets the legs that led to resp inspect it, and caches their
// sessions.
func (x *exchange) finish(resp *http.Response) (*http.Response, error) {
	for _, s := range []*side{&x.proxy, &x.origin} {
		if err := x.accepted(s, resp); err != nil {
			drainAndClose(resp)
			return nil, err
		}
	}
	if x.conn != nil {
		x.keyConn()
	}
	return x.handOver(resp), nil
}

// accepted tells a side's leg that its answer got through, and caches its
// session.
func (x *exchange) accepted(s *side, resp *http.Response) error {
	if s.leg == nil {
		return nil
	}
	if err := s.leg.Finish(resp); err != nil {
		return &AuthError{Space: s.entry.space, Err: err}
	}
	if !s.fromCache && s.entry != nil && resp.StatusCode < 400 {
		x.credentials(s).accept(x.ctx(), &s.entry.space)
	}
	x.remember(s)
	return nil
}

// remember caches a side's fresh answer once it was accepted, unless its
// scheme is never preemptive.
func (x *exchange) remember(s *side) {
	if s.entry == nil || s.fromCache || (s.entry.traits.NeverPreemptive && !s.entry.traits.ConnectionBound) {
		return
	}
	s.fromCache = true
	if !x.t.cache.put(s.entry) {
		x.debug("anyauth: protection space not remembered", slog.String("space", s.entry.space.String()), slog.String("why", "its realm and paths are too long"))
		return
	}
	x.debug("anyauth: protection space remembered", slog.String("space", s.entry.space.String()), slog.Any("paths", s.entry.prefixes))
}
