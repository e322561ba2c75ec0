package anyauth_test

import (
	"reflect"
	"testing"

	"github.com/anyauth/anyauth"
)

// FuzzParseChallenges checks that any byte string parses without a panic,
// into well-formed challenges that survive a String round trip.
func FuzzParseChallenges(f *testing.F) {
	for _, s := range []string{
		`Basic realm="simple", Newauth realm="apps", type=1, title="Login to \"apps\""`,
		`Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`,
		`Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXag==`,
		`Bearer realm="example", error="invalid_token", error_description="The access token expired"`,
		`, ,Basic realm=a,, Digest`,
		`Basic realm="a\`,
		"Basic realm=\"\x00\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := anyauth.ParseChallenges(s)
		if len(got) > 64 {
			t.Fatalf("%d challenges kept", len(got))
		}
		for _, c := range got {
			if c.Scheme == "" {
				t.Fatalf("empty scheme in %q", s)
			}
			if c.Token68 != "" && len(c.Params) > 0 {
				t.Fatalf("token68 and params in one challenge from %q", s)
			}
			again := anyauth.ParseChallenges(c.String())
			if len(again) != 1 || !sameChallenge(again[0], c) {
				t.Fatalf("round trip of %#v via %q gave %#v", c, c.String(), again)
			}
		}
	})
}

func sameChallenge(a, b anyauth.Challenge) bool {
	if len(a.Params) == 0 && len(b.Params) == 0 {
		a.Params, b.Params = nil, nil
	}
	return reflect.DeepEqual(a, b)
}
