package anyauth

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
)

// This file names the workarounds for particular proxies and servers:
// each behind a predicate that says who needs it, so that the exchange
// reads as the protocol and the quirks stay findable.

// squidNegotiatePlaceholder rewrites the challenge "Negotiate =" to a bare
// "Negotiate". Squid's negotiate_wrapper_auth writes "=" as the token
// placeholder of a handshake it ended, and Squid sends it back as the next
// challenge on that connection: not a token68 (RFC 9110 needs a character
// before the "="), but a request to start again, which a fresh NTLM or
// Kerberos leg answers.
func squidNegotiatePlaceholder(values []string) []string {
	for i, v := range values {
		if strings.EqualFold(strings.TrimSpace(v), "Negotiate =") {
			values = append([]string(nil), values...)
			values[i] = "Negotiate"
		}
	}
	return values
}

// squidStallsOnLargeReplay reports whether the request's replay after a
// 407 must go on a new connection: Squid 5.7 stops answering when a body
// is replayed on the connection of its 407: always from 64 KiB, and, on a
// loaded machine, from 16 KiB too (a new connection, or Expect:
// 100-continue, works). Every request with a body is replayed on a new
// connection: one more connection to the proxy per challenged request is
// cheap beside a stall.
func (x *exchange) squidStallsOnLargeReplay() bool {
	return x.req.Body != nil && x.req.Body != http.NoBody
}

// resetWhileWritingBody reports whether a round trip through Base failed
// because the server reset the connection while the request's body was
// being written, and the request may go once more with "Expect:
// 100-continue". Squid answers 407 to a large body before reading it and
// closes; the unread body makes the kernel reset the connection, and the
// reset can discard the 407 before net/http reads it, so that RoundTrip
// reports "connection reset by peer" or "broken pipe" instead. With Expect
// the server's challenge comes before the body (Base must wait for it: an
// *http.Transport with a non-zero ExpectContinueTimeout, as
// http.DefaultTransport). The body was not all written, so the server did
// not take the request: sending it again is safe for any method.
func (x *exchange) resetWhileWritingBody(err error) bool {
	if x.expectContinue || x.tunnel || x.conn != nil || x.probing() ||
		x.req.Body == nil || x.req.Body == http.NoBody || x.req.Header.Get("Expect") != "" {
		return false
	}
	var op *net.OpError
	if !errors.As(err, &op) || (op.Op != "write" && op.Op != "readfrom") {
		return false
	}
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
