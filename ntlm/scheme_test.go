package ntlm

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
)

func TestSplitUser(t *testing.T) {
	for _, tc := range []struct{ in, def, user, domain string }{
		{`CORP\alice`, "", "alice", "CORP"},
		{`alice@corp.example`, "", "alice", "corp.example"},
		{`alice`, "DEF", "alice", "DEF"},
		{`alice`, "", "alice", ""},
		{`CORP\a@b`, "", "a@b", "CORP"},
		{`@corp`, "", "@corp", ""},
	} {
		if u, d := splitUser(tc.in, tc.def); u != tc.user || d != tc.domain {
			t.Errorf("splitUser(%q, %q) = %q, %q; want %q, %q", tc.in, tc.def, u, d, tc.user, tc.domain)
		}
	}
}

func TestStrengthOnlyOpensHandshakes(t *testing.T) {
	s := New(Options{})
	if st, ok := s.Strength(&anyauth.Challenge{Scheme: "NTLM"}); !ok || st != anyauth.StrengthNTLM {
		t.Fatalf("bare NTLM: %d %v", st, ok)
	}
	if _, ok := s.Strength(&anyauth.Challenge{Scheme: "NTLM", Token68: "TlRMTVNT"}); ok {
		t.Fatal("a challenge with a token was ranked")
	}
	if st, _ := NewNegotiate(Options{}).Strength(&anyauth.Challenge{Scheme: "Negotiate"}); st >= anyauth.StrengthNTLM || st <= anyauth.StrengthDigest+76 { // Digest ranks its variants up to +76
		t.Fatalf("NTLM inside Negotiate ranks %d: want just below NTLM, above every Digest", st)
	}
	if tr := s.Traits(); !tr.ConnectionBound || !tr.NeverPreemptive || tr.RevealsSecret {
		t.Fatalf("traits %+v", tr)
	}
}

func begin(t *testing.T, s *Scheme, user, pass string) anyauth.Leg {
	t.Helper()
	a := &anyauth.Attempt{
		Space:       anyauth.ProtectionSpace{AuthScheme: s.Name(), URLScheme: "http", Host: "h", Port: "80", Path: "/"},
		Credentials: anyauth.ForOrigin("http://h", user, pass),
	}
	sess, err := s.Begin(context.Background(), &anyauth.Challenge{Scheme: s.Name()}, a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fmt.Sprintf("%v %+v %#v %s", sess, sess, sess, sess), pass) {
		t.Fatal("the session prints the password")
	}
	leg, err := sess.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return leg
}

func TestLegHandshake(t *testing.T) {
	leg := begin(t, NewNegotiate(Options{}), `CORP\alice`, "s3cret-pw")
	if !leg.(anyauth.ProbingLeg).Probing() {
		t.Fatal("the negotiate leg is not a probe")
	}
	req, _ := http.NewRequest("GET", "http://h/", nil)
	if err := leg.Apply(req); err != nil {
		t.Fatal(err)
	}
	h := req.Header.Get("Authorization")
	if !strings.HasPrefix(h, "Negotiate TlRMTVNTUAAB") {
		t.Fatalf("first leg %q", h)
	}
	if leg.(anyauth.ProbingLeg).Probing() {
		t.Fatal("still probing after the negotiate message")
	}
	// A refusal without a token ends the handshake.
	if retry, err := leg.Continue(context.Background(), nil, nil); retry || err != nil {
		t.Fatalf("nil challenge: %v %v", retry, err)
	}
}

func TestLegContinueMalformed(t *testing.T) {
	for name, tok := range map[string]string{
		"not base64": "%%%",
		"not NTLM":   base64.StdEncoding.EncodeToString([]byte("hello, this is not an NTLM message at all")),
	} {
		t.Run(name, func(t *testing.T) {
			leg := begin(t, New(Options{}), `CORP\alice`, "pw")
			req, _ := http.NewRequest("GET", "http://h/", nil)
			leg.Apply(req)
			_, err := leg.Continue(context.Background(), nil, &anyauth.Challenge{Scheme: "NTLM", Token68: tok})
			if !errors.Is(err, ErrMalformedChallenge) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestBeginWithoutCredentials(t *testing.T) {
	a := &anyauth.Attempt{
		Space:       anyauth.ProtectionSpace{AuthScheme: "NTLM", URLScheme: "http", Host: "h", Port: "80", Path: "/"},
		Credentials: anyauth.ForOrigin("http://other", "u", "p"),
	}
	if _, err := New(Options{}).Begin(context.Background(), &anyauth.Challenge{Scheme: "NTLM"}, a); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Fatalf("got %v, want ErrNoCredentials", err)
	}
	a.Credentials = anyauth.ForOrigin("http://h", `CORP\`, "p")
	if _, err := New(Options{}).Begin(context.Background(), &anyauth.Challenge{Scheme: "NTLM"}, a); !errors.Is(err, ErrInvalidCredentials) || !anyauth.IsPermanent(err) {
		t.Fatalf("got %v, want a permanent ErrInvalidCredentials", err)
	}
}
