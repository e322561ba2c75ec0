// Package anyauth makes any http.Client answer HTTP authentication
// challenges by itself.
//
// A Transport wraps an http.RoundTripper. When a response is 401
// (WWW-Authenticate) or 407 (Proxy-Authenticate) it parses every challenge
// of every header line (RFC 9110 §11), ranks the ones a configured Scheme
// understands and has credentials for, strongest first, lets the winning
// Scheme build the Authorization or Proxy-Authorization header, and replays
// the request with its body rewound. Once a protection space is known, later
// requests in it carry credentials preemptively, so N requests cost N+1
// round trips.
//
// The root package holds the Transport, the challenge grammar, the Selector,
// the credential providers and the Scheme contract (Scheme, Session, Leg).
// The schemes themselves live in their own packages, so that the root
// imports none of them and a program compiles only the ones it uses:
// schemes (Basic, Digest, Bearer), negotiate (Kerberos on gokrb5) and ntlm
// (NTLM on go-ntlmssp). NTLM authenticates connections rather than
// requests (Traits.ConnectionBound): the Transport runs its handshakes on
// HTTP/1.1 connections it owns and keeps them apart per protection space
// and identity.
//
// # Errors
//
// Errors of this package start with "anyauth: ", once. The sentinels that
// schemes wrap (ErrMutualAuth, ErrInvalidCredentials) carry no prefix, so
// that the wrapping error reads "digest: server failed mutual
// authentication (rspauth)". A scheme's own errors
// start with its name ("digest: "), and the Transport returns them inside
// an *AuthError that names the protection space, so one message reads
// "anyauth: origin http://host:80/ Digest realm="r": digest: …". Errors
// after which the same request must not be sent again (a cleartext
// refusal, a failed mutual authentication) are reported by IsPermanent.
package anyauth
