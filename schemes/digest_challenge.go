package schemes

import (
	"fmt"
	"strings"

	"github.com/anyauth/anyauth"
)

// digestChallenge is what a Digest challenge asks for, validated.
type digestChallenge struct {
	realm string
	nonce string
	// opaque is echoed when hasOpaque, even when empty.
	opaque    string
	hasOpaque bool
	// algName is the algorithm as the server spelled it, "" when absent
	// (then the answer carries no algorithm either, as in RFC 2617).
	algName string
	alg     digestAlgorithm
	// qopAuth and qopAuthInt are the qop values offered; neither means a
	// challenge without qop (RFC 2069).
	qopAuth, qopAuthInt bool
	userhash            bool // userhash=true
	stale               bool // stale=true
}

// hasQop reports whether the challenge offered a qop the answer must use.
func (c *digestChallenge) hasQop() bool { return c.qopAuth || c.qopAuthInt }

// maxDigestValue bounds the realm, nonce and opaque of a challenge that
// Digest answers. Real servers send a few dozen bytes; a session keeps
// these values for as long as its space is cached, so a server must not
// be able to make it keep megabytes.
const maxDigestValue = 2048

// detached returns a copy of c whose strings no longer point into the
// header line they were parsed from, so that keeping the challenge does
// not keep the whole line (which may be large) alive.
func (c *digestChallenge) detached() *digestChallenge {
	d := *c
	d.realm = strings.Clone(c.realm)
	d.nonce = strings.Clone(c.nonce)
	d.opaque = strings.Clone(c.opaque)
	d.algName = strings.Clone(c.algName)
	return &d
}

// parseDigestChallenge validates c as a Digest challenge Digest can
// answer.
func parseDigestChallenge(c *anyauth.Challenge) (*digestChallenge, error) {
	if c == nil || !c.Is("Digest") || c.Token68 != "" {
		return nil, fmt.Errorf("%w: not a Digest challenge with parameters", ErrBadChallenge)
	}
	ch := &digestChallenge{realm: c.Realm()}
	var ok bool
	if ch.nonce, ok = c.Lookup("nonce"); !ok || ch.nonce == "" {
		return nil, fmt.Errorf("%w: no nonce", ErrBadChallenge)
	}
	ch.opaque, ch.hasOpaque = c.Lookup("opaque")
	if len(ch.realm) > maxDigestValue || len(ch.nonce) > maxDigestValue || len(ch.opaque) > maxDigestValue {
		return nil, fmt.Errorf("%w: realm, nonce or opaque longer than %d bytes", ErrBadChallenge, maxDigestValue)
	}
	ch.algName = c.Param("algorithm")
	if ch.alg, ok = lookupAlgorithm(ch.algName); !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedAlgorithm, truncateForError(ch.algName))
	}
	if qop, ok := c.Lookup("qop"); ok && strings.TrimSpace(qop) != "" {
		for _, q := range strings.Split(qop, ",") {
			switch strings.ToLower(strings.TrimSpace(q)) {
			case "auth":
				ch.qopAuth = true
			case "auth-int":
				ch.qopAuthInt = true
			}
		}
		if !ch.hasQop() {
			return nil, fmt.Errorf("%w: %q offers neither auth nor auth-int", ErrUnsupportedQop, truncateForError(qop))
		}
	}
	if ch.alg.sess && !ch.hasQop() {
		// A1 of "-sess" covers the cnonce, which an answer without qop
		// does not carry (RFC 2617 §3.2.2).
		return nil, fmt.Errorf("%w: %s without qop", ErrBadChallenge, ch.algName)
	}
	ch.userhash = strings.EqualFold(c.Param("userhash"), "true")
	ch.stale = strings.EqualFold(c.Param("stale"), "true")
	return ch, nil
}

// truncateForError keeps a server-chosen value short in an error message.
func truncateForError(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
