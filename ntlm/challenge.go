package ntlm

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Layout of the challenge message (MS-NLMP 2.2.1.2).
const (
	challengeHeaderLen = 48 // up to and including TargetInfoFields
	minChallengeLen    = 32 // up to and including ServerChallenge
	targetNameFields   = 12
	flagsOffset        = 20
	targetInfoFields   = 40

	flagLMKey       = 0x00000080 // NTLMSSP_NEGOTIATE_LM_KEY
	flagKeyExchange = 0x40000000 // NTLMSSP_NEGOTIATE_KEY_EXCH
)

var signature = []byte("NTLMSSP\x00")

// sanitizeChallenge checks a server's challenge message and returns a
// copy that go-ntlmssp accepts, forgiving what curl forgives:
//
//   - a TargetName field pointing outside the message (Squid's
//     ntlm_fake_auth sends offset 0xAAAAAAAE) is dropped: NTLMv2 does not
//     use it;
//   - a message that ends after ServerChallenge or Reserved (the short
//     form of old servers) gets empty Reserved and TargetInfo fields, and
//     so does a TargetInfo field pointing outside the message;
//   - the LM_KEY and KEY_EXCH flags, which go-ntlmssp refuses, are
//     cleared: HTTP authentication uses neither the LM session key nor
//     session security.
func sanitizeChallenge(raw []byte) ([]byte, error) {
	if len(raw) < minChallengeLen || !bytes.Equal(raw[:8], signature) {
		return nil, fmt.Errorf("%w: not an NTLMSSP message", ErrMalformedChallenge)
	}
	if t := binary.LittleEndian.Uint32(raw[8:]); t != 2 {
		return nil, fmt.Errorf("%w: message type %d, want 2", ErrMalformedChallenge, t)
	}
	msg := make([]byte, max(len(raw), challengeHeaderLen))
	copy(msg, raw)
	if !fieldInside(msg, targetNameFields, len(raw)) {
		clear(msg[targetNameFields : targetNameFields+8])
	}
	if !fieldInside(msg, targetInfoFields, len(raw)) {
		// The short form ends after Reserved and puts TargetName
		// there (Squid's ntlm_fake_auth does, flags notwithstanding):
		// what would be TargetInfo is the name's text. A server that
		// really sent a broken TargetInfo refuses the answer anyway,
		// since NTLMv2 signs it.
		clear(msg[targetInfoFields : targetInfoFields+8])
	}
	flags := binary.LittleEndian.Uint32(msg[flagsOffset:])
	binary.LittleEndian.PutUint32(msg[flagsOffset:], flags&^(flagLMKey|flagKeyExchange))
	return msg, nil
}

// fieldInside reports whether the security buffer (length, max length,
// offset) at pos of msg is empty or lies within the first n bytes, after
// the fixed fields.
func fieldInside(msg []byte, pos, n int) bool {
	l := int(binary.LittleEndian.Uint16(msg[pos:]))
	off := int64(binary.LittleEndian.Uint32(msg[pos+4:]))
	return l == 0 || (off >= minChallengeLen && off+int64(l) <= int64(n))
}
