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
// the credential providers and the Scheme contract. The schemes themselves
// live in package schemes (Basic, Digest) and package negotiate, so that a
// program compiles only the schemes it uses.
package anyauth
