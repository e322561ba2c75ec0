// Package negotiate will answer Negotiate challenges (RFC 4559,
// SPNEGO/Kerberos) with github.com/jcmturner/gokrb5/v8, as an
// anyauth.Scheme of its own, so that only the programs that use it compile
// gokrb5. It holds no code yet: Negotiate is planned work, and a Transport
// today ignores Negotiate challenges (they are parsed and ranked, but no
// configured scheme understands them).
package negotiate
