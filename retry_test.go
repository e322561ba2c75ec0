package anyauth_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"github.com/hashicorp/go-retryablehttp"
)

// The Transport inside go-retryablehttp: 503s injected above, 401s
// answered below.

// flakyDigestServer wants Digest MD5 (qop=auth) with a strict nc check;
// its nonces go stale after lifetime; the first authenticated attempt of
// every request body answers 503. It echoes the body it got.
type flakyDigestServer struct {
	*httptest.Server
	lifetime time.Duration
	mu       sync.Mutex
	issued   map[string]time.Time
	usedNC   map[string]bool
	failed   map[string]bool // bodies that got their 503 already
	log      []int           // statuses, in order
	n        int
}

func newFlakyDigestServer(t *testing.T, lifetime time.Duration) *flakyDigestServer {
	s := &flakyDigestServer{lifetime: lifetime, issued: map[string]time.Time{}, usedNC: map[string]bool{}, failed: map[string]bool{}}
	h := func(v string) string { sum := md5.Sum([]byte(v)); return hex.EncodeToString(sum[:]) }
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		status := func(code int) { s.log = append(s.log, code); w.WriteHeader(code) }
		challenge := func(stale bool) {
			s.n++
			nonce := fmt.Sprintf("n%d", s.n)
			s.issued[nonce] = time.Now()
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="r", nonce="%s", qop="auth", algorithm=MD5, stale=%t`, nonce, stale))
			status(401)
		}
		cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
		if len(cs) != 1 || !cs[0].Is("Digest") {
			challenge(false)
			return
		}
		c := cs[0]
		want := h(h(testUser+":r:"+testPass) + ":" + c.Param("nonce") + ":" + c.Param("nc") + ":" + c.Param("cnonce") + ":auth:" + h(r.Method+":"+c.Param("uri")))
		issued, known := s.issued[c.Param("nonce")]
		key := c.Param("nonce") + "/" + c.Param("nc")
		switch {
		case !known || c.Param("response") != want || s.usedNC[key]:
			challenge(false) // wrong, or an nc replayed
			return
		case time.Since(issued) > s.lifetime:
			challenge(true)
			return
		}
		s.usedNC[key] = true
		if !s.failed[string(body)] {
			s.failed[string(body)] = true
			status(503)
			return
		}
		status(200)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *flakyDigestServer) statuses() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.log)
}

// retryClient is a retryablehttp.Client over t that records what its
// CheckRetry sees.
func retryClient(t *anyauth.Transport, wait time.Duration, seen *[]string) *retryablehttp.Client {
	rc := retryablehttp.NewClient()
	rc.Logger = nil
	rc.RetryWaitMin, rc.RetryWaitMax, rc.RetryMax = wait, wait, 3
	rc.HTTPClient = &http.Client{Transport: t}
	var mu sync.Mutex
	rc.CheckRetry = anyauth.StopOnPermanent(func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		mu.Lock()
		if resp != nil {
			*seen = append(*seen, fmt.Sprint(resp.StatusCode))
		} else {
			*seen = append(*seen, "error")
		}
		mu.Unlock()
		return retryablehttp.DefaultRetryPolicy(ctx, resp, err)
	})
	return rc
}

func TestRetryableAboveTransport(t *testing.T) {
	srv := newFlakyDigestServer(t, time.Hour)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	var seen []string
	rc := retryClient(tr, 10*time.Millisecond, &seen)
	for i := range 3 {
		body := fmt.Sprintf("payload %d", i)
		req, _ := retryablehttp.NewRequest("POST", srv.URL+"/upload", []byte(body))
		resp, err := rc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(got) != body {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
	}
	// The server: 401 once, then each request's 503 and 200. CheckRetry
	// saw only 503s and 200s: the 401 was answered below it.
	if got := srv.statuses(); got != "[401 503 200 503 200 503 200]" {
		t.Fatalf("server statuses %s", got)
	}
	if got := strings.Join(seen, " "); got != "503 200 503 200 503 200" {
		t.Fatalf("CheckRetry saw %s", got)
	}
}

// A Digest nonce that went stale during the back-off still succeeds: the
// Transport answers the stale=true challenge below the retry layer.
func TestRetryableStaleNonceDuringBackoff(t *testing.T) {
	srv := newFlakyDigestServer(t, 50*time.Millisecond)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	var seen []string
	rc := retryClient(tr, 150*time.Millisecond, &seen)
	req, _ := retryablehttp.NewRequest("POST", srv.URL+"/upload", []byte("after a pause"))
	resp, err := rc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != "after a pause" {
		t.Fatalf("%d %q", resp.StatusCode, got)
	}
	if got := srv.statuses(); got != "[401 503 401 200]" { // the second 401 is stale=true
		t.Fatalf("server statuses %s", got)
	}
	if got := strings.Join(seen, " "); got != "503 200" {
		t.Fatalf("CheckRetry saw %s", got)
	}
}

// A permanent error is not retried with StopOnPermanent; the default
// policy alone would send the credentials RetryMax more times.
func TestRetryablePermanentErrorNotRetried(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Digest ") {
			w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="n1", qop="auth", algorithm=SHA-256`)
			w.WriteHeader(401)
			return
		}
		w.Header().Set("Authentication-Info", `rspauth="00", qop=auth`) // a server that does not know the password
	}))
	defer srv.Close()
	for _, stop := range []bool{true, false} {
		hits = 0
		tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{RequireMutualAuth: true}}, Credentials: anyauth.ForOrigin(srv.URL, "u", "p")}
		rc := retryablehttp.NewClient()
		rc.Logger = nil
		rc.RetryWaitMin, rc.RetryWaitMax, rc.RetryMax = time.Millisecond, time.Millisecond, 2
		rc.HTTPClient = &http.Client{Transport: tr}
		if stop {
			rc.CheckRetry = anyauth.StopOnPermanent(retryablehttp.DefaultRetryPolicy)
		}
		req, _ := retryablehttp.NewRequest("GET", srv.URL+"/", nil)
		_, err := rc.Do(req)
		if !errors.Is(err, schemes.ErrMutualAuth) && stop {
			t.Fatalf("err = %v", err)
		}
		want := 2 // one 401, one answer
		if !stop {
			want = 3 * 2 // the default policy retries twice, and each try answers the 401 again
		}
		if hits != want {
			t.Fatalf("StopOnPermanent=%t: %d server hits, want %d", stop, hits, want)
		}
	}
}

// go-retryablehttp's RoundTripper below the Transport is refused, clearly
// and before anything is sent: its retries and redirects would resend the
// Transport's answers unchanged.
func TestRetryableRoundTripperBelowIsRefused(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits++ }))
	defer srv.Close()
	tr := &anyauth.Transport{Base: &retryablehttp.RoundTripper{}, Schemes: []anyauth.Scheme{schemes.Digest{}}}
	body := &closeRecorder{Reader: bytes.NewReader([]byte("x"))}
	req, _ := http.NewRequest("POST", srv.URL+"/", body)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, anyauth.ErrUnsupportedBase) || !anyauth.IsPermanent(err) || !strings.Contains(err.Error(), "go-retryablehttp") {
		t.Fatalf("err = %v", err)
	}
	if hits != 0 || !body.closed {
		t.Fatalf("%d requests sent, body closed %t", hits, body.closed)
	}
}

type closeRecorder struct {
	io.Reader
	closed bool
}

func (c *closeRecorder) Close() error { c.closed = true; return nil }
