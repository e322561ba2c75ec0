package ntlm

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/Azure/go-ntlmssp"
)

// squidChallenge is the challenge message Squid 5.7's ntlm_fake_auth
// sent: TargetName at offset 0xAAAAAAAE, the short form whose TargetName
// text ("WORKGROUP") sits where TargetInfo's field would be, and the
// TargetInfo flag set all the same.
const squidChallenge = "TlRMTVNTUAACAAAACQAJAK6qqqoBgoigieRdC0o1mEgAAAAAAAA6AFdPUktHUk9VUA=="

func TestSanitizeSquidChallenge(t *testing.T) {
	raw, _ := base64.StdEncoding.DecodeString(squidChallenge)
	if _, err := ntlmssp.NewAuthenticateMessage(raw, `D\u`, "p", nil); err == nil {
		t.Fatal("go-ntlmssp accepts the raw message: the sanitizer is no longer needed")
	}
	msg, err := sanitizeChallenge(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ntlmssp.NewAuthenticateMessage(msg, `D\u`, "p", nil); err != nil {
		t.Fatalf("go-ntlmssp refuses the sanitized message: %v", err)
	}
	if string(raw[24:32]) != string(msg[24:32]) {
		t.Error("the server challenge changed")
	}
}

func TestSanitizeChallenge(t *testing.T) {
	good := func() []byte {
		m := make([]byte, 48+8)
		copy(m, "NTLMSSP\x00")
		binary.LittleEndian.PutUint32(m[8:], 2)
		binary.LittleEndian.PutUint32(m[20:], 0x00800000|0x00000001)
		copy(m[24:32], "8bytes!!")
		// TargetInfo: 4 bytes at 48: MsvAvEOL.
		binary.LittleEndian.PutUint16(m[40:], 4)
		binary.LittleEndian.PutUint16(m[42:], 4)
		binary.LittleEndian.PutUint32(m[44:], 48)
		return m
	}
	t.Run("well formed passes unchanged", func(t *testing.T) {
		m := good()
		out, err := sanitizeChallenge(m)
		if err != nil || string(out) != string(m) {
			t.Fatalf("%v, changed: %v", err, string(out) != string(m))
		}
	})
	t.Run("short form is padded", func(t *testing.T) {
		out, err := sanitizeChallenge(good()[:32])
		if err != nil || len(out) != 48 {
			t.Fatalf("len %d, %v", len(out), err)
		}
		if _, err := ntlmssp.NewAuthenticateMessage(out, `D\u`, "p", nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("KEY_EXCH and LM_KEY cleared", func(t *testing.T) {
		m := good()
		binary.LittleEndian.PutUint32(m[20:], 0x40000000|0x00000080|0x00800000|1)
		out, err := sanitizeChallenge(m)
		if err != nil {
			t.Fatal(err)
		}
		if f := binary.LittleEndian.Uint32(out[20:]); f&(0x40000000|0x80) != 0 || f&0x00800001 != 0x00800001 {
			t.Fatalf("flags %#x", f)
		}
		if _, err := ntlmssp.NewAuthenticateMessage(out, `D\u`, "p", nil); err != nil {
			t.Fatal(err)
		}
	})
	for name, m := range map[string][]byte{
		"too short":      good()[:31],
		"not NTLMSSP":    append([]byte("NTLMSSX\x00"), good()[8:]...),
		"negotiate type": func() []byte { m := good(); m[8] = 1; return m }(),
		"empty":          nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := sanitizeChallenge(m); !errors.Is(err, ErrMalformedChallenge) {
				t.Fatalf("got %v, want ErrMalformedChallenge", err)
			}
		})
	}
}

func FuzzSanitizeChallenge(f *testing.F) {
	raw, _ := base64.StdEncoding.DecodeString(squidChallenge)
	f.Add(raw)
	f.Add(raw[:32])
	f.Fuzz(func(t *testing.T, b []byte) {
		msg, err := sanitizeChallenge(b)
		if err != nil {
			return
		}
		// Whatever passes must not make go-ntlmssp panic.
		_, _ = ntlmssp.NewAuthenticateMessage(msg, `D\u`, "p", nil)
	})
}
