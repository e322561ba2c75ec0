package schemes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anyauth/anyauth"
)

// This file holds the per-space state of Digest: the Session the
// Transport keeps, its nonce and nonce count, and what it does with a
// stale challenge and with Authentication-Info.

// counter is the nonce count (nc) of one nonce (and opaque). It is shared
// by every state that uses the nonce, so a count is never sent twice for
// it, and it lets one request at a time answer with the nonce: a server
// that hands every client the same nonce and wants its nc to rise then
// receives the counts in order, whichever lanes and sessions hold it.
type counter struct {
	n atomic.Uint64
	// held is 1 while a request answers with the nonce; waiters count
	// the requests waiting for it, woken one at a time through wake.
	held    atomic.Int32
	waiters atomic.Int32
	wake    chan struct{}
}

func newCounter() *counter { return &counter{wake: make(chan struct{}, 1)} }

// hold waits, within ctx, until no other request answers with the nonce,
// and takes it. Uncontended, it is one compare-and-swap.
func (c *counter) hold(ctx context.Context) error {
	if c.held.CompareAndSwap(0, 1) {
		return nil
	}
	c.waiters.Add(1)
	defer c.waiters.Add(-1)
	for {
		if c.held.CompareAndSwap(0, 1) {
			return nil
		}
		select {
		case <-c.wake:
		case <-ctx.Done():
			return fmt.Errorf("digest: waiting for another request that answers with the same nonce: %w", ctx.Err())
		}
	}
}

// unhold lets the next request answer with the nonce, waking one that
// waits.
func (c *counter) unhold() {
	c.held.Store(0)
	if c.waiters.Load() > 0 {
		select {
		case c.wake <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// maxNC is the largest nonce count that fits the 8 hex digits of nc.
const maxNC = 0xffffffff

// digestState is one immutable snapshot of what a session answers with:
// a challenge, the values derived from it, and the nonce's counter. A
// session swaps the whole snapshot when it adopts a new nonce, so
// Authorize reads it without a lock.
type digestState struct {
	ch *digestChallenge
	// hashed is true when the username field holds H(user ":" realm).
	hashed bool
	// usernameField is `username="…"` or `username*=…`.
	usernameField string
	// ha1 is H(username ":" realm ":" password) in hex: secret.
	ha1    string
	header digestHeader
	nc     *counter
}

// Format prints the state without its secret.
func (st digestState) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "{algorithm=%s nonce=%q nc=%d userhash=%t ha1=REDACTED}",
		st.algorithmName(), st.ch.nonce, st.nc.n.Load(), st.hashed)
}

func (st *digestState) algorithmName() string {
	if st.ch.algName == "" {
		return "MD5"
	}
	return st.ch.algName
}

// nonceKey keys the nonce counters in the Transport's anyauth.Store: the
// server's origin (or proxy), and a digest of the nonce and opaque. A
// server may hand one nonce to several clients that challenge at once
// (RFC 7616 allows it); their sessions then share its count, so no nc is
// sent twice for it. A new opaque starts a new count even for the same
// nonce: Ruby's WEBrick keeps one client record per opaque and wants a
// new record's first nc to be 1, and RFC 7616 allows any nc not used
// before.
type nonceKey struct {
	origin string
	sum    [sha256.Size]byte
}

func nonceKeyOf(origin string, ch *digestChallenge) nonceKey {
	h := sha256.New()
	io.WriteString(h, ch.nonce)
	h.Write([]byte{0, boolByte(ch.hasOpaque)})
	io.WriteString(h, ch.opaque)
	k := nonceKey{origin: origin}
	h.Sum(k.sum[:0])
	return k
}

// digestSession is the anyauth.Session of Digest. It is safe for
// concurrent use.
//
// It answers on lanes: a lane is one server nonce (and opaque) with its
// nonce count, and serves one request at a time, from the Leg's Start to
// the request's end. So the nonce counts of a lane reach the server in
// order, as Apache's AuthDigestNcCheck demands (it refuses an nc that is
// not the next one of its client). A request that finds every lane busy
// is sent without an answer, and the 401 it gets opens a new lane: a
// space costs one 401 per request that ran concurrently with the others,
// and no request is refused for an nc overtaken on another connection.
// Reading a lane's state is lock-free (an atomic pointer to an immutable
// state, nc taken with an atomic add); adopting a nonce swaps the state
// under mu.
type digestSession struct {
	cfg   Digest
	proxy bool
	// answerHeader and infoHeader are the space's Authorization (or
	// Proxy-Authorization) and Authentication-Info header names.
	answerHeader, infoHeader string
	space                    string // the protection space, for log lines
	logger                   *slog.Logger

	username string
	password string // secret: never printed

	randMu sync.Mutex // serializes reads of cfg.Rand

	// origin and store keep the nonce counters: the server's origin (or
	// proxy), and the Transport's Store (the session's own without one).
	origin string
	store  *anyauth.Store

	mu sync.Mutex // serializes state changes and lane use

	// digestLane is the first lane, opened by Begin; extra holds the
	// lanes opened later, guarded by mu.
	digestLane
	extra []*digestLane
}

// maxLanes bounds the lanes of one session. Past it, requests share
// lanes, and an nc may then overtake another on its way.
const maxLanes = 64

// digestLane is one server nonce of a session and what answering with it
// needs. busy is guarded by the session's mu.
type digestLane struct {
	state atomic.Pointer[digestState]
	busy  bool
}

// String describes the session for logs: the space, user name, algorithm
// and nonce count; never the password or HA1.
func (s *digestSession) String() string {
	st := s.state.Load()
	qop := "none"
	switch {
	case st.ch.qopAuth && st.ch.qopAuthInt:
		qop = "auth,auth-int"
	case st.ch.qopAuth:
		qop = "auth"
	case st.ch.qopAuthInt:
		qop = "auth-int"
	}
	return fmt.Sprintf("Digest session{%s user=%q algorithm=%s qop=%s userhash=%t nc=%d password=REDACTED}",
		s.space, s.username, st.algorithmName(), qop, st.hashed, st.nc.n.Load())
}

// GoString is String: the session has no Go syntax worth printing.
func (s *digestSession) GoString() string { return s.String() }

// Format prints String whatever the verb and flags, so that %v, %+v and
// %#v never reach the password.
func (s *digestSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// newState derives a state from ch. It reuses old's HA1 and username
// field when the hash function, realm and userhash choice are unchanged.
func (s *digestSession) newState(ch *digestChallenge, nc *counter, old *digestState) *digestState {
	st := &digestState{ch: ch, nc: nc, hashed: ch.userhash && !s.cfg.NoUserhash}
	if old != nil && old.ch.alg.hash == ch.alg.hash && old.ch.realm == ch.realm && old.hashed == st.hashed {
		st.ha1, st.usernameField = old.ha1, old.usernameField
	} else {
		st.ha1 = s.computeHA1(ch.alg.hash, ch.realm)
		st.usernameField = usernameField(s.username, ch.realm, ch.alg.hash, st.hashed)
	}
	st.header = newDigestHeader(ch, st.usernameField, st.hashed)
	return st
}

// computeHA1 returns H(username ":" realm ":" password) in hex.
func (s *digestSession) computeHA1(h hashFunc, realm string) string {
	var scratch [256]byte
	var out [2 * 64]byte
	return string(h.appendJoined(out[:0], scratch[:0], s.username, realm, s.password))
}

// adopt makes ch the challenge of lane l. The nonce count restarts for a
// nonce not used before, and continues for one that was.
func (s *digestSession) adopt(l *digestLane, ch *digestChallenge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adoptLocked(l, ch)
}

// adoptLocked is adopt with s.mu held.
func (s *digestSession) adoptLocked(l *digestLane, ch *digestChallenge) {
	old := l.state.Load()
	l.state.Store(s.newState(ch, s.counterLocked(ch), old))
}

// acquire returns a lane for one request, marked busy, or nil when every
// lane is busy and a new one may be opened. Past maxLanes it returns the
// first lane, shared.
func (s *digestSession) acquire() *digestLane {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.busy {
		s.busy = true
		return &s.digestLane
	}
	for _, l := range s.extra {
		if !l.busy {
			l.busy = true
			return l
		}
	}
	if len(s.extra)+1 >= maxLanes {
		return &s.digestLane
	}
	return nil
}

// release frees lane l for the next request.
func (s *digestSession) release(l *digestLane) {
	s.mu.Lock()
	l.busy = false
	s.mu.Unlock()
}

// addLane adds an idle lane answering ch, and reports false when the
// session has maxLanes already.
func (s *digestSession) addLane(ch *digestChallenge) bool {
	l := s.openLane(ch)
	if l == nil {
		return false
	}
	s.release(l)
	return true
}

// openLane adds a busy lane answering ch, or returns nil when the session
// has maxLanes already.
func (s *digestSession) openLane(ch *digestChallenge) *digestLane {
	// The state is derived before taking mu: many requests challenged at
	// once open their lanes together.
	st := s.newState(ch, s.counterLocked(ch), s.state.Load())
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.extra)+1 >= maxLanes {
		return nil
	}
	l := &digestLane{busy: true}
	l.state.Store(st)
	s.extra = append(s.extra, l)
	return l
}

// counterLocked returns the counter of ch's nonce and opaque, shared with
// every session of the Transport that uses them on the same server.
func (s *digestSession) counterLocked(ch *digestChallenge) *counter {
	return s.counterOr(ch, nil)
}

// counterOr returns the counter of ch's nonce and opaque, making it c (or
// a new one) when there is none yet.
func (s *digestSession) counterOr(ch *digestChallenge, c *counter) *counter {
	return s.store.Get(nonceKeyOf(s.origin, ch), func() any {
		if c == nil {
			c = newCounter()
		}
		return c
	}).(*counter)
}

// counterForOpaque returns the nonce counter of this (rejected) session
// when ch is a new nonce from the same server client: same realm and the
// same non-empty opaque. Apache's AuthDigestNcCheck keeps one count per
// opaque across the nonces it hands out, and refuses an nc that is not
// above it; a request that lost a race to a higher nc is answered with a
// new nonce and the same opaque, and a fresh count starting at 1 would be
// refused again. Sharing the counter keeps the count rising for that
// server, and RFC 7616 servers accept any nc that was not used before.
func (s *digestSession) counterForOpaque(ch *digestChallenge) *counter {
	s.mu.Lock()
	lanes := append([]*digestLane{&s.digestLane}, s.extra...)
	s.mu.Unlock()
	for _, l := range lanes {
		st := l.state.Load()
		if !st.ch.hasOpaque || st.ch.opaque == "" || !ch.hasOpaque || ch.opaque != st.ch.opaque ||
			st.ch.realm != ch.realm || st.ch.nonce == ch.nonce {
			continue
		}
		return st.nc
	}
	return nil
}

// appendCnonce appends a fresh client nonce to dst: 16 random bytes in
// hex.
func (s *digestSession) appendCnonce(dst []byte) ([]byte, error) {
	if s.cfg.fixedCnonce != "" {
		return append(dst, s.cfg.fixedCnonce...), nil
	}
	var b [16]byte
	if s.cfg.Rand == nil {
		rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	} else {
		s.randMu.Lock()
		_, err := io.ReadFull(s.cfg.Rand, b[:])
		s.randMu.Unlock()
		if err != nil {
			return nil, fmt.Errorf("digest: reading a cnonce from Digest.Rand: %w", err)
		}
	}
	return hex.AppendEncode(dst, b[:]), nil
}

// appendNC appends n as the 8 lower-case hex digits of nc.
func appendNC(dst []byte, n uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(n>>uint(shift))&0xf])
	}
	return dst
}

// requestTarget returns the request-target that req's request line will
// carry, which is the uri Digest signs: the origin form (path and query)
// for an origin, the absolute form for a proxy, and the authority form
// for CONNECT. It follows net/http's Request.write.
func requestTarget(req *http.Request, proxy bool) string {
	u := req.URL
	if u == nil {
		return "/"
	}
	switch {
	case proxy && u.Scheme != "" && u.Opaque == "":
		return u.Scheme + "://" + requestHost(req) + u.RequestURI()
	case req.Method == http.MethodConnect && u.Path == "":
		if u.Opaque != "" {
			return u.Opaque
		}
		return requestHost(req)
	}
	return u.RequestURI()
}

// requestHost is the host net/http writes for req: req.Host, else the
// URL's, without an IPv6 zone (RFC 6874).
func requestHost(req *http.Request) string {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if strings.HasPrefix(host, "[") {
		if end := strings.LastIndexByte(host, ']'); end > 0 {
			if zone := strings.LastIndexByte(host[:end], '%'); zone > 0 {
				host = host[:zone] + host[end:]
			}
		}
	}
	return host
}
