package schemes_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

	challenges atomic.Int32 // 401s sent
}

func md5hex(parts ...string) string {
	sum := md5.Sum([]byte(strings.Join(parts, ":")))
	return hex.EncodeToString(sum[:])
}

func (s *apacheLikeServer) challenge(w http.ResponseWriter, opaque string) {
	s.challenges.Add(1)
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

// holdBase holds the request carrying nc=00000002 until release is
// closed, so that another request is sent while it is on its way.
type holdBase struct {
	held    chan struct{} // closed when nc=2 reached the transport
	release chan struct{}
	once    sync.Once
}

func (b *holdBase) RoundTrip(r *http.Request) (*http.Response, error) {
	if cs := anyauth.ParseChallenges(r.Header.Get("Authorization")); len(cs) == 1 && cs[0].Param("nc") == "00000002" {
		b.once.Do(func() {
			close(b.held)
			<-b.release
		})
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestDigestConcurrentRequestsNeverOvertake: against an Apache-style nc
// check (each opaque's nc must rise), a request sent while another one of
// the same session is on its way does not share its nonce: it gets a lane
// (a nonce and opaque) of its own with one 401, so neither can overtake
// the other's nc.
func TestDigestConcurrentRequestsNeverOvertake(t *testing.T) {
	server := &apacheLikeServer{lastNC: map[string]uint64{}}
	srv := httptest.NewServer(server)
	defer srv.Close()
	base := &holdBase{held: make(chan struct{}), release: make(chan struct{})}
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
	<-base.held
	code, body := get() // on its own lane: a new opaque, nc=1
	close(base.release)
	if code != 200 || body != "ok nc=1" {
		t.Fatalf("concurrent request: %d %q, want 200 on a lane of its own", code, body)
	}
	if r := <-late; r.code != 200 || r.body != "ok nc=2" {
		t.Fatalf("held request: %d %q, want 200 nc=2", r.code, r.body)
	}
	// Both lanes are kept: two more requests at once cost no 401.
	before := server.challenges.Load()
	done := make(chan struct{})
	go func() { get(); close(done) }()
	get()
	<-done
	if n := server.challenges.Load() - before; n > 1 {
		t.Fatalf("%d more 401s with two lanes open", n)
	}
}

// TestDigestLaneFreedWhenRequestFails: a request that ends in an error
// (its context ran out while the server was slow) still frees its lane,
// so the next request answers at once instead of paying a 401.
func TestDigestLaneFreedWhenRequestFails(t *testing.T) {
	server := &apacheLikeServer{lastNC: map[string]uint64{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" && r.Header.Get("Authorization") != "" {
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return
		}
		server.ServeHTTP(w, r)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(srv.URL, "alice", "pw")}
	get := func(ctx context.Context, path string) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(context.Background(), "/x"); code != 200 {
		t.Fatalf("first request: %d %v", code, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := get(ctx, "/slow"); err == nil {
		t.Fatal("the slow request did not fail")
	}
	before := server.challenges.Load()
	if code, err := get(context.Background(), "/x"); code != 200 {
		t.Fatalf("after the failed request: %d %v", code, err)
	}
	if n := server.challenges.Load() - before; n != 0 {
		t.Fatalf("%d 401s: the failed request kept its lane", n)
	}
}
