package anyauth

import (
	"crypto/sha256"
	"errors"
	"unsafe"
)

// identity names who a request authenticates as in a space: the user
// name and a SHA-256 digest of the password the credential provider gave
// for the space, or the zero identity when it gave none. The password
// itself is not kept. Identities are comparable with ==.
type identity struct {
	username string
	password [sha256.Size]byte
}

func identityOf(up *UserPassword) identity {
	if up == nil {
		return identity{}
	}
	// Hash the password's bytes in place: Sum256 only reads them.
	pw := unsafe.Slice(unsafe.StringData(up.Password), len(up.Password))
	return identity{up.Username, sha256.Sum256(pw)}
}

// whoFor returns who the request is in space, asking the side's provider
// when it was not asked about space's realm yet on this request. It
// reports false when the provider failed (other than with
// ErrNoCredentials): then the request is nobody known, and the challenge
// that follows asks again and reports the error.
func (x *exchange) whoFor(s *side, space *ProtectionSpace) (identity, bool) {
	if who, ok := s.memo.asked(space); ok {
		return who, true
	}
	g, err := s.memo.ask(x.ctx(), space)
	switch {
	case err == nil:
		return g.who, true
	case errors.Is(err, ErrNoCredentials):
		return identity{}, true
	}
	return identity{}, false
}

// answersFor reports whether the cached entry e may answer the request on
// side s: its identity is the request's, or its scheme holds its own
// credentials (it never asked the provider).
func (x *exchange) answersFor(s *side, e *cacheEntry) bool {
	if !e.asked {
		return true
	}
	who, ok := x.whoFor(s, &e.space)
	return ok && who == e.who
}
