// Package schemes holds the standard HTTP authentication schemes that
// plug into an anyauth.Transport: Basic (RFC 7617) and Digest (RFC 7616).
//
// Each scheme is a small configuration value that implements
// anyauth.Scheme. The Transport asks it how strong an answer to a
// challenge would be, lets it begin an anyauth.Session for a protection
// space, and keeps that Session to answer later requests in the space
// without another 401. All state a scheme learns from a server (a Digest
// nonce and its nonce count, say) lives in the Session, never in the
// scheme value, so one value can serve any number of spaces and
// goroutines:
//
//	t := &anyauth.Transport{
//		Schemes:     []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
//		Credentials: anyauth.ForOrigin("https://api.example.com", "user", "secret"),
//	}
//	client := &http.Client{Transport: t}
//
// Nothing secret (a password, a Digest HA1 or response) appears in an
// error, a log line, or the printed form of a value of this package.
package schemes
