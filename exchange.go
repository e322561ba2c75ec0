package anyauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
)

// side is the state of one kind of authentication (origin or proxy)
// during one RoundTrip.
type side struct {
	proxy           bool
	answerHeader    string // Authorization or Proxy-Authorization
	challengeHeader string // WWW-Authenticate or Proxy-Authenticate
	credentials     CredentialProvider
	disabled        bool // the caller set the answer header itself, or no proxy is known

	entry     *cacheEntry // the answer being sent, nil for none
	fromCache bool        // entry came from the cache (preemptive)
	refreshed bool        // the one stale retry has been used
	floor     Strength    // no answer weaker than a rejected one
	answered  []string    // scheme+realm keys answered on this request
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
	body     *replayBody
	log      *slog.Logger
	proxyURL *url.URL
	origin   side
	proxy    side
	sent     int // round trips made
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
	answers := 0
	for {
		if err := ctxErr(x.ctx()); err != nil {
			return nil, err
		}
		out, err := x.build()
		if err != nil {
			return nil, err
		}
		x.sent++
		resp, err := x.t.base().RoundTrip(out)
		if err != nil {
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
			x.remember(&x.proxy) // the proxy let the request through
		case http.StatusProxyAuthRequired:
			s = &x.proxy
		default:
			return x.finish(resp)
		}
		x.saveCookies(resp)
		if s.disabled {
			return resp, nil
		}
		if answers >= x.t.maxAnswers() {
			x.debug("anyauth: giving up, answer budget spent", slog.Int("answers", answers))
			return resp, nil
		}
		ok, err := x.answer(s, out, resp)
		if err != nil {
			drainAndClose(resp)
			return nil, err
		}
		if !ok {
			return resp, nil
		}
		answers++
		if !x.body.canReplay() {
			drainAndClose(resp)
			return nil, &BodyNotReplayableError{Method: x.req.Method, URL: safeURL(x.req.URL), Status: resp.StatusCode, Limit: x.t.maxBodyBuffer()}
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

// usePreemptive attaches the cached answer for u, if any.
func (x *exchange) usePreemptive(s *side, u *url.URL) {
	if s.disabled || u == nil {
		return
	}
	o := originOf(u)
	key := cacheKey{s.proxy, o.URLScheme, o.Host, o.Port}
	if e := x.t.cache.lookup(key, x.req.URL); e != nil {
		s.entry, s.fromCache = e, true
	}
}

// build makes the request for the next round trip: a clone of the
// caller's request with the body rewound and the answers attached.
func (x *exchange) build() (*http.Request, error) {
	out := x.req.Clone(x.ctx())
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	out.GetBody = x.body.getBodyFunc()
	if x.body.buf != nil {
		out.ContentLength = int64(len(x.body.buf))
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.entry == nil {
			continue
		}
		v, err := s.entry.session.Authorize(out)
		if err != nil {
			return nil, fmt.Errorf("anyauth: %s %s: %w", s.entry.space.AuthScheme, s.name(), err)
		}
		out.Header.Set(s.answerHeader, v)
	}
	if x.sent > 0 && x.t.Jar != nil {
		setCookies(out, x.req, x.t.Jar.Cookies(x.req.URL))
	}
	if x.t.ExpectContinue && x.body.isStream() && out.Header.Get("Expect") == "" {
		out.Header.Set("Expect", "100-continue")
	}
	body, getBody, err := x.body.next()
	if err != nil {
		return nil, err
	}
	out.Body, out.GetBody = body, getBody
	return out, nil
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

// finish completes the answers that led to resp and caches them.
func (x *exchange) finish(resp *http.Response) (*http.Response, error) {
	for _, s := range []*side{&x.proxy, &x.origin} {
		if s.entry == nil {
			continue
		}
		if err := s.entry.session.Complete(resp); err != nil {
			drainAndClose(resp)
			return nil, fmt.Errorf("anyauth: %s %s: %w", s.entry.space.AuthScheme, s.name(), err)
		}
		x.remember(s)
	}
	return resp, nil
}

// remember caches a side's fresh answer once it was accepted.
func (x *exchange) remember(s *side) {
	if s.entry == nil || s.fromCache {
		return
	}
	x.t.cache.put(s.entry)
	s.fromCache = true
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
	if s.entry != nil {
		if x.refresh(s, challenges) {
			return true, nil
		}
		rejected = s.entry
		x.debug("anyauth: answer rejected", slog.String("space", s.entry.space.String()), slog.Bool("preemptive", s.fromCache))
		if !x.t.AllowDowngrade {
			s.floor = max(s.floor, s.entry.strength)
		}
		if s.fromCache {
			x.t.cache.remove(s.entry)
		}
		s.entry, s.fromCache = nil, false
	}
	ranked := x.t.selector().Select(x.candidates(s, challenges))
	if len(ranked) > 0 {
		x.debug("anyauth: ranking", slog.String("order", rankingString(ranked)))
	}
	var firstErr error
	for _, c := range ranked {
		space, prefixes := x.spaceFor(s, c)
		if x.t.cleartextRefused(c.Scheme, &space) {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", "would send a secret over cleartext http"), slog.String("host", space.Host))
			if firstErr == nil {
				firstErr = &CleartextError{AuthScheme: c.Scheme.Name(), Host: space.Host, Proxy: s.proxy}
			}
			continue
		}
		creds := s.credentials
		if creds == nil {
			creds = noCredentials{}
		}
		attempt := &Attempt{Request: out, Space: space, Credentials: creds, Logger: x.log}
		if rejected != nil && rejected.space.AuthScheme == space.AuthScheme && rejected.space.Realm == space.Realm {
			attempt.Rejected = rejected.session
		}
		session, err := c.Scheme.Begin(x.ctx(), c.Challenge, attempt)
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
				firstErr = err
			}
			continue
		}
		s.entry = &cacheEntry{space: space, prefixes: prefixes, session: session, strength: c.Strength}
		s.answered = append(s.answered, answeredKey(space.AuthScheme, space.Realm))
		x.debug("anyauth: chosen", slog.String("scheme", c.Scheme.Name()), slog.Int("strength", int(c.Strength)), slog.String("space", space.String()),
			slog.String("why", "strongest challenge with credentials"))
		return true, nil
	}
	return false, firstErr
}

// refresh gives the answer that was just sent its one chance to adopt a
// new challenge without counting as rejected (Digest stale=true).
func (x *exchange) refresh(s *side, challenges []Challenge) bool {
	if s.refreshed {
		return false
	}
	for i := range challenges {
		c := &challenges[i]
		if c.Is(s.entry.space.AuthScheme) && c.Realm() == s.entry.space.Realm && s.entry.session.Refresh(c) {
			s.refreshed = true
			x.debug("anyauth: stale answer, retrying with the new challenge", slog.String("space", s.entry.space.String()))
			return true
		}
	}
	return false
}

// candidates returns the challenges a configured scheme can answer, that
// were not answered yet on this request, and that are no weaker than an
// answer already rejected.
func (x *exchange) candidates(s *side, challenges []Challenge) []Candidate {
	var out []Candidate
	for i := range challenges {
		c := &challenges[i]
		sc := x.t.schemeFor(c.Scheme)
		if sc == nil {
			continue
		}
		st, ok := sc.Strength(c)
		if !ok {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme), slog.String("why", "scheme cannot answer this challenge"))
			continue
		}
		if st < s.floor {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme), slog.String("why", "weaker than an answer already rejected (no downgrade)"))
			continue
		}
		if s.wasAnswered(answeredKey(sc.Name(), c.Realm())) {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme), slog.String("why", "already answered on this request"))
			continue
		}
		out = append(out, Candidate{Challenge: c, Scheme: sc, Strength: st})
	}
	return out
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
		space.Path = directoryOf(pathOf(x.req.URL))
	}
	space.Proxy = s.proxy
	space.AuthScheme = c.Scheme.Name()
	space.Realm = c.Challenge.Realm()
	prefixes := []string{space.Path}
	if sc, ok := c.Scheme.(Scoper); ok && !s.proxy {
		if p := sc.Scope(c.Challenge, x.req.URL); len(p) > 0 {
			prefixes = p
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
