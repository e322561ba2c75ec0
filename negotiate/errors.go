package negotiate

import (
	"errors"
	"fmt"
	"strings"

	"github.com/anyauth/anyauth"
)

// Errors of the Kerberos scheme. Each error it returns wraps one of them
// (and, when the scheme steps aside, anyauth.ErrNoCredentials too), so
// that errors.Is tells the cases apart; the message says in one line what
// is missing and where it looked. No error holds a password, a key or a
// ticket.
var (
	// ErrNoTicket means no credential cache with a ticket-granting ticket
	// was found (and no keytab or password was configured): run kinit.
	// It comes wrapped with anyauth.ErrNoCredentials, so the Transport
	// answers another challenge instead.
	ErrNoTicket = errors.New("negotiate: no Kerberos ticket")

	// ErrTicketExpired means the ticket-granting ticket in the credential
	// cache has expired and cannot be renewed: run kinit again. It comes
	// wrapped with anyauth.ErrNoCredentials.
	ErrTicketExpired = errors.New("negotiate: Kerberos ticket expired")

	// ErrNoConfig means no usable krb5.conf was found (Kerberos.Config,
	// KRB5_CONFIG, /etc/krb5.conf). Unless a keytab or a password was
	// configured, it comes wrapped with anyauth.ErrNoCredentials.
	ErrNoConfig = errors.New("negotiate: no Kerberos configuration")

	// ErrKDCUnreachable means no KDC of the realm answered. It comes
	// wrapped with anyauth.ErrNoCredentials, as ErrLogin and
	// ErrServiceTicket do: the Transport answers another challenge, or
	// returns the server's 401 untouched, and anyauth.Diagnosis holds
	// the error.
	ErrKDCUnreachable = errors.New("negotiate: KDC unreachable")

	// ErrLogin means the KDC refused to issue a ticket-granting ticket:
	// a wrong password or keytab, an unknown or locked principal. It
	// comes wrapped with anyauth.ErrNoCredentials.
	ErrLogin = errors.New("negotiate: Kerberos login refused")

	// ErrServiceTicket means the KDC refused a service ticket, most often
	// because the service principal (HTTP/host) is unknown to it. It
	// comes wrapped with anyauth.ErrNoCredentials, so NTLM inside
	// Negotiate, Digest or Basic may answer instead.
	ErrServiceTicket = errors.New("negotiate: no service ticket")

	// ErrMutualAuth means the server's final Negotiate token did not
	// prove that it holds the service key: it was missing (in
	// MutualRequired mode), malformed, or its AP-REP did not match the
	// authenticator that was sent. Such an error is permanent
	// (anyauth.IsPermanent).
	// It wraps anyauth.ErrMutualAuth.
	ErrMutualAuth = anyauth.Permanent(fmt.Errorf("negotiate: %w", anyauth.ErrMutualAuth))

	// ErrToken means a Negotiate token from the server could not be
	// parsed.
	ErrToken = errors.New("negotiate: malformed Negotiate token")
)

// kdcErrorName returns the name of the Kerberos error code in a gokrb5
// error text (such as "KDC_ERR_PREAUTH_FAILED"), or "".
func kdcErrorName(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	for _, name := range []string{
		"KDC_ERR_PREAUTH_FAILED", "KDC_ERR_C_PRINCIPAL_UNKNOWN", "KDC_ERR_S_PRINCIPAL_UNKNOWN",
		"KDC_ERR_CLIENT_REVOKED", "KDC_ERR_KEY_EXPIRED", "KDC_ERR_ETYPE_NOSUPP", "KRB_AP_ERR_SKEW",
		"KDC_ERR_TGT_REVOKED", "KRB_AP_ERR_TKT_EXPIRED", "KDC_ERR_BADOPTION", "KDC_ERR_POLICY",
		"KRB_AP_ERR_BAD_INTEGRITY", "KDC_ERR_WRONG_REALM",
	} {
		if strings.Contains(s, name) {
			return name
		}
	}
	return ""
}

// isNetworkError reports whether a gokrb5 error says that no KDC could be
// reached.
func isNetworkError(err error) bool {
	if err == nil {
		return false
	}
	s := err.Error()
	return strings.Contains(s, "Networking_Error") || strings.Contains(s, "error sending to a KDC") ||
		strings.Contains(s, "communication error with KDC") || strings.Contains(s, "failed to communicate with KDC") ||
		strings.Contains(s, "no KDCs defined")
}

// stepAside returns err, with its message unchanged, wrapping
// anyauth.ErrNoCredentials too: the Transport then answers another
// challenge.
func stepAside(err error) error { return noCredentials{err} }

type noCredentials struct{ err error }

func (e noCredentials) Error() string   { return e.err.Error() }
func (e noCredentials) Unwrap() []error { return []error{e.err, anyauth.ErrNoCredentials} }
