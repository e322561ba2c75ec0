package anyauth

import (
	"log/slog"
	"net/url"
)

// This file lets a scheme answer before any challenge: an API that
// answers 401 without a WWW-Authenticate the scheme knows (many OAuth2
// APIs do) never challenges it, so it must volunteer its answer, as
// oauth2.NewClient sends its token on every request.

// A Volunteer is a Scheme that answers the requests to some origins from
// the first one, before any challenge (schemes.Bearer with Preemptive).
// The Transport begins it, with a challenge that names only its scheme,
// for a request to an origin where nothing is cached yet; once accepted,
// its answer is cached like any other. Only origins are volunteered to,
// never proxies.
type Volunteer interface {
	Scheme
	// Volunteers reports whether requests to u's origin get an answer
	// before they are challenged. It must not block.
	Volunteers(u *url.URL) bool
}

// volunteer begins, for the origin side, the first Volunteer that answers
// the request's origin, when nothing is cached for it.
func (x *exchange) volunteer(s *side) {
	if s.proxy || x.tunnel {
		return
	}
	for _, sc := range x.t.Schemes {
		v, ok := sc.(Volunteer)
		if !ok || !v.Volunteers(x.req.URL) {
			continue
		}
		c := &Challenge{Scheme: sc.Name()}
		strength, ok := sc.Strength(c)
		if !ok {
			continue
		}
		space := originOf(x.req.URL)
		space.AuthScheme, space.Path = sc.Name(), "/"
		if _, refused := x.t.cleartextRefused(sc, &space, x.proxyURL); refused {
			continue
		}
		session, err := sc.Begin(x.ctx(), c, &Attempt{Request: x.req, Space: space, Credentials: x.credentials(s), Logger: x.log, Store: &x.t.store})
		if err != nil {
			x.debug("anyauth: not volunteered", slog.String("scheme", sc.Name()), slog.String("why", err.Error()))
			continue
		}
		who, asked := x.credentials(s).asked(&space)
		s.entry = &cacheEntry{space: space, prefixes: []string{"/"}, session: session, strength: strength, traits: sc.Traits(), who: who, asked: asked}
		x.debug("anyauth: volunteered", slog.String("scheme", sc.Name()), slog.String("space", space.String()))
		return
	}
}
