// Package schemes holds the standard HTTP authentication schemes that
// plug into an anyauth.Transport: Basic (RFC 7617), Digest (RFC 7616),
// Bearer (RFC 6750, tokens from golang.org/x/oauth2) and OAuth 1.0
// signatures (RFC 5849, OAuth1).
//
// Each scheme implements anyauth.Scheme. The Transport asks it how strong
// an answer to a challenge would be, lets it begin an anyauth.Session for
// a protection space, keeps that Session to answer later requests in the
// space without another 401, and starts one anyauth.Leg of it per
// request. What a scheme learns from a server (a Digest nonce and its
// nonce count, say) lives in the Session; what one request sent lives in
// its Leg. Basic and Digest values are plain configuration and can serve
// any number of spaces and goroutines; a Bearer holds its current token
// and is used by pointer:
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
