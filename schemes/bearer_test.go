package schemes_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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

// authServer is an in-process OAuth 2.0 authorization server: client
// credentials at /token, tokens "tok-<n>" that it counts.
type authServer struct {
	*httptest.Server
	fetches   atomic.Int64
	expiresIn int           // expires_in of each token, 0 for none
	delay     time.Duration // before answering
	status    int           // when set, every fetch fails with it
}

func newAuthServer(t *testing.T) *authServer {
	a := &authServer{expiresIn: 3600}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/token" {
			http.NotFound(w, r)
			return
		}
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if id != "client" || secret != "client-secret" || r.Form.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		time.Sleep(a.delay)
		if a.status != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			io.WriteString(w, `{"error":"server_error"}`)
			return
		}
		n := a.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("tok-%d", n), "token_type": "Bearer", "expires_in": a.expiresIn})
	}))
	t.Cleanup(a.Close)
	return a
}

// config returns client-credentials settings for the server; its Token
// method fetches without caching.
func (a *authServer) config() *clientcredentials.Config {
	return &clientcredentials.Config{ClientID: "client", ClientSecret: "client-secret", TokenURL: a.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader}
}

// resourceServer accepts the tokens in its valid set, answers everything
// else with a Bearer challenge, and counts round trips and what it saw.
type resourceServer struct {
	*httptest.Server
	mu      sync.Mutex
	valid   map[string]bool
	expired map[string]bool
	trips   int
	bodies  []string
	// errorFor, when set, overrides the challenge sent for a token.
	errorFor func(token string) (status int, challenge string)
}

func newResourceServer(t *testing.T) *resourceServer {
	rs := &resourceServer{valid: map[string]bool{}, expired: map[string]bool{}}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		rs.trips++
		rs.bodies = append(rs.bodies, string(body))
		tok, hasTok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		errorFor := rs.errorFor
		ok := hasTok && (rs.valid[tok] || (strings.HasPrefix(tok, "tok-") && !rs.expired[tok]))
		rs.mu.Unlock()
		if hasTok && errorFor != nil {
			if status, ch := errorFor(tok); status != 0 {
				w.Header().Set("WWW-Authenticate", ch)
				w.WriteHeader(status)
				return
			}
		}
		switch {
		case !hasTok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			w.WriteHeader(http.StatusUnauthorized)
		case !ok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token", error_description="The access token expired"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			fmt.Fprintf(w, "hello %s, %d bytes", tok, len(body))
		}
	}))
	t.Cleanup(rs.Close)
	return rs
}

// expire makes every token issued so far invalid.
func (rs *resourceServer) expire(upTo int) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for i := 1; i <= upTo; i++ {
		rs.expired[fmt.Sprintf("tok-%d", i)] = true
	}
}

func (rs *resourceServer) roundTrips() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.trips
}

func bearerTransport(b *schemes.Bearer) *anyauth.Transport {
	return &anyauth.Transport{Schemes: []anyauth.Scheme{b, schemes.Basic{}}}
}

func do(t *testing.T, rt http.RoundTripper, method, url string, body []byte) (*http.Response, string) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, r)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestBearerFetchesOnceAndIsPreemptive(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	for i := 0; i < 5; i++ {
		resp, body := do(t, tr, "GET", fmt.Sprintf("%s/dir%d/x", rs.URL, i), nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(body, "hello tok-1") {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
	}
	// The whole origin is the space: one challenge for five directories.
	if got, fetches := rs.roundTrips(), as.fetches.Load(); got != 6 || fetches != 1 {
		t.Fatalf("%d round trips and %d token fetches for 5 requests, want 6 and 1", got, fetches)
	}
}

// TestBearerConcurrentRefreshIsSingleFlight: 32 goroutines whose token is
// refused together cause exactly one token fetch, for each expiry.
func TestBearerConcurrentRefreshIsSingleFlight(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	const n = 32
	run := func() {
		var wg sync.WaitGroup
		var failed atomic.Int64
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				req, _ := http.NewRequest("GET", rs.URL+"/x", nil)
				resp, err := tr.RoundTrip(req)
				if err != nil {
					t.Error(err)
					failed.Add(1)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		if failed.Load() != 0 {
			t.Fatalf("%d of %d requests failed", failed.Load(), n)
		}
	}
	run() // cold: 32 requests challenged together, one fetch
	if f := as.fetches.Load(); f != 1 {
		t.Fatalf("cold start: %d token fetches for %d concurrent requests, want 1", f, n)
	}
	for round := 1; round <= 3; round++ {
		rs.expire(int(as.fetches.Load())) // the server revokes the token early
		before := rs.roundTrips()
		run()
		if f := as.fetches.Load(); f != int64(1+round) {
			t.Fatalf("expiry %d: %d token fetches in all, want %d (one per expiry)", round, f, 1+round)
		}
		// Each request is refused at most once. One that starts after
		// the new token arrived carries it at once, so fewer than 2n
		// is fine on a busy machine.
		if trips := rs.roundTrips() - before; trips <= n || trips > 2*n {
			t.Fatalf("expiry %d: %d round trips for %d requests, want %d..%d (refused at most once each)", round, trips, n, n+1, 2*n)
		}
	}
}

func TestBearerExpiringTokenIsFetchedBeforeUse(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	as.expiresIn = 5 // inside ExpiryDelta: stale at once
	b := schemes.NewBearer(as.config().Token, rs.URL)
	b.ExpiryDelta = schemes.DefaultExpiryDelta
	tr := bearerTransport(b)
	do(t, tr, "GET", rs.URL+"/x", nil)
	do(t, tr, "GET", rs.URL+"/x", nil)
	// The first request is challenged and fetches a token; the second
	// finds it about to expire and fetches a new one before sending, so
	// it is not refused.
	if f, trips := as.fetches.Load(), rs.roundTrips(); f != 2 || trips != 3 {
		t.Fatalf("%d fetches and %d round trips, want 2 and 3", f, trips)
	}
}

func TestBearerSecondRefusalReturnsResponse(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	rs.errorFor = func(string) (int, string) {
		return 401, `Bearer realm="api", error="invalid_token", error_description="revoked"`
	}
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	resp, _ := do(t, tr, "GET", rs.URL+"/x", nil)
	if resp.StatusCode != 401 || rs.roundTrips() != 3 || as.fetches.Load() != 2 {
		t.Fatalf("status %d after %d round trips and %d fetches, want 401 after 3 and 2", resp.StatusCode, rs.roundTrips(), as.fetches.Load())
	}
	be := schemes.BearerErrorOf(resp)
	if be == nil || be.ErrorCode != "invalid_token" || be.ErrorDescription != "revoked" || be.Realm != "api" || be.Response != resp {
		t.Fatalf("BearerErrorOf = %+v", be)
	}
}

func TestBearerInvalidRequestAndInsufficientScopeNotRetried(t *testing.T) {
	for _, tc := range []struct {
		status    int
		challenge string
		code      string
	}{
		{401, `Bearer realm="api", error="invalid_request", error_description="malformed"`, "invalid_request"},
		{403, `Bearer realm="api", error="insufficient_scope", scope="read write"`, "insufficient_scope"},
	} {
		as, rs := newAuthServer(t), newResourceServer(t)
		rs.errorFor = func(string) (int, string) { return tc.status, tc.challenge }
		tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
		resp, _ := do(t, tr, "GET", rs.URL+"/x", nil)
		if resp.StatusCode != tc.status || rs.roundTrips() != 2 || as.fetches.Load() != 1 {
			t.Fatalf("%s: status %d after %d round trips, %d fetches; want %d after 2, 1", tc.code, resp.StatusCode, rs.roundTrips(), as.fetches.Load(), tc.status)
		}
		be := schemes.BearerErrorOf(resp)
		if be == nil || be.ErrorCode != tc.code {
			t.Fatalf("BearerErrorOf = %+v", be)
		}
		if tc.code == "insufficient_scope" && strings.Join(be.Scope, ",") != "read,write" {
			t.Fatalf("scope %q", be.Scope)
		}
		if !strings.Contains(be.Error(), tc.code) {
			t.Fatalf("Error() = %q", be.Error())
		}
	}
}

func TestBearerStaticTokenRefusedIsNotRetried(t *testing.T) {
	rs := newResourceServer(t)
	tr := bearerTransport(schemes.NewStaticBearer("static-token", rs.URL))
	resp, _ := do(t, tr, "GET", rs.URL+"/x", nil)
	if resp.StatusCode != 401 || rs.roundTrips() != 2 {
		t.Fatalf("status %d after %d round trips, want 401 after 2", resp.StatusCode, rs.roundTrips())
	}
	rs.mu.Lock()
	rs.valid["static-token"] = true
	rs.mu.Unlock()
	if resp, _ := do(t, tr, "GET", rs.URL+"/x", nil); resp.StatusCode != 200 {
		t.Fatalf("valid static token: %d", resp.StatusCode)
	}
}

func TestBearerPostReplayedAfterRefresh(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	do(t, tr, "GET", rs.URL+"/x", nil)
	rs.expire(1)
	payload := bytes.Repeat([]byte("p"), 100_000)
	// A plain reader (no GetBody, no Seek): replayed from the tee buffer.
	req, _ := http.NewRequest("POST", rs.URL+"/upload", io.MultiReader(bytes.NewReader(payload)))
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello tok-2, 100000 bytes" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
}

func TestBearerTokenStaysOnItsOrigins(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	other := newResourceServer(t)
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	resp, _ := do(t, tr, "GET", other.URL+"/x", nil)
	if resp.StatusCode != 401 || other.roundTrips() != 1 || as.fetches.Load() != 0 {
		t.Fatalf("another origin: status %d, %d round trips, %d fetches; want 401, 1, 0", resp.StatusCode, other.roundTrips(), as.fetches.Load())
	}
	// A redirect from the token's origin to another one carries nothing.
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="r"`)
			w.WriteHeader(401)
			return
		}
		http.Redirect(w, r, other.URL+"/landing", http.StatusFound)
	}))
	defer redirector.Close()
	tr2 := bearerTransport(schemes.NewBearer(as.config().Token, redirector.URL))
	client := &http.Client{Transport: tr2}
	r2, err := client.Get(redirector.URL + "/go")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != 401 || other.roundTrips() != 2 {
		t.Fatalf("after redirect: %d, other saw %d round trips", r2.StatusCode, other.roundTrips())
	}
}

func TestBearerCleartextGuard(t *testing.T) {
	rs := newResourceServer(t)
	base := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, rs.Listener.Addr().String())
	}}
	defer base.CloseIdleConnections()
	remote := "http://api.example:8080"
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.NewStaticBearer("tok-1", remote)}}
	req, _ := http.NewRequest("GET", remote+"/x", nil)
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, anyauth.ErrCleartext) || !anyauth.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent cleartext refusal", err)
	}
	if rs.roundTrips() != 1 {
		t.Fatalf("%d round trips, want 1 (token never sent)", rs.roundTrips())
	}
	tr.AllowCleartext = true
	req, _ = http.NewRequest("GET", remote+"/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("with AllowCleartext: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestBearerWaitForTokenHonoursContext(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	as.delay = 2 * time.Second
	tr := bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", rs.URL+"/x", nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v, want DeadlineExceeded at once", err, time.Since(start))
	}
}

func TestBearerTokenEndpointRefusalIsPermanent(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	cfg := as.config()
	cfg.ClientSecret = "wrong"
	tr := bearerTransport(schemes.NewBearer(cfg.Token, rs.URL))
	req, _ := http.NewRequest("GET", rs.URL+"/x", nil)
	_, err := tr.RoundTrip(req)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || !anyauth.IsPermanent(err) || !strings.HasPrefix(err.Error(), "anyauth: origin ") {
		t.Fatalf("err = %v, want a permanent RetrieveError inside an AuthError", err)
	}
	// A 5xx from the token endpoint is not permanent.
	as.status = 503
	tr = bearerTransport(schemes.NewBearer(as.config().Token, rs.URL))
	req, _ = http.NewRequest("GET", rs.URL+"/x", nil)
	if _, err := tr.RoundTrip(req); err == nil || anyauth.IsPermanent(err) {
		t.Fatalf("503: err = %v, want a transient error", err)
	}
}

func TestBearerNeverShowsToken(t *testing.T) {
	as, rs := newAuthServer(t), newResourceServer(t)
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := schemes.NewBearer(as.config().Token, rs.URL)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{b}, Logger: logger}
	do(t, tr, "GET", rs.URL+"/x", nil)
	rs.expire(1)
	do(t, tr, "GET", rs.URL+"/x", nil)
	printed := fmt.Sprintf("%v %+v %#v %s", b, b, b, b)
	mu.Lock()
	all := logs.String() + printed
	mu.Unlock()
	if !strings.Contains(all, "bearer token fetch") {
		t.Fatalf("token fetches not logged:\n%s", all)
	}
	for _, tok := range []string{"tok-1", "tok-2"} {
		if strings.Contains(all, tok) {
			t.Fatalf("%s appears in logs or printed values:\n%s", tok, all)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
