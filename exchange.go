package anyauth

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// usePreemptive attaches the cached answer for u, if any: of the entries
// of the request's identity that cover its path, the one with the longest
// prefix, the strongest among equals.
func (x *exchange) usePreemptive(s *side, u *url.URL) {
	if s.disabled || u == nil {
		return
	}
	o := originOf(u)
	list := x.t.cache.list(cacheKey{s.proxy, o.URLScheme, o.Host, o.Port})
	if len(list) == 0 {
		return
	}
	path := pathForLookup(s.proxy, x.req.URL)
	var best *cacheEntry
	bestLen := -1
	for _, e := range list {
		n := e.covers(path)
		if n < 0 || n < bestLen || (n == bestLen && e.strength <= best.strength) {
			continue
		}
		if x.answersFor(s, e) {
			best, bestLen = e, n
		}
	}
	if best == nil {
		return
	}
	x.t.cache.touch(best)
	if best.traits.ConnectionBound {
		// Nothing is sent before a challenge; the request may ride a
		// connection that was authenticated in the space.
		if !x.tunnel {
			s.bound = best
		}
		return
	}
	s.entry, s.fromCache = best, true
}

// startLeg starts the request's leg of a preemptive answer. A session
// with nothing to answer with (ErrNoCredentials) is dropped and the
// request goes without it.
func (x *exchange) startLeg(s *side, out *http.Request) error {
	leg, err := s.entry.session.Start(x.ctx(), out)
	if err != nil {
		if errors.Is(err, ErrNoCredentials) {
			x.debug("anyauth: preemptive answer skipped", slog.String("space", s.entry.space.String()), slog.String("why", "no credentials"))
			s.entry, s.fromCache = nil, false
			return nil
		}
		return &AuthError{Space: s.entry.space, Err: err}
	}
	s.leg = leg
	x.addLeg(leg)
	return nil
}

// addLeg records a leg started on this request.
func (x *exchange) addLeg(l Leg) {
	if x.legs == nil {
		x.legs = x.legsBuf[:0]
	}
	x.legs = append(x.legs, l)
}

// build makes the request for the next round trip: a clone of the
// caller's request with the body rewound and the answers attached.
func (x *exchange) build() (*http.Request, error) {
	out := x.req.Clone(x.ctx())
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.entry != nil && s.leg == nil {
			if err := x.startLeg(s, out); err != nil {
				return nil, err
			}
		}
	}
	if out.URL.Scheme == "https" && out.Header.Get("Proxy-Authorization") != "" {
		// It would ride the CONNECT tunnel to the origin: proxies are
		// answered on the tunnel itself.
		out.Header.Del("Proxy-Authorization")
		x.debug("anyauth: removed the caller's Proxy-Authorization from a request to an https target", slog.String("url", safeURL(out.URL)))
	}
	if x.sent > 0 && x.t.Jar != nil && x.req.Method != http.MethodConnect {
		setCookies(out, x.req, x.t.Jar.Cookies(x.req.URL))
	}
	var body io.ReadCloser
	if x.probing() {
		// A handshake leg that cannot be accepted goes without the body.
		out.Body, out.GetBody, out.ContentLength = http.NoBody, nil, 0
		out.Header.Del("Expect")
	} else {
		if x.t.ExpectContinue && x.body.streaming() && out.Header.Get("Expect") == "" {
			out.Header.Set("Expect", "100-continue")
		}
		b, getBody, err := x.body.next(x.ctx())
		if err != nil {
			return nil, err
		}
		body = b
		out.Body, out.GetBody = body, getBody
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.leg == nil {
			continue
		}
		if err := s.leg.Apply(out); err != nil {
			if body != nil {
				body.Close() // never sent: give the body back
			}
			return nil, &AuthError{Space: s.entry.space, Err: err}
		}
		s.applied++
	}
	return out, nil
}

// probing reports whether the next round trip only moves a handshake on
// (see ProbingLeg), so that it goes without the request's body.
func (x *exchange) probing() bool {
	if x.req.Body == nil || x.req.Body == http.NoBody {
		return false
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if p, ok := s.leg.(ProbingLeg); ok && p.Probing() {
			return true
		}
	}
	return false
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

// setCookies gives out the caller's cookies overridden by the jar's.
func setCookies(out, orig *http.Request, jar []*http.Cookie) {
	if len(jar) == 0 {
		return
	}
	out.Header.Del("Cookie")
	fromJar := make(map[string]bool, len(jar))
	for _, c := range jar {
		fromJar[c.Name] = true
		out.AddCookie(c)
	}
	for _, c := range orig.Cookies() {
		if !fromJar[c.Name] {
			out.AddCookie(c)
		}
	}
}

func (x *exchange) saveCookies(resp *http.Response) {
	if x.t.Jar != nil {
		if cs := resp.Cookies(); len(cs) > 0 {
			x.t.Jar.SetCookies(x.req.URL, cs)
		}
	}
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

// answer handles a 401 or 407: it decides whether the answer sent was
// stale or rejected, ranks the new challenges and begins the strongest
// one that can be answered. It reports whether the request should be
// replayed.
func (x *exchange) answer(s *side, out *http.Request, resp *http.Response) (bool, error) {
	challenges := ParseChallenges(resp.Header[s.challengeHeader]...)
	for i := range challenges {
		x.debug("anyauth: challenge", slog.String("from", s.name()), slog.Int("status", resp.StatusCode), slog.String("challenge", truncate(challenges[i].String(), 200)))
	}
	if len(challenges) == 0 && len(resp.Header[s.challengeHeader]) > 0 {
		x.debug("anyauth: no well-formed challenge", slog.String("header", truncate(strings.Join(resp.Header[s.challengeHeader], " | "), 200)))
	}
	var rejected *cacheEntry
	if s.entry != nil && s.leg != nil {
		retry, err := s.leg.Continue(x.ctx(), resp, matching(challenges, &s.entry.space))
		if err != nil {
			return false, &AuthError{Space: s.entry.space, Err: err}
		}
		if retry {
			x.debug("anyauth: continuing", slog.String("space", s.entry.space.String()))
			return true, nil
		}
		if s.fromCache && !askedForRealm(challenges, s.entry.space.Realm) {
			// A preemptive answer of an enclosing space, met by a
			// challenge of another realm: it was not refused, it just
			// does not belong here. It keeps its place in the cache, and
			// its strength sets no floor for the realm asked for.
			x.debug("anyauth: preemptive answer not for this realm", slog.String("space", s.entry.space.String()))
		} else {
			rejected = s.entry
			x.debug("anyauth: answer rejected", slog.String("space", s.entry.space.String()), slog.Bool("preemptive", s.fromCache))
			if !x.t.AllowDowngrade {
				s.floor = max(s.floor, s.entry.strength)
			}
			if s.fromCache {
				x.t.cache.remove(s.entry)
			} else {
				s.memo.refuse(&s.entry.space)
			}
		}
		s.entry, s.leg, s.fromCache = nil, nil, false
	}
	ranked := x.t.selector().Select(x.candidates(s, challenges))
	if len(ranked) > 0 {
		x.debug("anyauth: ranking", slog.String("order", rankingString(ranked)))
	}
	var firstErr error
	for _, c := range ranked {
		space, prefixes := x.spaceFor(s, c)
		if host, refused := x.t.cleartextRefused(c.Scheme, &space, x.proxyURL); refused {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", "would send a secret over cleartext http"), slog.String("host", host))
			if firstErr == nil {
				firstErr = &CleartextError{AuthScheme: c.Scheme.Name(), Host: host, Proxy: s.proxy || host != space.Host}
			}
			continue
		}
		attempt := &Attempt{Request: out, Space: space, Credentials: &s.memo, Logger: x.log, Store: &x.t.store}
		if rejected != nil && rejected.space.AuthScheme == space.AuthScheme && rejected.space.Realm == space.Realm {
			attempt.Rejected = rejected.session
		}
		session, err := c.Scheme.Begin(x.ctx(), c.Challenge, attempt)
		var leg Leg
		if err == nil {
			leg, err = session.Start(x.ctx(), out)
		}
		if err != nil {
			if errors.Is(err, ErrNoCredentials) {
				x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", "no credentials"), slog.String("space", space.String()))
				continue
			}
			if ctxErr(x.ctx()) != nil {
				return false, err
			}
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", err.Error()))
			if firstErr == nil {
				firstErr = &AuthError{Space: space, Err: err}
			}
			continue
		}
		who, asked := s.memo.asked(&space)
		s.entry = &cacheEntry{space: space, prefixes: prefixes, session: session, strength: c.Strength, traits: c.Scheme.Traits(), who: who, asked: asked}
		s.leg, s.applied = leg, 0
		x.addLeg(leg)
		s.answered = append(s.answered, answeredKey(space.AuthScheme, space.Realm))
		x.debug("anyauth: chosen", slog.String("scheme", c.Scheme.Name()), slog.Int("strength", int(c.Strength)), slog.String("space", space.String()),
			slog.String("why", "strongest challenge with credentials"))
		return true, nil
	}
	return false, firstErr
}

// matching returns the first challenge of space's scheme and realm, or
// nil.
func matching(challenges []Challenge, space *ProtectionSpace) *Challenge {
	for i := range challenges {
		c := &challenges[i]
		if c.Is(space.AuthScheme) && c.Realm() == space.Realm {
			return c
		}
	}
	return nil
}

// candidates returns the challenges a configured scheme can answer, that
// were not answered yet on this request, and that are no weaker than an
// answer already rejected.
func (x *exchange) candidates(s *side, challenges []Challenge) []Candidate {
	var out []Candidate
	for i := range challenges {
		c := &challenges[i]
		for _, sc := range x.t.Schemes {
			if !strings.EqualFold(sc.Name(), c.Scheme) {
				continue
			}
			if cand, ok := x.candidate(s, c, sc); ok {
				out = append(out, cand)
			}
		}
	}
	return out
}

// candidate checks whether sc may answer c on this request.
func (x *exchange) candidate(s *side, c *Challenge, sc Scheme) (Candidate, bool) {
	skip := func(why string) (Candidate, bool) {
		x.debug("anyauth: skipped", slog.String("scheme", c.Scheme), slog.String("why", why))
		return Candidate{}, false
	}
	if sc.Traits().ConnectionBound && !x.tunnel && x.t.route().owner == nil {
		return skip("connection-bound schemes need Base to be an *http.Transport")
	}
	st, ok := sc.Strength(c)
	if !ok {
		return skip("scheme cannot answer this challenge")
	}
	if st < s.floor {
		return skip("weaker than an answer already rejected (no downgrade)")
	}
	if s.wasAnswered(answeredKey(sc.Name(), c.Realm())) {
		return skip("already answered on this request")
	}
	return Candidate{Challenge: c, Scheme: sc, Strength: st}, true
}

// spaceFor returns the protection space of candidate c and the path
// prefixes it covers.
func (x *exchange) spaceFor(s *side, c Candidate) (ProtectionSpace, []string) {
	var space ProtectionSpace
	if s.proxy {
		space = originOf(x.proxyURL)
		space.Path = "/"
	} else {
		space = originOf(x.req.URL)
		space.Path = spaceDirectory(x.req.URL)
	}
	space.Proxy = s.proxy
	space.AuthScheme = c.Scheme.Name()
	// The space outlives the header line: copy what it keeps of it.
	space.Realm = strings.Clone(c.Challenge.Realm())
	prefixes := []string{space.Path}
	if sc, ok := c.Scheme.(Scoper); ok && !s.proxy {
		if p := sc.Scope(c.Challenge, x.req.URL); len(p) > 0 {
			prefixes = make([]string, len(p))
			for i := range p {
				prefixes[i] = strings.Clone(p[i])
			}
		}
	}
	return space, prefixes
}

func rankingString(c []Candidate) string {
	var b strings.Builder
	for i, x := range c {
		if i > 0 {
			b.WriteString(" > ")
		}
		fmt.Fprintf(&b, "%s[%d]", x.Scheme.Name(), x.Strength)
		if alg := x.Challenge.Param("algorithm"); alg != "" {
			fmt.Fprintf(&b, "(%s)", alg)
		}
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
