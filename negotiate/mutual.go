package negotiate

import (
	"fmt"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
)

// MutualMode says whether the server must prove that it holds the
// service key, with the AP-REP of its final "WWW-Authenticate: Negotiate
// <token>" (RFC 4559 §5). gokrb5 has no client-side check of an AP-REP:
// this package decrypts it with the service ticket's session key (key
// usage 12) and compares its ctime and cusec with the authenticator the
// request sent (RFC 4120 §3.2.5).
type MutualMode int

const (
	// MutualIfPresent (the default) asks for mutual authentication and
	// checks the server's token when the accepted response carries one;
	// a response without one is accepted. A token that does not match
	// fails the request with ErrMutualAuth.
	MutualIfPresent MutualMode = iota
	// MutualRequired asks for mutual authentication and fails the request
	// with ErrMutualAuth unless the accepted response carries a valid
	// token.
	MutualRequired
	// MutualOff does not ask for mutual authentication and ignores the
	// server's token.
	MutualOff
)

// String names the mode.
func (m MutualMode) String() string {
	switch m {
	case MutualIfPresent:
		return "if-present"
	case MutualRequired:
		return "required"
	case MutualOff:
		return "off"
	}
	return fmt.Sprintf("MutualMode(%d)", int(m))
}

// verifyAPRep checks that rep answers the AP-REQ described by s: its
// encrypted part decrypts with the session key, and holds the
// authenticator's ctime and cusec.
func verifyAPRep(rep *messages.APRep, s sent) error {
	plain, err := crypto.DecryptEncPart(rep.EncPart, s.key, keyusage.AP_REP_ENCPART)
	if err != nil {
		return fmt.Errorf("%w: the AP-REP does not decrypt with the session key", ErrMutualAuth)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		return fmt.Errorf("%w: the AP-REP's encrypted part is malformed", ErrMutualAuth)
	}
	if part.CTime.Unix() != s.ctime.Unix() || part.Cusec != s.cusec {
		return fmt.Errorf("%w: the AP-REP answers another authenticator (ctime/cusec differ)", ErrMutualAuth)
	}
	return nil
}
