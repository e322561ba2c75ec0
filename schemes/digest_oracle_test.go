package schemes

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	icholy "github.com/icholy/digest"
)

// TestDigestAgainstIcholy computes the same answers with
// github.com/icholy/digest as an independent oracle: MD5, SHA-256 (and the
// SHA-512 family, which it also knows) with qop=auth over several nonce
// counts, with and without userhash, and qop=auth-int over a body. The
// response, username, nc, cnonce and uri must agree.
func TestDigestAgainstIcholy(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256", "SHA-512", "SHA-512-256"} {
		for _, qop := range []string{"auth", "auth-int"} {
			for _, userhash := range []bool{false, true} {
				name := fmt.Sprintf("%s/%s/userhash=%t", alg, qop, userhash)
				t.Run(name, func(t *testing.T) {
					challenge := fmt.Sprintf(`Digest realm="oracle@example.org", qop="%s", algorithm=%s, nonce="n0nce-%s", opaque="0paque", userhash=%t`, qop, alg, alg, userhash)
					chal, err := icholy.ParseChallenge(challenge)
					if err != nil {
						t.Fatal(err)
					}
					const cnonce = "0123456789abcdef0123456789abcdef"
					s := begin(t, Digest{fixedCnonce: cnonce}, challenge, "Mufasa", "Circle of Life", false, nil)
					body := []byte(strings.Repeat("body bytes ", 500))
					for n := 1; n <= 3; n++ {
						req, _ := http.NewRequest(http.MethodPost, "http://example.org/dir/index.html?x=1", bytes.NewReader(body))
						ours, err := s.Authorize(req)
						if err != nil {
							t.Fatal(err)
						}
						cred, err := icholy.Digest(chal, icholy.Options{
							Method: req.Method, URI: req.URL.RequestURI(), Count: n, Cnonce: cnonce,
							Username: "Mufasa", Password: "Circle of Life",
							GetBody: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil },
						})
						if err != nil {
							t.Fatal(err)
						}
						got, err := icholy.ParseCredentials(ours)
						if err != nil {
							t.Fatalf("icholy cannot parse our header %s: %v", ours, err)
						}
						if got.Response != cred.Response || got.Username != cred.Username || got.Nc != cred.Nc ||
							got.Cnonce != cred.Cnonce || got.URI != cred.URI || got.QOP != cred.QOP || got.Userhash != cred.Userhash ||
							got.Opaque != cred.Opaque || got.Algorithm != cred.Algorithm {
							t.Errorf("request %d:\n ours   %s\n icholy %s", n, ours, cred)
						}
					}
				})
			}
		}
	}
}
