package anyauth

import (
	"errors"
	"fmt"
	"net/url"
)

// ErrBodyNotReplayable is wrapped by a *BodyNotReplayableError.
var ErrBodyNotReplayable = errors.New("anyauth: request body cannot be replayed")

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
