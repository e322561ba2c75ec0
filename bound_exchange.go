package anyauth

import (
	"log/slog"
	"time"
)

// This file is the part of a request's exchange that rides a connection
// the Transport owns, for connection-bound schemes (see bound.go).

// needsConn reports whether a side is answering with a connection-bound
// scheme, whose legs must ride a connection of their own.
func (x *exchange) needsConn() bool {
	if x.tunnel {
		return false // a CONNECT is on its own connection already
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.entry != nil && s.entry.traits.ConnectionBound {
			return true
		}
	}
	return false
}

// openConn opens the connection the handshake will ride.
func (x *exchange) openConn() error {
	owner := x.t.route().owner
	c, err := x.t.bound.open(x.ctx(), owner, x.req.URL.Scheme, x.req.URL.Host)
	if err != nil {
		return err
	}
	x.conn, x.connPooled = c, false
	if x.log.Enabled(x.ctx(), slog.LevelDebug) {
		x.debug("anyauth: connection opened for a connection-bound handshake", slog.String("url", safeURL(x.req.URL)))
	}
	return nil
}

// reuseBound takes an idle connection that was authenticated in a
// connection-bound space of the request, for the same identity. When
// there is none, a request to an origin known to bind its authentication
// to connections goes on a new connection of its own, so that its
// challenge and the handshake share it.
func (x *exchange) reuseBound() error {
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.bound == nil || x.t.route().owner == nil {
			continue
		}
		// s.bound is of the request's identity (usePreemptive): the
		// connection and the session started on it are the request's.
		key := boundKey{space: s.bound.space, identity: s.bound.who}
		if c := x.t.bound.take(key, x.idleAfter()); c != nil {
			x.conn, x.connPooled = c, true
			if x.log.Enabled(x.ctx(), slog.LevelDebug) {
				x.debug("anyauth: reusing a connection authenticated in the space", slog.String("space", s.bound.space.String()))
			}
			if x.t.bound.wantsLeg(c) {
				// This server challenged a request without a leg on
				// an authenticated connection before (Squid does, and
				// then accepts the first leg at once): start the
				// handshake now. Its first leg carries no secret, and
				// the session is of this identity: the key says so.
				s.entry, s.fromCache = s.bound, true
			}
			return nil
		}
	}
	// Not for a proxy's space: a proxy (Squid) may stop reading a
	// connection whose first request carried a large body.
	if x.origin.bound != nil && x.t.route().owner != nil && !x.squidStallsOnLargeReplay() {
		return x.openConn()
	}
	return nil
}

// idleAfter is how long an authenticated connection may stay idle.
func (x *exchange) idleAfter() time.Duration {
	if o := x.t.route().owner; o != nil && o.IdleConnTimeout > 0 {
		return o.IdleConnTimeout
	}
	return defaultBoundIdleAfter
}

// restartBoundLegs starts again, from a new leg of the same session, every
// connection-bound handshake that had sent a leg on a connection that is
// gone.
func (x *exchange) restartBoundLegs() error {
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.entry == nil || !s.entry.traits.ConnectionBound || s.applied == 0 {
			continue
		}
		x.restarts++
		if x.restarts > maxBoundRestarts {
			return &AuthError{Space: s.entry.space, Err: errBoundConnLost}
		}
		x.debug("anyauth: the connection closed during a connection-bound handshake; starting it again", slog.String("space", s.entry.space.String()))
		leg, err := s.entry.session.Start(x.ctx(), x.req)
		if err != nil {
			return &AuthError{Space: s.entry.space, Err: err}
		}
		s.leg, s.applied = leg, 0
		x.addLeg(leg)
	}
	return nil
}

// keyConn records, after a success, which space and identity the owned
// connection is now authenticated for.
func (x *exchange) keyConn() {
	for _, s := range []*side{&x.origin, &x.proxy} {
		if s.entry != nil && s.entry.traits.ConnectionBound {
			key := boundKey{space: s.entry.space, identity: s.entry.who}
			x.t.bound.authenticated(x.conn, key)
			return
		}
	}
}
