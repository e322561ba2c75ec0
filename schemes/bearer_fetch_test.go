package schemes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// This file tests the bounds of Bearer's token fetches against a token
// endpoint that hangs, throttles or refuses, and a resource server that
// refuses every token.

// tokenEndpoint is a client-credentials token endpoint whose answer to
// its n-th hit (from 1) the test decides.
type tokenEndpoint struct {
	*httptest.Server
	hits atomic.Int64
}

func newTokenEndpoint(t *testing.T, answer func(n int64, w http.ResponseWriter, r *http.Request)) *tokenEndpoint {
	e := &tokenEndpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(e.hits.Add(1), w, r)
	}))
	t.Cleanup(e.Close)
	return e
}

// fetch returns a Fetch func: clientcredentials on an http.Client
// without a Timeout, so that a hung endpoint really hangs the call.
func (e *tokenEndpoint) fetch(t *testing.T) func(context.Context) (*oauth2.Token, error) {
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	cfg := &clientcredentials.Config{ClientID: "client", ClientSecret: "client-secret", TokenURL: e.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}
	return func(ctx context.Context) (*oauth2.Token, error) {
		return cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, client))
	}
}

// issue answers with the token "tok-<n>".
func issue(w http.ResponseWriter, n int64) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": 3600})
}

// fail answers with an OAuth error, and a Retry-After unless it is "".
func fail(w http.ResponseWriter, status int, retryAfter, code string) {
	w.Header().Set("Content-Type", "application/json")
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`, code)
}

// get sends a GET through rt with a context that ends after timeout.
func get(rt http.RoundTripper, url string, timeout time.Duration) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestBearerHungFetchDoesNotWedge: a token endpoint that hangs holds a
// request no longer than its own deadline, and the Bearer no longer than
// FetchTimeout: once the endpoint is healthy again, the next request gets
// a token.
func TestBearerHungFetchDoesNotWedge(t *testing.T) {
	release := make(chan struct{})
	var healthy atomic.Bool
	e := newTokenEndpoint(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			<-release // hung: no answer, whatever the client does
			return
		}
		issue(w, n)
	})
	t.Cleanup(func() { close(release) }) // before e.Close
	rs := newResourceServer(t)
	b := schemes.NewBearer(e.fetch(t), rs.URL)
	b.FetchTimeout = time.Second // new API
	tr := bearerTransport(b)

	start := time.Now()
	_, _, err := get(tr, rs.URL+"/x", 500*time.Millisecond)
	took1 := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || took1 > 900*time.Millisecond {
		t.Fatalf("request 1: err = %v after %v, want its own deadline after 500ms", err, took1)
	}
	if strings.Contains(fmt.Sprint(err), "tok-") {
		t.Fatalf("token in error: %v", err)
	}
	healthy.Store(true)

	// Request 2 comes while the hung fetch is still under way: it waits
	// for the fetch's bound at most, then gets a token of its own.
	start = time.Now()
	status, body, err := get(tr, rs.URL+"/x", 3*time.Second)
	took2 := time.Since(start)
	t.Logf("request 1 failed after %v; request 2: %d %q %v after %v; %d endpoint hits", took1, status, body, err, took2, e.hits.Load())
	if err != nil || status != 200 || !strings.HasPrefix(body, "hello tok-2") {
		t.Fatalf("request 2: %d %q %v after %v, want 200 with tok-2", status, body, err, took2)
	}
	if limit := b.FetchTimeout + time.Second; took2 >= limit {
		t.Fatalf("request 2 took %v, want < %v", took2, limit)
	}
	if h := e.hits.Load(); h != 2 {
		t.Fatalf("%d endpoint hits, want 2 (the hung one and one more)", h)
	}
}

// TestBearerFetchIgnoringContextIsAbandoned: a Fetch that ignores its
// context and does not return is abandoned at FetchTimeout, and its late
// result does not replace the token fetched since.
func TestBearerFetchIgnoringContextIsAbandoned(t *testing.T) {
	late := make(chan struct{})
	lateDone := make(chan struct{})
	var calls atomic.Int64
	fetch := func(context.Context) (*oauth2.Token, error) {
		n := calls.Add(1)
		if n == 1 {
			<-late // ignores ctx
			defer close(lateDone)
			return &oauth2.Token{AccessToken: "stale-1", TokenType: "Bearer"}, nil
		}
		return &oauth2.Token{AccessToken: fmt.Sprintf("tok-%d", n), TokenType: "Bearer"}, nil
	}
	var once sync.Once
	releaseLate := func() { once.Do(func() { close(late) }) }
	t.Cleanup(releaseLate)
	rs := newResourceServer(t)
	b := schemes.NewBearer(fetch, rs.URL)
	b.FetchTimeout = 300 * time.Millisecond // new API
	tr := bearerTransport(b)

	start := time.Now()
	_, _, err := get(tr, rs.URL+"/x", 3*time.Second)
	took := time.Since(start)
	t.Logf("request 1: %v after %v", err, took)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || anyauth.IsPermanent(err) || took > time.Second {
		t.Fatalf("request 1: err = %v after %v, want a transient FetchTimeout error after about 300ms", err, took)
	}
	if !strings.Contains(err.Error(), "bearer: ") {
		t.Fatalf("request 1: err = %v, want a bearer: error", err)
	}
	status, body, err := get(tr, rs.URL+"/x", 3*time.Second)
	if err != nil || status != 200 || !strings.HasPrefix(body, "hello tok-2") {
		t.Fatalf("request 2: %d %q %v, want 200 with tok-2", status, body, err)
	}
	// The abandoned fetch returns now, with a token the server refuses.
	releaseLate()
	<-lateDone
	time.Sleep(50 * time.Millisecond)
	status, body, err = get(tr, rs.URL+"/x", 3*time.Second)
	if err != nil || status != 200 || !strings.HasPrefix(body, "hello tok-2") || calls.Load() != 2 {
		t.Fatalf("request 3: %d %q %v after %d fetches, want 200 with tok-2 after 2 (the late token must not replace it)", status, body, err, calls.Load())
	}
	if s := fmt.Sprintf("%v %+v", b, b); strings.Contains(s, "tok-") || strings.Contains(s, "stale-") {
		t.Fatalf("token printed: %s", s)
	}
}

// TestBearerThrottledEndpointIsRetriedOnce: a 429 with Retry-After: 1 is
// waited out and retried once; 32 requests at once share that one
// back-off and retry: two endpoint hits in all.
func TestBearerThrottledEndpointIsRetriedOnce(t *testing.T) {
	e := newTokenEndpoint(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			fail(w, http.StatusTooManyRequests, "1", "slow_down")
			return
		}
		issue(w, n)
	})
	rs := newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(e.fetch(t), rs.URL))
	const n = 32
	var wg sync.WaitGroup
	var failed atomic.Int64
	begin := make(chan struct{})
	start := time.Now()
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-begin
			status, body, err := get(tr, rs.URL+"/x", 10*time.Second)
			if err != nil || status != 200 || !strings.HasPrefix(body, "hello tok-2") {
				t.Logf("%d %q %v", status, body, err)
				failed.Add(1)
			}
		}()
	}
	close(begin)
	wg.Wait()
	took := time.Since(start)
	t.Logf("%d requests: %d failed, %d endpoint hits, %v", n, failed.Load(), e.hits.Load(), took)
	if failed.Load() != 0 || e.hits.Load() != 2 {
		t.Fatalf("%d of %d requests failed, %d endpoint hits; want 0 failed and 2 hits (the 429 and the 200)", failed.Load(), n, e.hits.Load())
	}
	if took < 900*time.Millisecond {
		t.Fatalf("done after %v: Retry-After: 1 was not waited out", took)
	}
}

// TestBearerRetryAfterHTTPDate: a 503 with an HTTP-date Retry-After is
// retried at that date.
func TestBearerRetryAfterHTTPDate(t *testing.T) {
	e := newTokenEndpoint(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		if n == 1 {
			fail(w, http.StatusServiceUnavailable, time.Now().Add(3*time.Second).UTC().Format(http.TimeFormat), "temporarily_unavailable")
			return
		}
		issue(w, n)
	})
	rs := newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(e.fetch(t), rs.URL))
	start := time.Now()
	status, body, err := get(tr, rs.URL+"/x", 10*time.Second)
	took := time.Since(start)
	t.Logf("%d %q %v after %v, %d endpoint hits", status, body, err, took, e.hits.Load())
	if err != nil || status != 200 || e.hits.Load() != 2 {
		t.Fatalf("%d %q %v, %d hits; want 200 after 2 hits", status, body, err, e.hits.Load())
	}
	// The date has whole seconds: 2 to 3 s from the 503.
	if took < 1900*time.Millisecond || took > 4*time.Second {
		t.Fatalf("retried after %v, want 2..3s (the Retry-After date)", took)
	}
}

// TestBearerThrottledEndpointIsNotHammered: while the endpoint's
// Retry-After runs, requests wait for it, and those that give up first
// start no fetch of their own.
func TestBearerThrottledEndpointIsNotHammered(t *testing.T) {
	e := newTokenEndpoint(t, func(n int64, w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusTooManyRequests, "1", "slow_down")
	})
	rs := newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(e.fetch(t), rs.URL))
	start := time.Now()
	for i := range 10 {
		_, _, err := get(tr, rs.URL+"/x", 300*time.Millisecond)
		if err == nil || anyauth.IsPermanent(err) {
			t.Fatalf("request %d: err = %v, want a transient error", i, err)
		}
	}
	took := time.Since(start)
	t.Logf("10 requests in %v: %d endpoint hits", took, e.hits.Load())
	// One hit per Retry-After second, and one to start with.
	if h, most := e.hits.Load(), int64(took/time.Second)+2; h > most {
		t.Fatalf("%d endpoint hits in %v, want at most %d", h, took, most)
	}
}

// TestBearerAlwaysRefusedCostsOneFetchPerInterval: a resource server that
// refuses every token costs one fetch when a token fetched after a
// refusal is refused too, then none until MinRefreshInterval has passed.
func TestBearerAlwaysRefusedCostsOneFetchPerInterval(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	rs.errorFor = func(string) (int, string) {
		return 401, `Bearer realm="api", error="invalid_token", error_description="revoked"`
	}
	b := schemes.NewBearer(as.config().Token, rs.URL)
	b.MinRefreshInterval = time.Second // new API
	tr := bearerTransport(b)
	start := time.Now()
	for i := range 20 {
		resp, _ := do(t, tr, "GET", rs.URL+"/x", nil)
		if resp.StatusCode != 401 || schemes.BearerErrorOf(resp) == nil {
			t.Fatalf("request %d: %d, want the server's 401", i, resp.StatusCode)
		}
	}
	took := time.Since(start)
	t.Logf("20 requests in %v: %d fetches, %d round trips", took, as.fetches.Load(), rs.roundTrips())
	if f, most := as.fetches.Load(), 2+int64(took/b.MinRefreshInterval); f > most {
		t.Fatalf("20 refused requests cost %d fetches in %v, want at most %d", f, took, most)
	}
	// Past the interval, one refusal fetches again, once.
	time.Sleep(b.MinRefreshInterval - time.Since(start) + 50*time.Millisecond)
	before := as.fetches.Load()
	for range 5 {
		do(t, tr, "GET", rs.URL+"/x", nil)
	}
	if f := as.fetches.Load() - before; f != 1 {
		t.Fatalf("after MinRefreshInterval: %d fetches for 5 refused requests, want 1", f)
	}
}

// TestBearerTokenEndpointClientErrorStaysPermanent: a 400 invalid_client
// is permanent and not retried, also when it follows a 429's retry.
func TestBearerTokenEndpointClientErrorStaysPermanent(t *testing.T) {
	for _, tc := range []struct {
		name     string
		throttle bool
		hits     int64
	}{{"400", false, 1}, {"429 then 400", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newTokenEndpoint(t, func(n int64, w http.ResponseWriter, r *http.Request) {
				if tc.throttle && n == 1 {
					fail(w, http.StatusTooManyRequests, "1", "slow_down")
					return
				}
				fail(w, http.StatusBadRequest, "", "invalid_client")
			})
			rs := newResourceServer(t)
			tr := bearerTransport(schemes.NewBearer(e.fetch(t), rs.URL))
			_, _, err := get(tr, rs.URL+"/x", 10*time.Second)
			var re *oauth2.RetrieveError
			t.Logf("err = %v; permanent %t; %d endpoint hits", err, anyauth.IsPermanent(err), e.hits.Load())
			if !errors.As(err, &re) || re.ErrorCode != "invalid_client" || !anyauth.IsPermanent(err) || !strings.Contains(err.Error(), "bearer: ") {
				t.Fatalf("err = %v, want a permanent bearer: error wrapping the invalid_client RetrieveError", err)
			}
			if h := e.hits.Load(); h != tc.hits {
				t.Fatalf("%d endpoint hits, want %d", h, tc.hits)
			}
		})
	}
}
