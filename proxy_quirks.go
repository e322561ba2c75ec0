package anyauth

import (
	"net/http"
	"strings"
)

// This file names the workarounds for particular proxies and servers:
// each behind a predicate that says who needs it, so that the exchange
// reads as the protocol and the quirks stay findable.

// largeProxyBody is the body size from which a request through a proxy
// is replayed after a 407 on a new connection.
const largeProxyBody = 64 << 10

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
// of largeProxyBody bytes or more is replayed on the connection of its
// 407 (a new connection, or Expect: 100-continue, works).
func (x *exchange) squidStallsOnLargeReplay() bool { return x.mayCarryLargeBody() }

// mayCarryLargeBody reports whether the request has a body that is, or may
// be, largeProxyBody bytes or more.
func (x *exchange) mayCarryLargeBody() bool {
	if x.req.Body == nil || x.req.Body == http.NoBody {
		return false
	}
	return x.req.ContentLength <= 0 || x.req.ContentLength >= largeProxyBody
}
