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
	proxy           bool
	challengeHeader string // WWW-Authenticate or Proxy-Authenticate
	disabled        bool   // the caller set the answer header itself, or no proxy is known

	entry     *cacheEntry // the space being answered, nil for none
	leg       Leg         // this request's leg of entry's session, nil until started
	applied   int         // round trips that carried leg
	fromCache bool        // entry came from the cache (preemptive)
	bound     *cacheEntry // a known connection-bound space of the request, whose connections it may reuse
	floor     Strength    // no answer weaker than a rejected one
	answered  []string    // scheme+realm keys answered on this request
	// memo asks the side's credential provider, once per realm, and
	// records who the request is.
	memo requestCredentials
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

	tunnel     bool       // a CONNECT on a connection of its own (tunnel.go)
	conn       *boundConn // the owned connection of a connection-bound handshake, nil while requests go through Base
	connPooled bool       // conn came from the pool of authenticated connections
	restarts   int        // handshakes restarted because their connection closed
}

// end tells every leg started on this request that it is over, and closes
// an owned connection that no response took over.
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
}

func (x *exchange) ctx() context.Context { return x.req.Context() }

func (x *exchange) debug(msg string, attrs ...slog.Attr) {
	if x.log.Enabled(x.ctx(), slog.LevelDebug) {
		x.log.LogAttrs(x.ctx(), slog.LevelDebug, msg, attrs...)
	}
}

func (x *exchange) run() (*http.Response, error) {
	x.usePreemptive(&x.origin, x.req.URL)
	x.usePreemptive(&x.proxy, x.proxyURL)
	if err := x.reuseBound(); err != nil {
		return nil, err
	}
	answers := 0
	for {
		if err := ctxErr(x.ctx()); err != nil {
			return nil, err
		}
		if x.conn == nil && x.needsConn() {
			if err := x.openConn(); err != nil {
				return nil, err
			}
		}
		out, err := x.build()
		if err != nil {
			return nil, err
		}
		x.sent++
		resp, err := x.send(out)
		if err != nil {
			if x.retryOnBase(err) {
				continue
			}
			if x.conn != nil && x.conn.cc.Err() != nil && ctxErr(x.ctx()) == nil && x.body.canReplay() {
				// The server closed the connection between two legs.
				if err := x.connLost(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, err
		}
		if x.log.Enabled(x.ctx(), slog.LevelDebug) {
			x.debug("anyauth: round trip",
				slog.Int("n", x.sent),
				slog.String("method", out.Method),
				slog.String("url", safeURL(out.URL)),
				slog.String("authorization", describe(&x.origin)),
				slog.String("proxy_authorization", describe(&x.proxy)),
				slog.Int("status", resp.StatusCode))
		}
		var s *side
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			s = &x.origin
			// The proxy let the request through: its answer was accepted.
			if err := x.accepted(&x.proxy, resp); err != nil {
				drainAndClose(resp)
				return nil, err
			}
		case http.StatusProxyAuthRequired:
			s = &x.proxy
		default:
			return x.finish(resp)
		}
		if x.conn != nil {
			// Challenged: no longer known to be authenticated.
			x.t.bound.unkey(x.conn, x.connPooled && x.sent == 1 && s.leg == nil)
		}
		x.saveCookies(resp)
		if s.disabled {
			return x.handOver(resp), nil
		}
		if answers >= x.t.maxAnswers() {
			x.debug("anyauth: giving up, answer budget spent", slog.Int("answers", answers))
			return x.handOver(resp), nil
		}
		ok, err := x.answer(s, out, resp)
		if err != nil {
			drainAndClose(resp)
			return nil, err
		}
		if !ok {
			return x.handOver(resp), nil
		}
		answers++
		if !x.body.canReplay() {
			drainAndClose(resp)
			return nil, &BodyNotReplayableError{Method: x.req.Method, URL: safeURL(x.req.URL), Status: resp.StatusCode, Limit: x.t.maxBodyBuffer()}
		}
		if x.conn != nil {
			// The next leg must ride this connection: read the whole
			// body, however long, so that it can.
			if !drainAll(resp) {
				if err := x.connLost(); err != nil {
					return nil, err
				}
			}
			continue
		}
		if s.proxy && x.mayCarryLargeBody() {
			// Squid stops answering when a body of 64 KiB or more is
			// replayed on the connection of its 407. Closing the 407
			// unread makes net/http drop that connection, so the replay
			// goes on a new one.
			resp.Body.Close()
			continue
		}
		drainAndClose(resp)
	}
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

// largeProxyBody is the body size from which a request through a proxy
// is replayed after a 407 on a new connection.
const largeProxyBody = 64 << 10

// mayCarryLargeBody reports whether the request has a body that is, or may
// be, largeProxyBody bytes or more.
func (x *exchange) mayCarryLargeBody() bool {
	if x.req.Body == nil || x.req.Body == http.NoBody {
		return false
	}
	return x.req.ContentLength <= 0 || x.req.ContentLength >= largeProxyBody
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
