package schemes

import (
	"crypto/rand"
	"crypto/subtle"
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

// counter is the nonce count (nc) of one nonce. It is shared by every
// state that uses the nonce, so a count is never sent twice for it.
type counter struct{ n atomic.Uint64 }

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

// maxRememberedNonces bounds how many nonces a session keeps the count
// of. Going back to one of them (a late nextnonce, a stale challenge that
// repeats it) continues its count instead of sending one twice.
const maxRememberedNonces = 256

// digestSession is the anyauth.Session of Digest. It is safe for
// concurrent use: Authorize reads an immutable state through an atomic
// pointer and takes its nc with an atomic add; adopting a nonce swaps the
// state under mu.
type digestSession struct {
	cfg    Digest
	proxy  bool
	space  string // the protection space, for log lines
	logger *slog.Logger

	username string
	password string // secret: never printed

	randMu sync.Mutex // serializes reads of cfg.Rand

	mu    sync.Mutex // serializes state changes
	state atomic.Pointer[digestState]
	// counters holds the counter of every nonce used lately, oldest
	// first in order; guarded by mu.
	counters map[string]*counter
	order    []string
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

// adopt makes ch the session's challenge. The nonce count restarts for a
// nonce the session has not used, and continues for one it has.
func (s *digestSession) adopt(ch *digestChallenge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adoptLocked(ch)
}

// adoptLocked is adopt with s.mu held.
func (s *digestSession) adoptLocked(ch *digestChallenge) {
	old := s.state.Load()
	s.state.Store(s.newState(ch, s.counterLocked(ch.nonce), old))
}

// counterLocked returns the counter of nonce, creating it (and forgetting
// the oldest) when the session has not used the nonce lately.
func (s *digestSession) counterLocked(nonce string) *counter {
	if c := s.counters[nonce]; c != nil {
		return c
	}
	if s.counters == nil {
		s.counters = make(map[string]*counter)
	}
	if len(s.order) >= maxRememberedNonces {
		delete(s.counters, s.order[0])
		s.order = s.order[1:]
	}
	c := &counter{}
	s.counters[nonce] = c
	s.order = append(s.order, nonce)
	return c
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
	st := s.state.Load()
	if !st.ch.hasOpaque || st.ch.opaque == "" || !ch.hasOpaque || ch.opaque != st.ch.opaque ||
		st.ch.realm != ch.realm || st.ch.nonce == ch.nonce {
		return nil
	}
	return st.nc
}

// Authorize returns the Authorization (or Proxy-Authorization) value for
// req under the current nonce, with the next nonce count and a fresh
// cnonce. It answers qop=auth-int when it is offered, preferred, and the
// body can be read again (hashing the body through GetBody); otherwise
// qop=auth when offered; an auth-int-only challenge with a body that
// cannot be re-read gives an error wrapping ErrBodyNotReadable.
func (s *digestSession) Authorize(req *http.Request) (string, error) {
	st := s.state.Load()
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
	switch {
	case ch.qopAuthInt && s.cfg.prefersAuthInt(ch) && bodyReadable(req):
		in.qop = "auth-int"
		getBody := req.GetBody
		if req.Body == nil || req.Body == http.NoBody {
			getBody = nil // no body: H("")
		}
		var err error
		if in.bodyHash, err = hashBody(in.h, getBody); err != nil {
			return "", err
		}
	case ch.qopAuth:
		in.qop = "auth"
	case ch.qopAuthInt:
		// The path only: a query may hold a token.
		return "", fmt.Errorf("%w (%s %s)", ErrBodyNotReadable, in.method, req.URL.EscapedPath())
	}
	if in.qop != "" {
		n := st.nc.n.Add(1)
		if n > maxNC {
			return "", fmt.Errorf("schemes: digest: nonce count exhausted for the nonce of %s", s.space)
		}
		// nc and cnonce share one allocation.
		var buf [8 + 64]byte
		b := appendNC(buf[:0], n)
		b, err := s.appendCnonce(b)
		if err != nil {
			return "", err
		}
		both := string(b)
		in.nc, in.cnonce = both[:8], both[8:]
	}
	var respBuf [2 * 64]byte
	response := appendResponse(respBuf[:0], &in, true)
	return st.header.format(in.uri, in.cnonce, in.nc, in.qop, response), nil
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
			return nil, fmt.Errorf("schemes: digest: reading a cnonce from Digest.Rand: %w", err)
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

// Refresh adopts c when it is a Digest challenge with stale=true for the
// session's realm, with an algorithm and qop Digest can answer: the
// session takes its nonce, opaque, algorithm and qop, its nonce count
// restarts, and Refresh returns true so the Transport retries with the
// same credentials. Any other challenge means the answer was rejected:
// Refresh returns false and changes nothing. That includes a stale
// challenge whose algorithm is weaker than the session's (a downgrade).
func (s *digestSession) Refresh(c *anyauth.Challenge) bool {
	ch, err := parseDigestChallenge(c)
	if err != nil || !ch.stale {
		return false
	}
	cur := s.state.Load().ch
	if ch.realm != cur.realm {
		return false
	}
	// A stale challenge must not weaken the answer: a forged one could
	// otherwise move a SHA-256 session to MD5 without a rejection.
	if ch.alg.strength < cur.alg.strength {
		s.logger.Warn("digest: refusing a stale challenge with a weaker algorithm", "space", s.space,
			"algorithm", truncateForError(ch.algName))
		return false
	}
	s.adopt(ch)
	return true
}

// infoHeaders returns the names of the fields that carry the server's
// Authentication-Info and the client's answer.
func (s *digestSession) infoHeaders() (info, answer string, rejected int) {
	if s.proxy {
		return "Proxy-Authentication-Info", "Proxy-Authorization", http.StatusProxyAuthRequired
	}
	return "Authentication-Info", "Authorization", http.StatusUnauthorized
}

// Complete reads the Authentication-Info (for a proxy,
// Proxy-Authentication-Info) of a response the server accepted. It checks
// rspauth against the cnonce and nc of the request that got resp (read
// back from resp.Request's Authorization header), and adopts nextnonce.
// A mismatch fails with an error wrapping ErrMutualAuth when
// RequireMutualAuth is set, and is logged at Warn level otherwise. It
// never reads the body.
func (s *digestSession) Complete(resp *http.Response) error {
	if resp == nil {
		return nil
	}
	infoName, answerName, rejected := s.infoHeaders()
	if resp.StatusCode == rejected {
		return nil // not accepted: nothing to verify or adopt
	}
	var sent *anyauth.Challenge
	if resp.Request != nil {
		if cs := anyauth.ParseChallenges(resp.Request.Header.Values(answerName)...); len(cs) == 1 && cs[0].Is("Digest") {
			sent = &cs[0]
		}
	}
	var info *anyauth.Challenge
	if vals := resp.Header.Values(infoName); len(vals) > 0 {
		// Authentication-Info is a bare list of auth-params; give it a
		// scheme to parse it with the challenge grammar.
		if cs := anyauth.ParseChallenges("Digest " + strings.Join(vals, ", ")); len(cs) == 1 {
			info = &cs[0]
		} else if s.cfg.RequireMutualAuth {
			return fmt.Errorf("%w: %s is malformed (%s)", ErrMutualAuth, infoName, s.space)
		} else {
			s.logger.Warn("digest: ignoring a malformed "+infoName, "space", s.space)
			return nil
		}
	}

	if err := s.verify(info, sent, infoName); err != nil {
		if s.cfg.RequireMutualAuth {
			return err
		}
		if errorsIsMismatch(err) {
			s.logger.Warn("digest: the server's rspauth does not match: it did not prove that it knows the password",
				"space", s.space, "detail", err.Error())
			return nil // a forged response's nextnonce is not adopted
		}
	}

	if info == nil {
		return nil
	}
	if next := info.Param("nextnonce"); next != "" {
		cur := s.state.Load()
		// Adopt a successor of the nonce in use only: a late response to
		// an older nonce must not pull the session back.
		if next != cur.ch.nonce && (sent == nil || sent.Param("nonce") == cur.ch.nonce) {
			ch := *cur.ch
			ch.nonce, ch.stale = next, false
			s.adoptIf(cur, &ch)
		}
	}
	return nil
}

// adoptIf adopts ch unless the state changed since cur was read.
func (s *digestSession) adoptIf(cur *digestState, ch *digestChallenge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.Load() == cur {
		s.adoptLocked(ch)
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

// verify checks info's rspauth against the answer sent. It returns nil
// when it matches, a *mismatchError when it does not, and another error
// wrapping ErrMutualAuth when it cannot be checked (which matters only
// with RequireMutualAuth).
func (s *digestSession) verify(info, sent *anyauth.Challenge, infoName string) error {
	if info == nil {
		return fmt.Errorf("%w: the response carries no %s (%s)", ErrMutualAuth, infoName, s.space)
	}
	rspauth, ok := info.Lookup("rspauth")
	if !ok {
		return fmt.Errorf("%w: %s carries no rspauth (%s)", ErrMutualAuth, infoName, s.space)
	}
	if sent == nil {
		return fmt.Errorf("%w: the request's Digest answer is not available to check rspauth against (%s)", ErrMutualAuth, s.space)
	}
	alg, ok := lookupAlgorithm(sent.Param("algorithm"))
	if !ok {
		return fmt.Errorf("%w: the request's answer names an unknown algorithm (%s)", ErrMutualAuth, s.space)
	}
	in := digestInput{
		h:      alg.hash,
		sess:   alg.sess,
		nonce:  sent.Param("nonce"),
		uri:    sent.Param("uri"),
		qop:    sent.Param("qop"),
		nc:     sent.Param("nc"),
		cnonce: sent.Param("cnonce"),
	}
	switch strings.ToLower(in.qop) {
	case "", "auth":
	case "auth-int":
		// For auth-int, rspauth covers the hash of the response body
		// (A2 = ":" uri ":" H(entity-body)). Complete must not read the
		// body, and hashing it as the caller reads it would report a
		// mismatch only after the caller consumed a forged body; so
		// rspauth is not verified for auth-int.
		return fmt.Errorf("%w: rspauth of a qop=auth-int answer covers the response body and is not checked (%s)", ErrMutualAuth, s.space)
	default:
		return fmt.Errorf("%w: the request's answer has an unknown qop (%s)", ErrMutualAuth, s.space)
	}
	// The server echoes the answer's qop, cnonce and nc (RFC 7616 §3.5);
	// an echo that differs is a response to another answer.
	for _, name := range [...]string{"qop", "cnonce", "nc"} {
		if v, ok := info.Lookup(name); ok && v != sent.Param(name) {
			return &mismatchError{fmt.Sprintf("%s echoes another %s than the request sent (%s)", infoName, name, s.space)}
		}
	}
	st := s.state.Load()
	ha1 := st.ha1
	if alg.hash != st.ch.alg.hash || sent.Realm() != st.ch.realm {
		ha1 = s.computeHA1(alg.hash, sent.Realm())
	}
	in.ha1 = ha1
	var buf [2 * 64]byte
	want := appendResponse(buf[:0], &in, false)
	if subtle.ConstantTimeCompare(want, []byte(strings.ToLower(rspauth))) != 1 {
		return &mismatchError{fmt.Sprintf("rspauth does not match (%s)", s.space)}
	}
	return nil
}
