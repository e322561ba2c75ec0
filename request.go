package anyauth

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
)

// This file builds the request of each round trip: the clone of the
// caller's request with its body rewound, its cached (preemptive)
// answers and the legs they start, and the cookies of a jar.

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
		x.volunteer(s)
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
		x.volunteer(s)
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
	if out.URL.Scheme == "https" && hasHeader(out.Header, "Proxy-Authorization") {
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
		if (x.expectContinue || x.t.ExpectContinue && x.body.streaming()) && out.Header.Get("Expect") == "" {
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
	if x.t.Jar != nil && !x.tunnel {
		if cs := resp.Cookies(); len(cs) > 0 {
			x.t.Jar.SetCookies(x.req.URL, cs)
		}
	}
}
