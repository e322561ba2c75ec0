// Package ntlm answers NTLM challenges (MS-NLMP, NTLMv2) for an
// anyauth.Transport, on github.com/Azure/go-ntlmssp. It lives in a package
// of its own so that only the programs that use it compile go-ntlmssp.
//
// NTLM authenticates a connection, not a request: its three messages
// (negotiate, challenge, authenticate) must ride one keep-alive
// connection, and the server then lets that connection in without another
// header. The schemes here are therefore connection-bound
// (anyauth.Traits.ConnectionBound): the Transport runs each handshake on
// an HTTP/1.1 connection it owns and keeps the authenticated connection
// for later requests of the same protection space and credentials only.
// This needs Transport.Base to be an *http.Transport (the default is).
//
// Servers offer NTLM as "WWW-Authenticate: NTLM", and inside
// "WWW-Authenticate: Negotiate" when Kerberos is not available (IIS,
// Apache mod_auth_gssapi with gss-ntlmssp). New answers the first,
// NewNegotiate the second; Schemes returns both. Both rank below Kerberos
// Negotiate and Bearer and above Digest (anyauth.StrengthNTLM), as .NET
// and curl rank them.
//
// Credentials come from the Transport's providers as "DOMAIN\user",
// "user@domain" or a bare user name (then Options.Domain, if set). Proxies
// are answered the same way: a 407 for a plain-http request over an owned
// connection to the proxy, and a 407 to a CONNECT on the tunnel's own
// connection.
package ntlm
