package anyauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrBodyNotReplayable is wrapped by a *BodyNotReplayableError.
var ErrBodyNotReplayable = errors.New("anyauth: request body cannot be replayed")

// ErrNoSchemes is returned by a Transport that has no Schemes: it could
// answer nothing. schemes.NewTransport makes one that answers Basic and
// Digest for one origin.
var ErrNoSchemes = errors.New("anyauth: Transport.Schemes is empty, so no challenge can be answered; set Schemes (schemes.NewTransport answers Basic and Digest for one origin)")

// ErrMutualAuth is wrapped by the errors of schemes whose server failed
// to prove that it knows the secret: a Digest rspauth that does not match,
// a Negotiate AP-REP that does not answer the authenticator sent. The
// schemes make such errors permanent (IsPermanent).
var ErrMutualAuth = errors.New("server failed mutual authentication")

// ErrInvalidCredentials is wrapped by errors about credentials that a
// scheme cannot encode, such as a Basic user-id holding a colon or an
// NTLM user name it cannot parse. Such an error is permanent
// (IsPermanent): the same credentials would fail again. schemes and ntlm
// export it under the same name.
var ErrInvalidCredentials = Permanent(errors.New("invalid credentials"))

// ErrCleartext is wrapped by a *CleartextError.
var ErrCleartext = errors.New("anyauth: refusing to send a reusable secret over cleartext http")

// A BodyNotReplayableError reports that a challenge could be answered but
// some of the request body was already sent and cannot be sent again: it
// had no GetBody, was not seekable, and was larger than
// Transport.MaxBodyBuffer.
type BodyNotReplayableError struct {
	Method string
	URL    string // scheme, host and path only
	Status int    // the challenge's status code, 401 or 407
	Limit  int64  // Transport.MaxBodyBuffer in force
}

// Error says what happened and how to make the body replayable.
func (e *BodyNotReplayableError) Error() string {
	return fmt.Sprintf("anyauth: %s %s was answered %d, but its body (no GetBody, not seekable, over the %d-byte buffer limit) was already sent and cannot be replayed; "+
		"set Request.GetBody (http.NewRequest does so for *bytes.Reader, *bytes.Buffer and *strings.Reader), pass an *os.File, raise Transport.MaxBodyBuffer, or set Transport.ExpectContinue",
		e.Method, e.URL, e.Status, e.Limit)
}

// Unwrap returns ErrBodyNotReplayable.
func (e *BodyNotReplayableError) Unwrap() error { return ErrBodyNotReplayable }

// A CleartextError reports that the only challenges that could be answered
// would send a reusable secret (Basic, Bearer) over plain http to a host
// that is not a loopback address.
type CleartextError struct {
	AuthScheme string
	Host       string
	Proxy      bool
}

// Error names the host and the options that would allow it.
func (e *CleartextError) Error() string {
	what := "host"
	if e.Proxy {
		what = "proxy"
	}
	return fmt.Sprintf("anyauth: refusing to send %s credentials over cleartext http to %s %s; use https, or allow it with Transport.AllowCleartext (all hosts) or Transport.CleartextHosts (%q)",
		e.AuthScheme, what, e.Host, e.Host)
}

// Unwrap returns ErrCleartext.
func (e *CleartextError) Unwrap() error { return ErrCleartext }

// safeURL renders u for errors and logs: scheme, host and path, never the
// user info or the query (which may hold a token).
func safeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// Permanent reports true: the same request would be refused again.
func (e *CleartextError) Permanent() bool { return true }

// An AuthError reports that answering a challenge, or checking the
// server's proof, failed in a protection space. Err is the scheme's error
// (or its credential provider's); errors.Is and errors.As see through to
// it.
type AuthError struct {
	// Space is the protection space being answered.
	Space ProtectionSpace
	// Err is what went wrong.
	Err error
}

// Error names the space, then the scheme's own message.
func (e *AuthError) Error() string {
	// One prefix, once: an error of this package inside (a provider's)
	// does not say "anyauth: " again.
	return "anyauth: " + e.Space.String() + ": " + strings.TrimPrefix(e.Err.Error(), "anyauth: ")
}

// Unwrap returns Err.
func (e *AuthError) Unwrap() error { return e.Err }

// Permanent returns an error that IsPermanent reports as permanent and
// that wraps err, so errors.Is and errors.As still see err. Schemes use it
// for failures that a retry with the same credentials cannot cure: a
// failed mutual authentication, credentials the scheme cannot encode.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

// IsPermanent reports whether err, or an error it wraps, says that sending
// the same request again cannot succeed and must not be tried: a refusal to
// send a secret in the clear, a server that failed mutual authentication,
// a proxy that refused every answer to CONNECT. A retry layer above the
// Transport (see go-retryablehttp's CheckRetry) should stop on such
// errors rather than re-send credentials.
//
// An error is permanent when it, or an error in its chain, has a method
// Permanent() bool that returns true.
func IsPermanent(err error) bool {
	for err != nil {
		if p, ok := err.(interface{ Permanent() bool }); ok && p.Permanent() {
			return true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if IsPermanent(e) {
					return true
				}
			}
			return false
		default:
			return false
		}
	}
	return false
}

// A ProxyConnectError reports that a proxy did not open a tunnel: its
// answer to CONNECT was not 2xx. A 407 means that no challenge of it could
// be answered, or that every answer was refused (Reason says which); then
// (and for a 403) the error is permanent for IsPermanent.
type ProxyConnectError struct {
	// Proxy is the proxy's URL, without user info.
	Proxy string
	// Target is the host:port the tunnel was for.
	Target string
	// StatusCode and Status are the proxy's last answer.
	StatusCode int
	Status     string
	// Header holds the header fields of that answer.
	Header http.Header
	// Challenges are its Proxy-Authenticate challenges, parsed.
	Challenges []Challenge
	// Reason says why a 407 was not answered; "" for another status.
	Reason ProxyConnectReason
	// OriginCredentialsOnly is true when the Transport had no proxy
	// credentials but had Credentials, which answer origins only.
	OriginCredentialsOnly bool
}

// A ProxyConnectReason says why a proxy's 407 to CONNECT was not
// answered.
type ProxyConnectReason string

// Why a CONNECT's 407 went unanswered.
const (
	// ProxyNoCredentials: a configured scheme understood the challenge,
	// but there were no proxy credentials for it.
	ProxyNoCredentials ProxyConnectReason = "no proxy credentials"
	// ProxyRefused: the proxy refused the answer sent, and no challenge
	// at least as strong was left to answer.
	ProxyRefused ProxyConnectReason = "the proxy refused the credentials"
	// ProxyNoScheme: no configured scheme can answer the proxy's
	// challenges.
	ProxyNoScheme ProxyConnectReason = "no configured scheme answers the proxy's challenges"
	// ProxyBudgetSpent: Transport.MaxAnswers answers were sent and the
	// proxy still asked for more.
	ProxyBudgetSpent ProxyConnectReason = "the answer budget (Transport.MaxAnswers) is spent"
)

// Error names the proxy, the target, the status and, for a 407, why it
// was not answered and what to do.
func (e *ProxyConnectError) Error() string {
	msg := fmt.Sprintf("anyauth: proxy %s refused CONNECT %s: %s", e.Proxy, e.Target, e.Status)
	switch e.Reason {
	case "":
		return msg
	case ProxyNoCredentials:
		msg += ": " + string(e.Reason) + "; set Transport.ProxyCredentials, or user info in the proxy URL"
		if e.OriginCredentialsOnly {
			msg += " (Transport.Credentials answer origins only, never a proxy)"
		}
		return msg
	case ProxyRefused:
		return msg + ": " + string(e.Reason) + "; check the proxy user name and password"
	case ProxyNoScheme:
		var names []string
		for i := range e.Challenges {
			names = append(names, e.Challenges[i].Scheme)
		}
		return msg + ": " + string(e.Reason) + " (" + strings.Join(names, ", ") + "); add a scheme for one of them to Transport.Schemes"
	default:
		return msg + ": " + string(e.Reason)
	}
}

// Permanent reports whether the same CONNECT would be refused again: a
// 407 that could not be answered, or a 403.
func (e *ProxyConnectError) Permanent() bool {
	return e.StatusCode == http.StatusProxyAuthRequired || e.StatusCode == http.StatusForbidden
}
