package anyauth

import (
	"crypto/sha256"
	"errors"
	"sync/atomic"
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
	return identity{up.Username, passwordDigest(up.Password)}
}

func passwordDigest(pw string) [sha256.Size]byte {
	// Hash the password's bytes in place: Sum256 only reads them.
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(pw), len(pw)))
}

// passwordDigests remembers the digests of the last passwords a
// Transport's providers gave, by the address of their bytes, so that a
// provider handing out the same string on every request (ForOrigin, a
// CredentialTable) costs no hash per request. Go strings are immutable,
// and a slot keeps its string alive, so the same address and length mean
// the same password. Forget empties it.
type passwordDigests struct {
	slots [8]atomic.Pointer[knownDigest]
}

type knownDigest struct {
	password string
	sum      [sha256.Size]byte
}

// identityOf is identityOf, remembering the password's digest.
func (d *passwordDigests) identityOf(up *UserPassword) identity {
	if d == nil || up == nil {
		return identityOf(up)
	}
	data := unsafe.StringData(up.Password)
	slot := &d.slots[(uintptr(unsafe.Pointer(data))>>4)%uintptr(len(d.slots))]
	if k := slot.Load(); k != nil && unsafe.StringData(k.password) == data && len(k.password) == len(up.Password) {
		return identity{up.Username, k.sum}
	}
	k := &knownDigest{up.Password, passwordDigest(up.Password)}
	slot.Store(k)
	return identity{up.Username, k.sum}
}

// reset forgets every remembered password.
func (d *passwordDigests) reset() {
	for i := range d.slots {
		d.slots[i].Store(nil)
	}
}

// firstAnswer is what the provider answered for the first space asked
// about on a request, before the request's memo exists.
type firstAnswer struct {
	space *ProtectionSpace // nil until asked
	up    *UserPassword    // the provider's, read only; nil for none
}

// credentials returns the side's record of the provider's answers for the
// rest of the request, making it (with the first answer in it) when
// needed.
func (x *exchange) credentials(s *side) *requestCredentials {
	if s.memo == nil {
		s.memo = &requestCredentials{provider: s.provider, digests: &x.t.digests}
		if s.first.space != nil {
			s.memo.record(s.first.space, s.first.up, s.first.up == nil)
		}
	}
	return s.memo
}

// whoFor returns who the request is in space, asking the side's provider
// when it was not asked about space's realm yet on this request. It
// reports false when the provider failed (other than with
// ErrNoCredentials): then the request is nobody known, and the challenge
// that follows asks again and reports the error.
func (x *exchange) whoFor(s *side, space *ProtectionSpace) (identity, bool) {
	if s.memo == nil && (s.first.space == nil || sameRealm(s.first.space, space)) {
		if s.first.space == nil {
			if s.provider == nil {
				s.first.space = space
				return identity{}, true
			}
			up, err := s.provider.Credentials(x.ctx(), space)
			switch {
			case err == nil && up != nil:
				s.first = firstAnswer{space: space, up: up}
			case err == nil || errors.Is(err, ErrNoCredentials):
				s.first = firstAnswer{space: space}
			default:
				return identity{}, false
			}
		}
		if s.first.up == nil {
			return identity{}, true
		}
		return x.t.digests.identityOf(s.first.up), true
	}
	m := x.credentials(s)
	if who, ok := m.asked(space); ok {
		return who, true
	}
	g, err := m.ask(x.ctx(), space)
	switch {
	case err == nil:
		return m.identity(g), true
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
