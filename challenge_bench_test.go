package anyauth_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/icholy/digest"
)

// rfc7616SHA256 is the SHA-256 challenge of RFC 7616 §3.9.1.
const rfc7616SHA256 = `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`

// BenchmarkParseDigestChallenge compares our parser with icholy/digest's
// on the same header: run with -bench=ParseDigestChallenge -benchmem.
func BenchmarkParseDigestChallenge(b *testing.B) {
	b.Run("anyauth", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if cs := anyauth.ParseChallenges(rfc7616SHA256); len(cs) != 1 {
				b.Fatal(cs)
			}
		}
	})
	b.Run("icholy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := digest.ParseChallenge(rfc7616SHA256); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParseLinear shows the parser's time grows linearly with input:
// ns/op divided by the size stays flat from 1 KiB to 1 MiB.
func BenchmarkParseLinear(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 14, 1 << 20} {
		for name, unit := range map[string]string{
			"challenges": "Basic realm=x, ",
			"quotes":     `"\`,
			"params":     "p=1, ",
		} {
			in := "Digest " + strings.Repeat(unit, size/len(unit))
			b.Run(name+"/"+sizeName(size), func(b *testing.B) {
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					anyauth.ParseChallenges(in)
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
