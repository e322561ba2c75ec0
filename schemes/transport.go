package schemes

import "github.com/anyauth/anyauth"

// NewTransport returns a Transport that answers the Digest and Basic
// challenges of one origin with username and password, and nobody
// else's: the common case in one statement.
//
//	client := &http.Client{Transport: schemes.NewTransport("https://api.example.com", "alice", "s3cret")}
//
// origin is "https://host[:port]", or curl's "host:port" (see
// anyauth.ForOrigin). The Transport sends through http.DefaultTransport,
// with its proxy settings; set its Base to send through another
// RoundTripper, and its other fields for more (Logger, a Selector floor).
// Digest is preferred when the server offers both; Basic goes over
// plain http only to loopback hosts (see anyauth.Transport).
//
// It lives here rather than in package anyauth, which imports no scheme.
// Package all assembles every scheme the library has (Negotiate, NTLM,
// Bearer too) for a program that wants them and their dependencies.
func NewTransport(origin, username, password string) *anyauth.Transport {
	return &anyauth.Transport{
		Schemes:     []anyauth.Scheme{Digest{}, Basic{}},
		Credentials: anyauth.ForOrigin(origin, username, password),
	}
}
