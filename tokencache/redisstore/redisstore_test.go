package redisstore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/fleet"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"github.com/anyauth/anyauth/tokencache/redisstore"
	"github.com/anyauth/anyauth/tokencache/tokenstoretest"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// These tests run Bearers on a real redis-server (testserver.StartRedis):
// in this process, and in worker processes that re-execute the test
// binary (see TestMain).

const workerEnv = "ANYAUTH_REDISSTORE_WORKER"

var secretA = bytes.Repeat([]byte{0xA1}, 32)

// quietRedis drops go-redis's own log lines (dial failures while the
// outage test has Redis down).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	fleet.RunWorker() // returns at once unless this process is a fleet worker
	redis.SetLogger(quietRedis{})
	switch os.Getenv(workerEnv) {
	case "":
		code := m.Run()
		shared.r.Close()
		closeFleetWorld()
		os.Exit(code)
	case "hold":
		holdWorker()
	}
	os.Exit(0)
}

// shared is the redis-server of this test binary, started by the first
// test that needs it; TestRedisOutage starts its own, to stop it.
var shared struct {
	once sync.Once
	r    *testserver.Redis
	err  error
}

// sharedRedis returns the binary's redis-server, skipping (or, under CI,
// failing) the test when redis-server is not installed.
func sharedRedis(t *testing.T) *testserver.Redis {
	t.Helper()
	shared.once.Do(func() { shared.r, shared.err = testserver.StartRedis() })
	if shared.err != nil {
		skipOrFail(t, "redis-server", shared.err)
	}
	return shared.r
}

// --- token endpoint and resource server --------------------------------

// authServer issues tokens "tok-N" valid for expiresIn and counts its
// fetches; its resource server accepts only the tokens it issued, until
// their expiry, unless revoked.
type authServer struct {
	token, resource *httptest.Server
	expiresIn       int
	hits            atomic.Int64
	resOK, res401   atomic.Int64

	mu      sync.Mutex
	expiry  map[string]time.Time
	revoked map[string]bool
	sent    map[string]int // tokens seen by the resource server
}

func newAuthServer(t *testing.T, expiresIn int) *authServer {
	a := &authServer{expiresIn: expiresIn, expiry: map[string]time.Time{}, revoked: map[string]bool{}, sent: map[string]int{}}
	a.token = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := a.hits.Add(1)
		tok := fmt.Sprintf("tok-%d", n)
		a.mu.Lock()
		a.expiry[tok] = time.Now().Add(time.Duration(expiresIn) * time.Second)
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": expiresIn})
	}))
	a.resource = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.mu.Lock()
		a.sent[tok]++
		exp, issued := a.expiry[tok]
		valid := issued && time.Now().Before(exp) && !a.revoked[tok]
		a.mu.Unlock()
		if !valid {
			a.res401.Add(1)
			w.Header().Set("WWW-Authenticate", `Bearer realm="api", error="invalid_token"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.resOK.Add(1)
		io.WriteString(w, "hello "+tok)
	}))
	t.Cleanup(a.token.Close)
	t.Cleanup(a.resource.Close)
	return a
}

func (a *authServer) revoke(tok string) {
	a.mu.Lock()
	a.revoked[tok] = true
	a.mu.Unlock()
}

func (a *authServer) sentCount(tok string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sent[tok]
}

func storeKey(tokenURL string) string {
	return schemes.TokenKey{TokenURL: tokenURL + "/token", ClientID: "client", ClientSecret: "client-secret", Scopes: []string{"api"}}.Sum()
}

// replica is one Bearer with its own Redis client, as one process of a
// fleet has.
type replica struct {
	b    *schemes.Bearer
	tr   *anyauth.Transport
	rdb  *redis.Client
	logs *logRecorder
}

func newReplica(tb testing.TB, redisAddr, tokenURL, resourceURL string, o redisstore.Options, lease time.Duration) *replica {
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	logs := &logRecorder{}
	if o.Logger == nil {
		o.Logger = slog.New(logs)
	}
	store, err := redisstore.New(rdb, o)
	if err != nil {
		tb.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{}}
	cfg := &clientcredentials.Config{ClientID: "client", ClientSecret: "client-secret", TokenURL: tokenURL + "/token", Scopes: []string{"api"}, AuthStyle: oauth2.AuthStyleInHeader}
	b := schemes.NewClientCredentialsBearer(cfg, resourceURL)
	b.Fetch = func(ctx context.Context) (*oauth2.Token, error) {
		return cfg.Token(context.WithValue(ctx, oauth2.HTTPClient, client))
	}
	b.Store = store
	b.ExpiryDelta = time.Second
	b.FetchTimeout = 5 * time.Second
	b.StoreLease = lease
	if tb, ok := tb.(*testing.T); ok {
		tb.Cleanup(func() { rdb.Close(); client.CloseIdleConnections() })
	}
	return &replica{b: b, tr: &anyauth.Transport{Schemes: []anyauth.Scheme{b}, Logger: slog.New(logs)}, rdb: rdb, logs: logs}
}

func (r *replica) get(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := r.tr.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), nil
}

// logRecorder is a slog.Handler that keeps every record's level and text.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
	warn int
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logRecorder) WithGroup(string) slog.Handler            { return l }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, b.String())
	if r.Level == slog.LevelWarn {
		l.warn++
	}
	return nil
}

func (l *logRecorder) warns() (n int, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var w []string
	for _, r := range l.recs {
		if strings.HasPrefix(r, "WARN") {
			w = append(w, r)
		}
	}
	return l.warn, strings.Join(w, "\n")
}

func (l *logRecorder) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.recs, "\n")
}

// --- fleet ---------------------------------------------------------------

// holdWorker takes the lease of STORE_KEY for LEASE_MS, says HELD, and
// hangs until killed: a fetcher that dies holding the lease.
func holdWorker() {
	rdb := redis.NewClient(&redis.Options{Addr: os.Getenv("REDIS_ADDR")})
	store, err := redisstore.New(rdb, redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}})
	if err != nil {
		fmt.Println(err)
		os.Exit(2)
	}
	ms, _ := strconv.Atoi(os.Getenv("LEASE_MS"))
	if _, err := store.Lease(context.Background(), os.Getenv("STORE_KEY"), time.Duration(ms)*time.Millisecond); err != nil {
		fmt.Println("lease:", err)
		os.Exit(2)
	}
	fmt.Println("HELD")
	time.Sleep(time.Minute)
}

// TestFetcherKilledHoldingLease: a process takes the lease and is killed
// without releasing it; three replicas that need a token wait for the
// lease to expire, then one fetches for all, within lease + one fetch.
func TestFetcherKilledHoldingLease(t *testing.T) {
	r := sharedRedis(t)
	a := newAuthServer(t, 60)
	const lease = 1500 * time.Millisecond
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), workerEnv+"=hold", "REDIS_ADDR="+r.Addr, "STORE_KEY="+storeKey(a.token.URL), "LEASE_MS="+strconv.Itoa(int(lease/time.Millisecond)))
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	leased := time.Now()
	if strings.TrimSpace(line) != "HELD" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("holder said %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()

	var wg sync.WaitGroup
	took := make([]time.Duration, 3)
	for i := range took {
		rep := newReplica(t, r.Addr, a.token.URL, a.resource.URL, redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}}, lease)
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, err := rep.get(a.resource.URL + "/x")
			took[i] = time.Since(leased)
			if err != nil || status != 200 {
				t.Errorf("replica %d: %d %q %v", i, status, body, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("holder killed; replicas got their token %v after the lease was taken (lease %v); token endpoint fetches: %d", took, lease, a.hits.Load())
	if h := a.hits.Load(); h != 1 {
		t.Errorf("token endpoint saw %d fetches, want 1", h)
	}
	for i, d := range took {
		if d > lease+time.Second {
			t.Errorf("replica %d waited %v, want <= lease %v + 1 s", i, d, lease)
		}
	}
}

// TestRefusalAfterAnotherReplicaRefreshed: A and B share tok-1; it is
// revoked; B is refused, deletes it and stores tok-2; A, refused with
// tok-1 in turn, does not delete tok-2 (compare-and-delete) and uses it.
func TestRefusalAfterAnotherReplicaRefreshed(t *testing.T) {
	r := sharedRedis(t)
	a := newAuthServer(t, 60)
	o := redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}}
	ra := newReplica(t, r.Addr, a.token.URL, a.resource.URL, o, 0)
	rb := newReplica(t, r.Addr, a.token.URL, a.resource.URL, o, 0)
	for _, rep := range []*replica{ra, rb} {
		if status, body, err := rep.get(a.resource.URL + "/x"); err != nil || body != "hello tok-1" {
			t.Fatalf("warm-up: %d %q %v", status, body, err)
		}
	}
	a.revoke("tok-1")
	if status, body, err := rb.get(a.resource.URL + "/x"); err != nil || body != "hello tok-2" {
		t.Fatalf("B after revocation: %d %q %v", status, body, err)
	}
	if status, body, err := ra.get(a.resource.URL + "/x"); err != nil || body != "hello tok-2" {
		t.Fatalf("A after revocation: %d %q %v", status, body, err)
	}
	store, _ := redisstore.New(ra.rdb, o)
	got, err := store.Get(context.Background(), storeKey(a.token.URL))
	t.Logf("token endpoint fetches: %d; stored now: %v", a.hits.Load(), got != nil && got.AccessToken == "tok-2")
	if err != nil || got == nil || got.AccessToken != "tok-2" {
		t.Errorf("stored token after both refusals: err %v, tok-2 stored: %v", err, got != nil && got.AccessToken == "tok-2")
	}
	if h := a.hits.Load(); h != 2 {
		t.Errorf("token endpoint saw %d fetches, want 2", h)
	}
}

// TestUnreadableEntriesAreMisses: an entry under a wrong key, another key
// ID, a corrupted one, a plaintext one read by an encrypting store: all
// are misses, logged, and a Bearer never sends them; key rotation reads
// an old key's entry.
func TestUnreadableEntriesAreMisses(t *testing.T) {
	r := sharedRedis(t)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { rdb.Close() })
	secretB := bytes.Repeat([]byte{0xB2}, 32)
	mk := func(o redisstore.Options) (*redisstore.Store, *logRecorder) {
		logs := &logRecorder{}
		o.Logger = slog.New(logs)
		s, err := redisstore.New(rdb, o)
		if err != nil {
			t.Fatal(err)
		}
		return s, logs
	}
	writer, _ := mk(redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}})
	const key = "0000000000000000000000000000000000000000000000000000000000000001"
	secretTok := &oauth2.Token{AccessToken: "SECRET-stored-token", TokenType: "Bearer", Expiry: time.Now().Add(time.Minute)}
	if err := writer.Put(ctx, key, secretTok); err != nil {
		t.Fatal(err)
	}
	raw, _ := rdb.HGet(ctx, "anyauth:bearer:{"+key+"}:token", "v").Result()
	if strings.Contains(raw, "SECRET") {
		t.Fatalf("token stored in clear")
	}
	cases := []struct {
		name string
		o    redisstore.Options
		want bool
	}{
		{"right key", redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}}, true},
		{"rotated: new key first, old one still there", redisstore.Options{Keys: []redisstore.Key{{ID: "b", Secret: secretB}, {ID: "a", Secret: secretA}}}, true},
		{"wrong key, same ID", redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretB}}}, false},
		{"other key ID", redisstore.Options{Keys: []redisstore.Key{{ID: "b", Secret: secretA}}}, false},
		{"plaintext store", redisstore.Options{Plaintext: true}, false},
	}
	for _, c := range cases {
		s, logs := mk(c.o)
		got, err := s.Get(ctx, key)
		n, text := logs.warns()
		if err != nil || (got != nil) != c.want || (!c.want && n != 1) {
			t.Errorf("%s: got token %v, err %v, %d warnings; want token %v and a warning when not", c.name, got != nil, err, n, c.want)
		}
		t.Logf("%s: token %v; %s", c.name, got != nil, text)
		if strings.Contains(text, "SECRET") || strings.Contains(text, string(secretA)) {
			t.Errorf("%s: secret in log: %s", c.name, text)
		}
	}
	// Corrupted: one ciphertext byte flipped; garbage; copied under
	// another key.
	b := []byte(raw)
	b[len(b)-3] ^= 1
	if b[len(b)-3] == '/' || b[len(b)-3] == '+' { // keep it base64
		b[len(b)-3] = 'A'
	}
	for name, v := range map[string]string{"flipped byte": string(b), "garbage": "k1:a:!!!!", "unknown format": "zz"} {
		rdb.HSet(ctx, "anyauth:bearer:{"+key+"}:token", "v", v)
		got, err := writer.Get(ctx, key)
		if err != nil || got != nil {
			t.Errorf("%s: got token %v, err %v; want a miss", name, got != nil, err)
		}
	}
	const other = "0000000000000000000000000000000000000000000000000000000000000002"
	rdb.HSet(ctx, "anyauth:bearer:{"+other+"}:token", "v", raw)
	if got, err := writer.Get(ctx, other); err != nil || got != nil {
		t.Errorf("entry copied under another key: got token %v, err %v; want a miss", got != nil, err)
	}

	// A Bearer whose key does not open the stored entry fetches its own
	// token and never sends the stored one.
	a := newAuthServer(t, 60)
	pa := newReplica(t, r.Addr, a.token.URL, a.resource.URL, redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}}, 0)
	if _, body, err := pa.get(a.resource.URL + "/x"); err != nil || body != "hello tok-1" {
		t.Fatalf("replica A: %q %v", body, err)
	}
	pb := newReplica(t, r.Addr, a.token.URL, a.resource.URL, redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretB}}}, 0)
	if _, body, err := pb.get(a.resource.URL + "/x"); err != nil || body != "hello tok-2" {
		t.Fatalf("replica B, wrong key: %q %v", body, err)
	}
	if n := a.sentCount("tok-1"); n != 1 {
		t.Errorf("tok-1 sent %d times, want once (by A only)", n)
	}
	t.Logf("wrong-key Bearer: token endpoint fetches %d (one per key)", a.hits.Load())
}

// TestOptionsAndRedaction: no key and no Plaintext is an error; keys
// never print.
func TestOptionsAndRedaction(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	if _, err := redisstore.New(rdb, redisstore.Options{}); err == nil {
		t.Error("New without key nor Plaintext: no error")
	}
	if _, err := redisstore.New(rdb, redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: []byte("short")}}}); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("short key: %v", err)
	}
	if _, err := redisstore.New(rdb, redisstore.Options{Plaintext: true}); err != nil {
		t.Errorf("Plaintext: %v", err)
	}
	secret := []byte("0123456789abcdefSECRETSECRET3456")
	o := redisstore.Options{Keys: []redisstore.Key{{ID: "k", Secret: secret}}}
	s, err := redisstore.New(rdb, o)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{o, &o, o.Keys[0], o.Keys, s} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
			if out := fmt.Sprintf(verb, v); strings.Contains(out, "SECRET") || strings.Contains(out, fmt.Sprintf("%x", secret)[:16]) {
				t.Errorf("%s of %T shows the secret: %s", verb, v, out)
			}
		}
	}
}

// TestRedisOutage: three replicas run while Redis stops for 3 s and comes
// back: no request fails, each replica fetches on its own meanwhile, and
// logs one Warn for the outage, and one Info once it sees the store back.
// The tokens live 2 s, less than the outage, so that every replica must
// renew its token while the store is down: with 3 s tokens and a 2.5 s
// outage, a replica that renewed just before the stop and just after the
// start never saw the outage (CI met that once).
func TestRedisOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("11 s run")
	}
	r := testserver.StartRedisForTest(t)
	a := newAuthServer(t, 2)
	o := redisstore.Options{Keys: []redisstore.Key{{ID: "a", Secret: secretA}}}
	var reps []*replica
	for i := 0; i < 3; i++ {
		reps = append(reps, newReplica(t, r.Addr, a.token.URL, a.resource.URL, o, 0))
	}
	var ok, failed atomic.Int64
	var phase atomic.Int64
	hitsAt := make([]int64, 4)
	deadline := time.Now().Add(11 * time.Second)
	var wg sync.WaitGroup
	for _, rep := range reps {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					status, body, err := rep.get(a.resource.URL + "/x")
					if err != nil || status != 200 {
						failed.Add(1)
						t.Errorf("phase %d: %d %q %v", phase.Load(), status, body, err)
					} else {
						ok.Add(1)
					}
					time.Sleep(10 * time.Millisecond)
				}
			}()
		}
	}
	time.Sleep(2 * time.Second)
	hitsAt[0] = a.hits.Load()
	if err := r.Stop(); err != nil {
		t.Error(err)
	}
	phase.Store(1)
	time.Sleep(3 * time.Second)
	hitsAt[1] = a.hits.Load()
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	phase.Store(2)
	wg.Wait()
	hitsAt[2] = a.hits.Load()
	t.Logf("requests: %d ok, %d failed; token endpoint fetches: %d before the outage (2 s), %d during it (3 s, 3 replicas), %d after (6 s)",
		ok.Load(), failed.Load(), hitsAt[0], hitsAt[1]-hitsAt[0], hitsAt[2]-hitsAt[1])
	for i, rep := range reps {
		n, text := rep.logs.warns()
		t.Logf("replica %d: %d Warn: %s", i, n, text)
		if n != 1 {
			t.Errorf("replica %d logged %d Warn records, want 1:\n%s", i, n, rep.logs.all())
		}
		if !strings.Contains(rep.logs.all(), "INFO anyauth: bearer token store available again") {
			t.Errorf("replica %d did not log the store's recovery:\n%s", i, rep.logs.all())
		}
		if strings.Contains(rep.logs.all(), "tok-") {
			t.Errorf("replica %d: token in log", i)
		}
	}
	if failed.Load() != 0 {
		t.Errorf("%d requests failed", failed.Load())
	}
	if d := hitsAt[1] - hitsAt[0]; d < 2 {
		t.Errorf("%d fetches during the outage, want each replica fetching on its own", d)
	}
}

// TestContract runs the TokenStore contract on a real redis-server, with
// encryption and in plaintext.
func TestContract(t *testing.T) {
	r := sharedRedis(t)
	for name, o := range map[string]redisstore.Options{
		"encrypted": {Keys: []redisstore.Key{{ID: "a", Secret: secretA}}},
		"plaintext": {Plaintext: true},
	} {
		t.Run(name, func(t *testing.T) {
			tokenstoretest.Run(t, func(t *testing.T) schemes.TokenStore {
				rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
				t.Cleanup(func() { rdb.Close() })
				s, err := redisstore.New(rdb, o)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}

func isNotInstalled(err error) bool { return errors.Is(err, testserver.ErrNotInstalled) }
