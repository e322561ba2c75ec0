package schemes

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"unsafe"

	"github.com/anyauth/anyauth"
)

// This file holds the per-request part of Digest: the Leg that signs one
// request, remembers the nonce count and cnonce it sent, adopts a stale
// nonce, and checks the server's rspauth against what it sent.

// Start returns the Leg that answers one request of the session's space,
// on a lane of its own (see digestSession).
func (s *digestSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return &digestLeg{s: s, lane: s.acquire()}, nil
}

// digestLeg is one request's answer. It records what its last Apply sent,
// so that Finish checks rspauth against it without reading the header
// back.
type digestLeg struct {
	s *digestSession
	// lane is the nonce the leg answers with, busy until End; nil while
	// the leg waits for the 401 that opens a lane of its own.
	lane  *digestLane
	ended bool
	// held is the nonce counter whose nonce this leg answers with while
	// its round trip is out (see counter.hold), nil when none.
	held *counter
	// st is the state the last Apply signed with, nil before the first.
	st *digestState
	// What the last Apply sent besides st: the signed request-target, the
	// qop chosen ("" for none), and the nc and cnonce of a qop answer.
	uri, qop, nc, cnonce string
	ncc                  [8 + 64]byte // the bytes of nc and cnonce
}

// Apply sets the Authorization (or Proxy-Authorization) header of req,
// signed under the session's current nonce with the next nonce count and
// a fresh cnonce.
func (l *digestLeg) Apply(req *http.Request) error {
	if l.lane == nil {
		return nil // every lane is busy: the 401 opens one
	}
	h, err := l.header(req)
	if err != nil {
		return err
	}
	req.Header[l.s.answerHeader] = []string{h} // the name is canonical already
	return nil
}

// header returns the header value for req and records what it signed. It
// answers qop=auth-int when it is offered, preferred, and the body can be
// read again (hashing the body through GetBody, which may fail with
// anyauth.ErrBodyNotReplayable for a stream over the Transport's buffer);
// otherwise qop=auth when offered; an auth-int-only challenge with a body
// that cannot be re-read gives an error wrapping ErrBodyNotReadable.
func (l *digestLeg) header(req *http.Request) (string, error) {
	s := l.s
	st := l.lane.state.Load()
	ch := st.ch
	in := digestInput{
		h:      ch.alg.hash,
		sess:   ch.alg.sess,
		ha1:    st.ha1,
		nonce:  ch.nonce,
		method: req.Method,
		uri:    requestTarget(req, s.proxy),
	}
	if in.method == "" {
		in.method = http.MethodGet
	}
	authInt := ch.qopAuthInt && s.cfg.prefersAuthInt(ch) && bodyReadable(req)
	if authInt {
		getBody := req.GetBody
		if req.Body == nil || req.Body == http.NoBody {
			getBody = nil // no body: H("")
		}
		var err error
		if in.bodyHash, err = hashBody(in.h, getBody); err != nil {
			if !errors.Is(err, anyauth.ErrBodyNotReplayable) {
				return "", err
			}
			// A stream larger than the Transport's buffer: it cannot be
			// read again whole, as if there were no GetBody.
			authInt = false
		}
	}
	switch {
	case authInt:
		in.qop = "auth-int"
	case ch.qopAuth:
		in.qop = "auth"
	case ch.qopAuthInt:
		// The path only: a query may hold a token.
		return "", fmt.Errorf("%w (%s %s)", ErrBodyNotReadable, in.method, req.URL.EscapedPath())
	}
	if in.qop != "" {
		if err := l.hold(req.Context(), st.nc); err != nil {
			return "", err
		}
		n := st.nc.n.Add(1)
		if n > maxNC {
			return "", fmt.Errorf("digest: nonce count exhausted for the nonce of %s", s.space)
		}
		// nc and cnonce live in the leg: no allocation. The strings
		// point into l.ncc, which the next Apply of this leg rewrites
		// along with l.nc and l.cnonce.
		b := appendNC(l.ncc[:0], n)
		b, err := s.appendCnonce(b)
		if err != nil {
			return "", err
		}
		both := unsafe.String(unsafe.SliceData(b), len(b))
		in.nc, in.cnonce = both[:8], both[8:]
	}
	var respBuf [2 * 64]byte
	response := appendResponse(respBuf[:0], &in, true)
	l.st, l.uri, l.qop, l.nc, l.cnonce = st, in.uri, in.qop, in.nc, in.cnonce
	return st.header.format(in.uri, in.cnonce, in.nc, in.qop, response), nil
}

// Continue adopts c when it is a Digest challenge with stale=true for the
// session's realm that Digest can answer and that weakens nothing: the
// session takes its nonce, opaque, algorithm and qop, the nonce count
// restarts, and the request is sent again with the same credentials. Any
// other challenge means the answer was rejected. A stale challenge that
// would lower the algorithm or the qop, or drop a userhash the session
// sends, is refused as a rejection: a forged stale=true must not weaken a
// session that many requests share.
//
// A leg that was sent without an answer (every lane was busy) opens a
// lane with c's nonce, stale or not, under the same conditions.
func (l *digestLeg) Continue(_ context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	l.unhold()
	if l.lane == nil {
		ch, ok := l.s.acceptable(c, false)
		if !ok {
			return false, nil
		}
		if l.lane = l.s.openLane(ch); l.lane == nil {
			l.lane = &l.s.digestLane // maxLanes: share the first
		}
		return true, nil
	}
	return l.s.adoptStale(l.lane, c), nil
}

// End frees the leg's lane: the request is over.
func (l *digestLeg) End() {
	if l.ended {
		return
	}
	l.ended = true
	l.unhold()
	if l.lane != nil {
		l.s.release(l.lane)
	}
}

// hold takes the nonce of c for this leg's round trip, letting go of the
// one it held before.
func (l *digestLeg) hold(ctx context.Context, c *counter) error {
	if l.held == c {
		return nil
	}
	l.unhold()
	if err := c.hold(ctx); err != nil {
		return err
	}
	l.held = c
	return nil
}

// unhold lets the next request answer with the nonce this leg held.
func (l *digestLeg) unhold() {
	if l.held != nil {
		l.held.unhold()
		l.held = nil
	}
}

// adoptStale adopts c on lane as described for Continue and reports
// whether it did.
func (s *digestSession) adoptStale(lane *digestLane, c *anyauth.Challenge) bool {
	ch, ok := s.acceptable(c, true)
	if !ok {
		return false
	}
	s.adopt(lane, ch)
	return true
}

// acceptable parses c and reports whether the session may answer it with
// the same credentials: a Digest challenge of its realm (with stale=true
// when stale is set) that weakens neither the algorithm, nor the qop, nor
// the userhash of the session's first lane.
func (s *digestSession) acceptable(c *anyauth.Challenge, stale bool) (*digestChallenge, bool) {
	if c == nil {
		return nil, false
	}
	ch, err := parseDigestChallenge(c)
	if err != nil || (stale && !ch.stale) {
		return nil, false
	}
	ch = ch.detached()
	if why := s.weakenedBy(ch); why != "" {
		s.logger.Warn("digest: refusing a challenge that weakens the session", "space", s.space, "why", why)
		return nil, false
	}
	return ch, true
}

// weakenedBy says how answering ch would weaken the session's first lane
// (another realm, a weaker algorithm or qop, no userhash), "" when it
// would not.
func (s *digestSession) weakenedBy(ch *digestChallenge) string {
	cur := s.state.Load()
	switch {
	case ch.realm != cur.ch.realm:
		return "another realm"
	case ch.alg.strength < cur.ch.alg.strength:
		return "a weaker algorithm"
	case s.cfg.offeredStrength(ch) < s.cfg.offeredStrength(cur.ch):
		return "a weaker qop"
	case cur.hashed && !ch.userhash:
		return "no userhash (the user name would travel in the clear)"
	}
	return ""
}

// offeredStrength is the strength Strength gives ch.
func (d Digest) offeredStrength(ch *digestChallenge) anyauth.Strength {
	s := ch.alg.strength
	switch {
	case ch.qopAuthInt && d.prefersAuthInt(ch):
		s += strengthAuthInt
	case ch.qopAuth:
		s += strengthAuth
	}
	if ch.userhash && !d.NoUserhash {
		s += strengthUserhash
	}
	return s
}

// Finish reads the Authentication-Info (for a proxy,
// Proxy-Authentication-Info) of a response the server accepted. It checks
// rspauth against the nonce, nc and cnonce this leg sent, and adopts
// nextnonce. A mismatch fails with an error wrapping ErrMutualAuth when
// RequireMutualAuth is set, and is logged at Warn level otherwise. It
// never reads the body.
func (l *digestLeg) Finish(resp *http.Response) error {
	s := l.s
	l.unhold()
	if resp == nil || l.st == nil {
		return nil
	}
	infoName := s.infoHeader
	vals := resp.Header.Values(infoName)
	if len(vals) == 0 {
		if s.cfg.RequireMutualAuth {
			return fmt.Errorf("%w: the response carries no %s (%s)", ErrMutualAuth, infoName, s.space)
		}
		return nil
	}
	params, err := anyauth.ParseAuthParams(vals...)
	if err != nil {
		if s.cfg.RequireMutualAuth {
			return fmt.Errorf("%w: %s is malformed (%s)", ErrMutualAuth, infoName, s.space)
		}
		s.logger.Warn("digest: ignoring a malformed "+infoName, "space", s.space)
		return nil
	}
	info := &anyauth.Challenge{Params: params}
	if err := l.verify(info, infoName); err != nil {
		if s.cfg.RequireMutualAuth {
			return err
		}
		if errorsIsMismatch(err) {
			s.logger.Warn("digest: the server's rspauth does not match: it did not prove that it knows the password",
				"space", s.space, "detail", err.Error())
			return nil // a forged response's nextnonce is not adopted
		}
	}
	if next := info.Param("nextnonce"); next != "" && len(next) <= maxDigestValue && l.lane != nil {
		cur := l.lane.state.Load()
		// Adopt a successor of the nonce in use only: a late response to
		// an older nonce must not pull the lane back.
		if next != cur.ch.nonce && l.st.ch.nonce == cur.ch.nonce {
			ch := *cur.ch
			ch.nonce, ch.stale = strings.Clone(next), false
			s.adoptIf(l.lane, cur, &ch)
		}
	}
	return nil
}

// adoptIf adopts ch on lane unless its state changed since cur was read.
func (s *digestSession) adoptIf(lane *digestLane, cur *digestState, ch *digestChallenge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lane.state.Load() == cur {
		s.adoptLocked(lane, ch)
	}
}

// mismatchError is a verification failure that the server caused (a
// wrong rspauth), as opposed to one that could not be checked.
type mismatchError struct{ msg string }

func (e *mismatchError) Error() string { return ErrMutualAuth.Error() + ": " + e.msg }
func (e *mismatchError) Unwrap() error { return ErrMutualAuth }

func errorsIsMismatch(err error) bool {
	_, ok := err.(*mismatchError)
	return ok
}

// verify checks info's rspauth against what the leg sent. It returns nil
// when it matches, a *mismatchError when it does not, and another error
// wrapping ErrMutualAuth when it cannot be checked (which matters only
// with RequireMutualAuth).
func (l *digestLeg) verify(info *anyauth.Challenge, infoName string) error {
	s := l.s
	rspauth, ok := info.Lookup("rspauth")
	if !ok {
		return fmt.Errorf("%w: %s carries no rspauth (%s)", ErrMutualAuth, infoName, s.space)
	}
	switch l.qop {
	case "", "auth":
	default:
		// For auth-int, rspauth covers the hash of the response body
		// (A2 = ":" uri ":" H(entity-body)). Finish must not read the
		// body, and hashing it as the caller reads it would report a
		// mismatch only after the caller consumed a forged body; so
		// rspauth is not verified for auth-int.
		return fmt.Errorf("%w: rspauth of a qop=auth-int answer covers the response body and is not checked (%s)", ErrMutualAuth, s.space)
	}
	// The server echoes the answer's qop, cnonce and nc (RFC 7616 §3.5);
	// an echo that differs is a response to another answer.
	for _, p := range [...]struct{ name, sent string }{{"qop", l.qop}, {"cnonce", l.cnonce}, {"nc", l.nc}} {
		if v, ok := info.Lookup(p.name); ok && v != p.sent {
			return &mismatchError{fmt.Sprintf("%s echoes another %s than the request sent (%s)", infoName, p.name, s.space)}
		}
	}
	in := digestInput{
		h:      l.st.ch.alg.hash,
		sess:   l.st.ch.alg.sess,
		ha1:    l.st.ha1,
		nonce:  l.st.ch.nonce,
		uri:    l.uri,
		qop:    l.qop,
		nc:     l.nc,
		cnonce: l.cnonce,
	}
	var buf [2 * 64]byte
	want := appendResponse(buf[:0], &in, false)
	if subtle.ConstantTimeCompare(want, []byte(strings.ToLower(rspauth))) != 1 {
		return &mismatchError{fmt.Sprintf("rspauth does not match (%s)", s.space)}
	}
	return nil
}
