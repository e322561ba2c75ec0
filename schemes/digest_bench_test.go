package schemes

import (
	"net/http"
	"testing"

	icholy "github.com/icholy/digest"
)

// The benchmarks compute the same SHA-256 qop=auth Authorization value
// for the RFC 7616 §3.9.1 challenge, each with a fresh random cnonce and
// the next nonce count: ours through a Session, icholy/digest through
// Digest and Credentials.String. Compare with
//
//	go test -run '^$' -bench DigestAuthorize -benchmem ./schemes/

const benchChallenge = `Digest realm="http-auth@example.org", qop="auth", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`

func BenchmarkDigestAuthorize(b *testing.B) {
	s := begin(b, Digest{}, benchChallenge, "Mufasa", "Circle of Life", false, nil)
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/dir/index.html", nil)
	l := &digestLeg{s: s, lane: &s.digestLane} // one request's leg, as the Transport keeps it
	b.ReportAllocs()
	for b.Loop() {
		if _, err := l.header(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDigestAuthorizeIcholy(b *testing.B) {
	chal, err := icholy.ParseChallenge(benchChallenge)
	if err != nil {
		b.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://example.org/dir/index.html", nil)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		n++
		cred, err := icholy.Digest(chal, icholy.Options{
			Method: req.Method, URI: req.URL.RequestURI(), Count: n,
			Username: "Mufasa", Password: "Circle of Life",
		})
		if err != nil {
			b.Fatal(err)
		}
		_ = cred.String()
	}
}

// BenchmarkDigestAuthorizeParallel is ours from GOMAXPROCS goroutines on
// one Session, the Transport's cached case.
func BenchmarkDigestAuthorizeParallel(b *testing.B) {
	s := begin(b, Digest{}, benchChallenge, "Mufasa", "Circle of Life", false, nil)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, "http://example.org/dir/index.html", nil)
		l := &digestLeg{s: s, lane: &s.digestLane}
		for pb.Next() {
			if _, err := l.header(req); err != nil {
				b.Fatal(err)
			}
		}
	})
}
