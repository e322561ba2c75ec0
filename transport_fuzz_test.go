package anyauth_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// FuzzTransport answers a fuzzed server: status, two challenge lines and
// Authentication-Info. RoundTrip must not panic, must stop within the
// budget, and must return a response or an error, never both.
func FuzzTransport(f *testing.F) {
	f.Add(401, `Digest realm="r", nonce="n", qop="auth, auth-int", algorithm=SHA-256`, `Basic realm="r"`, `nextnonce="x", rspauth="00"`)
	f.Add(401, `Digest realm="r", nonce="n", stale=true, algorithm=MD5-sess`, ``, ``)
	f.Add(407, `Basic realm="p"`, `Digest realm="p", nonce="1", domain="/a http://other/"`, ``)
	f.Add(200, `Negotiate abc==`, ``, `rspauth="zz"`)
	f.Fuzz(func(t *testing.T, status int, line1, line2, info string) {
		if status < 100 || status > 599 {
			status = 401
		}
		calls := 0
		base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls++
			if r.Body != nil {
				io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			return fakeResponse(r, status, "body",
				"Www-Authenticate", line1, "Www-Authenticate", line2,
				"Proxy-Authenticate", line1, "Proxy-Authenticate", line2,
				"Authentication-Info", info), nil
		})
		tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
			Credentials: anyCreds(), ProxyCredentials: anyCreds(), Proxy: http.ProxyURL(mustURL("http://127.0.0.1:3128"))}
		for range 2 {
			req, _ := http.NewRequest("POST", "http://127.0.0.1:9/a/b?q=1", strings.NewReader("payload"))
			resp, err := tr.RoundTrip(req)
			if (resp == nil) == (err == nil) {
				t.Fatalf("resp %v and err %v", resp, err)
			}
			if resp != nil {
				resp.Body.Close()
			}
		}
		if calls > 2*(anyauth.DefaultMaxAnswers+1) {
			t.Fatalf("%d round trips for 2 requests", calls)
		}
	})
}
