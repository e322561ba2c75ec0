package schemes

import (
	"strings"
	"unsafe"

	"github.com/anyauth/anyauth"
)

// This file formats the Authorization header of a Digest answer.
//
// Parameters come in curl's order, which servers in the wild accept:
//
//	username, realm, nonce, uri, cnonce, nc, qop, response, opaque, algorithm, userhash
//
// and without qop (RFC 2069): username, realm, nonce, uri, response,
// opaque, algorithm. Quoted-strings escape '"' and '\'; algorithm, qop, nc
// and userhash are tokens and go unquoted; the algorithm is echoed as the
// server spelled it.

// digestHeader holds the parts of the header that do not change from one
// request to the next under one nonce.
type digestHeader struct {
	// prefix is `Digest username="…", realm="…", nonce="…", uri=`.
	prefix string
	// suffix is `, opaque="…", algorithm=…, userhash=…`, each part only
	// when it applies.
	suffix string
}

// newDigestHeader builds the fixed parts of the header for a challenge.
// usernameField is the username or username* parameter with its value.
func newDigestHeader(ch *digestChallenge, usernameField string, hashed bool) digestHeader {
	b := make([]byte, 0, len("Digest , realm=\"\", nonce=\"\", uri=")+len(usernameField)+len(ch.realm)+len(ch.nonce)+8)
	b = append(b, "Digest "...)
	b = append(b, usernameField...)
	b = append(b, ", realm="...)
	b = anyauth.AppendQuoted(b, ch.realm)
	b = append(b, ", nonce="...)
	b = anyauth.AppendQuoted(b, ch.nonce)
	b = append(b, ", uri="...)
	prefix := string(b)

	var s []byte
	if ch.hasOpaque {
		s = append(s, ", opaque="...)
		s = anyauth.AppendQuoted(s, ch.opaque)
	}
	if ch.algName != "" {
		s = append(s, ", algorithm="...)
		s = append(s, ch.algName...)
	}
	switch {
	case hashed:
		s = append(s, ", userhash=true"...)
	case ch.userhash:
		// The server offered userhash and the name travels unhashed:
		// say so, as RFC 7616 §3.9.2 does.
		s = append(s, ", userhash=false"...)
	}
	return digestHeader{prefix: prefix, suffix: string(s)}
}

// format returns the header value for one request. nc and cnonce are
// ignored when qop is "".
func (h *digestHeader) format(uri, cnonce, nc, qop string, response []byte) string {
	b := make([]byte, 0, len(h.prefix)+len(uri)+len(cnonce)+len(response)+len(h.suffix)+64)
	b = append(b, h.prefix...)
	b = anyauth.AppendQuoted(b, uri)
	if qop != "" {
		b = append(b, ", cnonce="...)
		b = anyauth.AppendQuoted(b, cnonce)
		b = append(b, ", nc="...)
		b = append(b, nc...)
		b = append(b, ", qop="...)
		b = append(b, qop...)
	}
	b = append(b, `, response="`...)
	b = append(b, response...) // hex: nothing to escape
	b = append(b, '"')
	b = append(b, h.suffix...)
	// b is never written again: share its bytes, as strings.Builder does.
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// usernameField returns the username parameter for user: its hash
// H(user ":" realm) when hashed (RFC 7616 §3.4.4), otherwise the name as
// a quoted-string, or as an RFC 8187 username* ext-value when the name
// holds bytes a quoted-string should not carry (non-ASCII or control
// characters).
func usernameField(user, realm string, h hashFunc, hashed bool) string {
	var b strings.Builder
	switch {
	case hashed:
		var scratch [256]byte
		var out [2 * 64]byte
		b.WriteString(`username="`)
		b.Write(h.appendJoined(out[:0], scratch[:0], user, realm))
		b.WriteByte('"')
	case needsExtValue(user):
		b.WriteString("username*=UTF-8''")
		appendExtValue(&b, user)
	default:
		b.WriteString("username=")
		var scratch [128]byte
		b.Write(anyauth.AppendQuoted(scratch[:0], user))
	}
	return b.String()
}

// needsExtValue reports whether s holds a byte that a quoted-string
// cannot carry as it is: a control character (HTAB included: servers
// differ on it) or a non-ASCII byte (obs-text, which RFC 9110 deprecates
// and which has no agreed charset).
func needsExtValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return true
		}
	}
	return false
}

// appendExtValue writes s percent-encoded as the value-chars of an
// RFC 8187 ext-value: attr-chars as they are, every other byte as %XX.
func appendExtValue(b *strings.Builder, s string) {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAttrChar(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xf])
	}
}

// isAttrChar: ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." /
// "^" / "_" / "`" / "|" / "~" (RFC 8187 §3.2.1).
func isAttrChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$&+-.^_`|~", c) >= 0
}
