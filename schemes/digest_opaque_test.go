package schemes_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// apacheLikeServer checks nonce counts the way Apache's AuthDigestNcCheck
// does: one count per opaque (per "client"), across the nonces it hands
// out; an nc not above it is answered with a new nonce and the same
// opaque, without stale=true.
type apacheLikeServer struct {
	mu      sync.Mutex
	nonces  int
	clients int
	lastNC  map[string]uint64 // by opaque
}

func md5hex(parts ...string) string {
	sum := md5.Sum([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(sum[:])
}

func (s *apacheLikeServer) challenge(w http.ResponseWriter, opaque string) {
	s.nonces++
	if opaque == "" {
		s.clients++
		opaque = strconv.Itoa(s.clients)
	}
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="r", nonce="n%d", algorithm=MD5, opaque="%s", qop="auth"`, s.nonces, opaque))
	w.WriteHeader(http.StatusUnauthorized)
}

func (s *apacheLikeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
	if len(cs) != 1 {
		s.challenge(w, "")
		return
	}
	c := cs[0]
	opaque := c.Param("opaque")
	want := md5hex(md5hex("alice", "r", "pw"), c.Param("nonce"), c.Param("nc"), c.Param("cnonce"), "auth", md5hex(r.Method, c.Param("uri")))
	nc, _ := strconv.ParseUint(c.Param("nc"), 16, 64)
	if c.Param("response") != want || nc <= s.lastNC[opaque] {
		s.challenge(w, opaque) // same client: same opaque, new nonce
		return
	}
	s.lastNC[opaque] = nc
	fmt.Fprintf(w, "ok nc=%d", nc)
}

// reorderBase holds the request carrying nc=00000002 until the one
// carrying nc=00000003 has been answered: two concurrent requests on one
// cached session reach the server out of order.
type reorderBase struct {
	second    chan struct{} // closed when nc=2 reached the transport
	thirdDone chan struct{} // closed when nc=3 was answered
}

func (b *reorderBase) RoundTrip(r *http.Request) (*http.Response, error) {
	nc := ""
	if cs := anyauth.ParseChallenges(r.Header.Get("Authorization")); len(cs) == 1 {
		nc = cs[0].Param("nc")
	}
	switch nc {
	case "00000002":
		close(b.second)
		<-b.thirdDone
	case "00000003":
		defer close(b.thirdDone)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestDigestNonceCountSurvivesOpaqueReuse: a request that lost the race
// to a higher nc is refused by an Apache-style nc check with a new nonce
// and the same opaque; the re-answer goes on counting from the session's
// counter and is accepted. Counting from 1 again would be refused.
func TestDigestNonceCountSurvivesOpaqueReuse(t *testing.T) {
	srv := httptest.NewServer(&apacheLikeServer{lastNC: map[string]uint64{}})
	defer srv.Close()
	base := &reorderBase{second: make(chan struct{}), thirdDone: make(chan struct{})}
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(srv.URL, "alice", "pw")}
	get := func() (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Error(err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != 200 || body != "ok nc=1" {
		t.Fatalf("first request: %d %q", code, body)
	}
	type result struct {
		code int
		body string
	}
	late := make(chan result)
	go func() {
		code, body := get() // nc=2, held back
		late <- result{code, body}
	}()
	<-base.second
	if code, body := get(); code != 200 || body != "ok nc=3" { // nc=3 overtakes
		t.Fatalf("overtaking request: %d %q", code, body)
	}
	r := <-late
	if r.code != 200 {
		t.Fatalf("the overtaken request ended %d %q: its re-answer restarted the nonce count", r.code, r.body)
	}
	if r.body != "ok nc=4" {
		t.Fatalf("re-answer: %q, want nc=4 (the session's count continued)", r.body)
	}
}
