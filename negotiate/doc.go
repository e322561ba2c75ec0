// Package negotiate answers Negotiate challenges (RFC 4559: SPNEGO with
// Kerberos 5) for an anyauth.Transport, with
// github.com/jcmturner/gokrb5/v8. It is a package of its own so that
// only the programs that use it compile gokrb5.
//
// A Kerberos value is the anyauth.Scheme:
//
//	tr := &anyauth.Transport{
//		Schemes:     []anyauth.Scheme{&negotiate.Kerberos{}, schemes.Digest{}, schemes.Basic{}},
//		Credentials: anyauth.ForOrigin("https://intranet.example.com", "alice", "secret"),
//	}
//
// With the zero Kerberos, a request challenged with Negotiate is answered
// with the ticket kinit left in the credential cache, or with the
// password the Transport has for the origin; with neither, the scheme
// steps aside and Digest or Basic answers. Tickets are cached and
// renewed; every answer carries a fresh authenticator; the server's
// mutual-authentication token (the AP-REP of the final "WWW-Authenticate:
// Negotiate <token>") is checked, which gokrb5 does not do. Proxies that
// ask for Negotiate (407, also for CONNECT) are answered the same way,
// with the service principal of the proxy's host.
package negotiate
