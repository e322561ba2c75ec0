package anyauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// This file chooses what answers a challenge: it lets the leg that was
// sent continue or counts it rejected, ranks the challenges that a
// configured scheme can answer, and begins the strongest.

// answer handles a 401 or 407: it decides whether the answer sent was
// stale or rejected, ranks the new challenges and begins the strongest
// one that can be answered. It reports whether the request should be
// replayed; when not, s.why says why.
func (x *exchange) answer(s *side, out *http.Request, resp *http.Response) (bool, error) {
	challenges := ParseChallenges(squidNegotiatePlaceholder(resp.Header[s.challengeHeader])...)
	for i := range challenges {
		x.debug("anyauth: challenge", slog.String("from", s.name()), slog.Int("status", resp.StatusCode), slog.String("challenge", truncate(challenges[i].String(), 200)))
	}
	if len(challenges) == 0 && len(resp.Header[s.challengeHeader]) > 0 {
		x.debug("anyauth: no well-formed challenge", slog.String("header", truncate(strings.Join(resp.Header[s.challengeHeader], " | "), 200)))
	}
	rejected, retry, err := x.judgeSent(s, resp, challenges)
	if err != nil || retry {
		return retry, err
	}
	return x.begin(s, out, challenges, rejected)
}

// judgeSent lets the leg that was sent continue on the new challenge
// (retry), or counts its answer rejected and returns its entry, which
// then sets the floor: no weaker answer follows on this request.
func (x *exchange) judgeSent(s *side, resp *http.Response, challenges []Challenge) (rejected *cacheEntry, retry bool, err error) {
	if s.entry == nil || s.leg == nil {
		return nil, false, nil
	}
	retry, err = s.leg.Continue(x.ctx(), resp, matching(challenges, &s.entry.space))
	if err != nil {
		return nil, false, &AuthError{Space: s.entry.space, Err: err}
	}
	if retry {
		x.debug("anyauth: continuing", slog.String("space", s.entry.space.String()))
		return nil, true, nil
	}
	if s.fromCache && !askedForRealm(challenges, s.entry.space.Realm) {
		// A preemptive answer of an enclosing space, met by a challenge
		// of another realm: it was not refused, it just does not belong
		// here. It keeps its place in the cache, and its strength sets
		// no floor for the realm asked for.
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
			x.credentials(s).refuse(x.ctx(), &s.entry.space)
		}
	}
	s.entry, s.leg, s.fromCache = nil, nil, false
	return rejected, false, nil
}

// begin starts the strongest challenge that a configured scheme can
// answer with credentials, and reports whether it found one. When it
// finds none, s.why says why; an error is returned when a scheme failed
// for another reason than missing credentials (the first such error).
func (x *exchange) begin(s *side, out *http.Request, challenges []Challenge, rejected *cacheEntry) (bool, error) {
	candidates := x.candidates(s, challenges)
	ranked := x.t.selector().Select(candidates)
	switch {
	case rejected != nil:
		s.why = reasonRefused
	case len(ranked) > 0:
		s.why = reasonNoCredentials
	case len(candidates) > 0:
		s.why = reasonBelowFloor // the Selector dropped them all
	default:
		s.why = reasonNoScheme
	}
	if len(ranked) > 0 {
		x.debug("anyauth: ranking", slog.String("order", rankingString(ranked)))
	}
	var firstErr error
	for _, c := range ranked {
		ok, err := x.beginOne(s, out, c, rejected)
		switch {
		case ok:
			return true, nil
		case err != nil && ctxErr(x.ctx()) != nil:
			return false, err
		case err != nil && firstErr == nil:
			firstErr = err
		}
	}
	return false, firstErr
}

// beginOne begins candidate c: true when its leg is started, false with a
// nil error when there are no credentials for it.
func (x *exchange) beginOne(s *side, out *http.Request, c Candidate, rejected *cacheEntry) (bool, error) {
	space, prefixes := x.spaceFor(s, c)
	if host, refused := x.t.cleartextRefused(c.Scheme, &space, x.proxyURL); refused {
		x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", "would send a secret over cleartext http"), slog.String("host", host))
		err := &CleartextError{AuthScheme: c.Scheme.Name(), Host: host, Proxy: s.proxy || host != space.Host}
		x.noteSkip(&space, c.Scheme.Name(), err)
		s.lastSkip = err
		return false, err
	}
	attempt := &Attempt{Request: out, Space: space, Credentials: x.credentials(s), Logger: x.log, Store: &x.t.store}
	if rejected != nil && rejected.space.AuthScheme == space.AuthScheme && rejected.space.Realm == space.Realm {
		attempt.Rejected = rejected.session
	}
	session, err := c.Scheme.Begin(x.ctx(), c.Challenge, attempt)
	var leg Leg
	if err == nil {
		leg, err = session.Start(x.ctx(), out)
	}
	if err != nil {
		x.noteSkip(&space, c.Scheme.Name(), err)
		s.lastSkip = err
		if errors.Is(err, ErrNoCredentials) {
			x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", err.Error()), slog.String("space", space.String()))
			return false, nil
		}
		x.debug("anyauth: skipped", slog.String("scheme", c.Scheme.Name()), slog.String("why", err.Error()))
		if ctxErr(x.ctx()) != nil {
			return false, err
		}
		return false, &AuthError{Space: space, Err: err}
	}
	who, asked := x.credentials(s).asked(&space)
	s.entry = &cacheEntry{space: space, prefixes: prefixes, session: session, strength: c.Strength, traits: c.Scheme.Traits(), who: who, asked: asked}
	s.leg, s.applied, s.why = leg, 0, reasonNone
	x.addLeg(leg)
	s.answered = append(s.answered, answeredKey(space.AuthScheme, space.Realm))
	x.debug("anyauth: chosen", slog.String("scheme", c.Scheme.Name()), slog.Int("strength", int(c.Strength)), slog.String("space", space.String()),
		slog.String("why", "strongest challenge with credentials"))
	return true, nil
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
