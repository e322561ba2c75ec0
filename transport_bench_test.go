package anyauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
	"github.com/anyauth/anyauth/tokencache/redisstore"
	"github.com/icholy/digest"
	"github.com/redis/go-redis/v9"
)

// benchServer challenges requests without Authorization and accepts any
// that has one, so benchmarks measure the client, not a verifier. It
// counts the requests it sees. Like Apache and lighttpd, it hands out a
// fresh nonce with every Digest challenge: with one static nonce, the
// Transport lets one request at a time answer with it (so that a server
// that wants its nc to rise gets them in order), and concurrent requests
// would measure that queue.
type benchServer struct {
	*httptest.Server
	hits   atomic.Int64
	nonces atomic.Int64
}

func newBenchServer(challenge string) *benchServer {
	s := &benchServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") == "" {
			fresh := strings.Replace(challenge, `nonce="`, `nonce="`+strconv.FormatInt(s.nonces.Add(1), 36)+"-", 1)
			w.Header().Set("WWW-Authenticate", fresh)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	return s
}

func (s *benchServer) reset() { s.hits.Store(0) }

// inflight is a Base that counts the round trips under way in it and
// keeps the most there were at once.
type inflight struct {
	base     http.RoundTripper
	now, max atomic.Int64
}

func (c *inflight) RoundTrip(r *http.Request) (*http.Response, error) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.max.Load(); n > m && !c.max.CompareAndSwap(m, n); m = c.max.Load() {
	}
	return c.base.RoundTrip(r)
}

const benchDigestChallenge = `Digest realm="bench", qop="auth", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe"`

// fixedHeader is the bare transport with a header set by hand: the floor
// any authenticating transport is measured against. Its header has the
// size of the real one, so the server's work is the same.
type fixedHeader struct {
	base  http.RoundTripper
	value string
}

func (f fixedHeader) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", f.value)
	return f.base.RoundTrip(r)
}

// A Digest SHA-256 answer of the size anyauth sends for the benchmark.
const benchDigestAnswer = `Digest username="alice", realm="bench", nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", uri="/a/b", cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", nc=00000001, qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe", algorithm=SHA-256`

func benchGet(b *testing.B, rt http.RoundTripper, url string) {
	b.Helper()
	if err := get1(rt, url); err != nil {
		b.Fatal(err)
	}
}

// get1 sends one GET through rt and reads the response, which must be a
// 200. It is benchGet for goroutines other than the benchmark's own,
// which must not call b.Fatal.
func get1(rt http.RoundTripper, url string) error {
	return get1ctx(context.Background(), rt, url)
}

// benchUserKey is the context key of the user a benchmark request is for.
type benchUserKey struct{}

// get1ctx is get1 with the request's context.
func get1ctx(ctx context.Context, rt http.RoundTripper, url string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// BenchmarkCachedRequest compares, in one run, a request in a known
// protection space through the bare http.Transport (a header of the same
// size set by hand), anyauth Basic, anyauth Digest SHA-256 and
// icholy/digest's Transport, on a loopback server.
// It also reports round trips per request over the whole run.
// make bench runs each sub-benchmark in turn, round after round.
func BenchmarkCachedRequest(b *testing.B) {
	basicSrv := newBenchServer(`Basic realm="bench"`)
	defer basicSrv.Close()
	digestSrv := newBenchServer(benchDigestChallenge)
	defer digestSrv.Close()
	run := func(name string, srv *benchServer, rt http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			benchGet(b, rt, srv.URL+"/a/b") // learn the space
			srv.reset()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				benchGet(b, rt, srv.URL+"/a/b")
			}
			b.ReportMetric(float64(srv.hits.Load())/float64(b.N), "roundtrips/req")
		})
	}
	base := func() *http.Transport { return &http.Transport{MaxIdleConnsPerHost: 4} }
	run("bare-basic", basicSrv, fixedHeader{base(), "Basic YWxpY2U6czNjcmV0"})
	run("anyauth-basic", basicSrv, &anyauth.Transport{Base: base(), Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(basicSrv.URL, "alice", "s3cret")})
	run("bare-digest", digestSrv, fixedHeader{base(), benchDigestAnswer})
	run("anyauth-digest", digestSrv, &anyauth.Transport{Base: base(), Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(digestSrv.URL, "alice", "s3cret")})
	run("icholy-digest", digestSrv, &digest.Transport{Transport: base(), Username: "alice", Password: "s3cret"})
}

// roundTripperFunc is a Base written as a function.
type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// cannedBase answers a request without Authorization with a 401 carrying
// challenge, and any other with one prebuilt 200 with an empty body, so
// that what is measured is the transport above it and nothing else. It
// counts its calls in *calls.
func cannedBase(challenge string, calls *int) http.RoundTripper {
	ok := &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{}, Body: http.NoBody}
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		*calls++
		if r.Header.Get("Authorization") != "" {
			return ok, nil
		}
		return &http.Response{
			StatusCode: 401, Status: "401 Unauthorized", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Www-Authenticate": {challenge}}, Body: http.NoBody, Request: r,
		}, nil
	})
}

// A Bearer answer of the size anyauth sends for the benchmark.
const (
	benchToken        = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLWEtYmVuY2gtdG9rZW4"
	benchBearerAnswer = "Bearer " + benchToken
	benchBasicAnswer  = "Basic YWxpY2U6czNjcmV0"
	inMemoryOrigin    = "http://127.0.0.1:8080"
)

// BenchmarkCachedInMemory measures what a transport adds to a request in
// a known space when Base costs nothing: Base returns a prebuilt 200, so
// network and server noise are gone. "base" is Base alone (the request
// already carries its header); "bare-*" clone the request and set a
// header of the real size by hand, as any RoundTripper that must not
// modify its request has to; anyauth-* and icholy-digest are the
// authenticating transports on the same Base. The request is built once.
func BenchmarkCachedInMemory(b *testing.B) {
	url := inMemoryOrigin + "/a/b"
	run := func(name, challenge string, rt func(base http.RoundTripper) http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			var calls int
			tr := rt(cannedBase(challenge, &calls))
			req, _ := http.NewRequest("GET", url, nil)
			if name == "base" {
				req.Header.Set("Authorization", benchBasicAnswer)
			}
			roundTrip := func() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				resp.Body.Close()
			}
			roundTrip() // learn the space
			calls = 0
			b.ReportAllocs()
			for b.Loop() {
				roundTrip()
			}
			b.ReportMetric(float64(calls)/float64(b.N), "roundtrips/req")
		})
	}
	basic, dig, bearer := `Basic realm="bench"`, benchDigestChallenge, `Bearer realm="bench"`
	run("base", basic, func(base http.RoundTripper) http.RoundTripper { return base })
	run("bare-basic", basic, func(base http.RoundTripper) http.RoundTripper { return fixedHeader{base, benchBasicAnswer} })
	run("anyauth-basic", basic, func(base http.RoundTripper) http.RoundTripper {
		return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(inMemoryOrigin, "alice", "s3cret")}
	})
	run("bare-digest", dig, func(base http.RoundTripper) http.RoundTripper { return fixedHeader{base, benchDigestAnswer} })
	run("anyauth-digest", dig, func(base http.RoundTripper) http.RoundTripper {
		return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(inMemoryOrigin, "alice", "s3cret")}
	})
	run("icholy-digest", dig, func(base http.RoundTripper) http.RoundTripper {
		return &digest.Transport{Transport: base, Username: "alice", Password: "s3cret"}
	})
	run("bare-bearer", bearer, func(base http.RoundTripper) http.RoundTripper { return fixedHeader{base, benchBearerAnswer} })
	run("anyauth-bearer", bearer, func(base http.RoundTripper) http.RoundTripper {
		return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.NewStaticBearer(benchToken, inMemoryOrigin)}}
	})
	// The same Bearer sharing its token through Redis: a request that
	// finds the token held must not touch the store.
	if store := benchRedisStore(b); store != nil {
		run("anyauth-bearer-redis", bearer, func(base http.RoundTripper) http.RoundTripper {
			bb := schemes.NewStaticBearer(benchToken, inMemoryOrigin)
			bb.Store, bb.StoreKey = store, schemes.TokenKey{TokenURL: "https://as.example/token", ClientID: "bench"}
			return &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{bb}}
		})
	}
}

// benchRedis is the redis-server of the benchmarks, started once.
var benchRedis struct {
	once  sync.Once
	r     *testserver.Redis
	store *redisstore.Store
	err   error
}

// benchRedisStore returns a token store on the benchmarks' redis-server,
// or nil (having said why) when redis-server cannot run here.
func benchRedisStore(b *testing.B) *redisstore.Store {
	benchRedis.once.Do(func() {
		if benchRedis.r, benchRedis.err = testserver.StartRedis(); benchRedis.err != nil {
			return
		}
		benchRedis.store, benchRedis.err = redisstore.New(redis.NewClient(&redis.Options{Addr: benchRedis.r.Addr}), redisstore.Options{Plaintext: true})
	})
	if benchRedis.err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatalf("redis-server: %v", benchRedis.err)
		}
		b.Logf("no anyauth-bearer-redis: %v", benchRedis.err)
		return nil
	}
	return benchRedis.store
}

// BenchmarkRoundTrips counts the requests the server sees, from a cold
// Transport, for 100 sequential requests to one path, for 100 spread
// over three directories of one realm, for 64 goroutines started
// together sending 10 each, and for 100 sequential requests of two users
// in turn (a CredentialFunc reading the context). It reports round trips
// per request; the ideal is N+1, N+3, N+64 and N+2 round trips. Run with
// -benchtime=1x.
func BenchmarkRoundTrips(b *testing.B) {
	for _, sc := range []struct {
		name, challenge string
		scheme          anyauth.Scheme
	}{
		{"digest", benchDigestChallenge, schemes.Digest{}},
		{"basic", `Basic realm="bench"`, schemes.Basic{}},
	} {
		srv := newBenchServer(sc.challenge)
		// The user of request i of goroutine g: alice, or, for the
		// "2ids" pattern, alice and bob in turn, told by the request's
		// context to a CredentialFunc.
		alice := anyauth.ForOrigin(srv.URL, "alice", "s3cret")
		bob := anyauth.ForOrigin(srv.URL, "bob", "b0b")
		perRequest := anyauth.CredentialFunc(func(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
			if ctx.Value(benchUserKey{}) == "bob" {
				return bob.Credentials(ctx, space)
			}
			return alice.Credentials(ctx, space)
		})
		pattern := func(name string, goroutines, each int, path func(g, i int) string, user func(i int) string) {
			b.Run(sc.name+"/"+name, func(b *testing.B) {
				var trips, reqs int64
				for b.Loop() {
					base := &http.Transport{MaxIdleConnsPerHost: goroutines}
					tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{sc.scheme}, Credentials: perRequest}
					srv.reset()
					start := make(chan struct{})
					var wg sync.WaitGroup
					for g := range goroutines {
						wg.Go(func() {
							<-start
							for i := range each {
								ctx := context.WithValue(context.Background(), benchUserKey{}, user(i))
								if err := get1ctx(ctx, tr, srv.URL+path(g, i)); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					close(start)
					wg.Wait()
					base.CloseIdleConnections()
					trips += srv.hits.Load()
					reqs += int64(goroutines * each)
				}
				b.ReportMetric(float64(trips)/float64(b.N), "roundtrips")
				b.ReportMetric(float64(reqs)/float64(b.N), "requests")
				b.ReportMetric(float64(trips)/float64(reqs), "roundtrips/req")
			})
		}
		onlyAlice := func(int) string { return "alice" }
		pattern("sequential", 1, 100, func(int, int) string { return "/a/b" }, onlyAlice)
		pattern("3dirs", 1, 100, func(_, i int) string { return []string{"/a/x", "/b/x", "/c/x"}[i%3] }, onlyAlice)
		pattern("64x10", 64, 10, func(int, int) string { return "/a/b" }, onlyAlice)
		pattern("2ids", 1, 100, func(int, int) string { return "/a/b" }, func(i int) string { return []string{"alice", "bob"}[i%2] })
		srv.Close()
	}
}

// BenchmarkDigestParallel sends cached requests to one Digest protection
// space from g goroutines at once, through the bare transport and through
// anyauth, so their throughputs can be set side by side for each g. It
// reports the most round trips that were under way in Base at once: were
// a lock held across a round trip, that would stay at 1.
func BenchmarkDigestParallel(b *testing.B) {
	srv := newBenchServer(benchDigestChallenge)
	defer srv.Close()
	for _, name := range []string{"bare", "anyauth"} {
		b.Run(name, func(b *testing.B) {
			for _, g := range []int{1, 4, 16, 64} {
				b.Run("g="+strconv.Itoa(g), func(b *testing.B) {
					tr := &http.Transport{MaxIdleConnsPerHost: 64}
					defer tr.CloseIdleConnections()
					base := &inflight{base: tr}
					var rt http.RoundTripper = fixedHeader{base, benchDigestAnswer}
					if name == "anyauth" {
						rt = &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(srv.URL, "alice", "s3cret")}
					}
					url := srv.URL + "/a/b"
					benchGet(b, rt, url) // learn the space
					srv.reset()
					base.max.Store(0)
					b.ReportAllocs()
					b.ResetTimer()
					goroutines := 1
					if g == 1 {
						for b.Loop() {
							benchGet(b, rt, url)
						}
					} else {
						procs := runtime.GOMAXPROCS(0)
						p := max(1, g/procs)
						goroutines = p * procs
						b.SetParallelism(p)
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								if err := get1(rt, url); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					b.ReportMetric(float64(goroutines), "goroutines")
					b.ReportMetric(float64(base.max.Load()), "max-inflight")
					b.ReportMetric(float64(srv.hits.Load())/float64(b.N), "roundtrips/req")
				})
			}
		})
	}
}

// zeros is an endless-looking body of n zero bytes that allocates nothing.
type zeros struct{ n int64 }

func (z *zeros) Read(p []byte) (int, error) {
	if z.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.n {
		p = p[:z.n]
	}
	clear(p)
	z.n -= int64(len(p))
	return len(p), nil
}

// heapObjects reads the bytes in live and not yet swept heap objects
// without stopping the world.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// uploadStats is what replaying a large upload cost the client's heap.
type uploadStats struct {
	allocated  uint64 // bytes allocated meanwhile (client and server)
	peakGrowth uint64 // most the heap grew over its size before, sampled every millisecond
	received   int64  // bytes the server received with the answer
}

// uploadAfter401 sends size bytes (with GetBody) to a server that
// challenges first, and returns how much the heap allocated and grew
// meanwhile.
func uploadAfter401(tb testing.TB, size int64) uploadStats {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="up"`)
			w.WriteHeader(401)
			return
		}
		n, _ := io.Copy(io.Discard, r.Body)
		got.Store(n)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, "u", "p")}
	req, _ := http.NewRequest("PUT", srv.URL+"/up", &zeros{size})
	req.ContentLength = size
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(&zeros{size}), nil }
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	heap0 := heapObjects()
	var peak atomic.Uint64
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if h := heapObjects(); h > heap0 && h-heap0 > peak.Load() {
				peak.Store(h - heap0)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	resp, err := tr.RoundTrip(req)
	close(done)
	sampler.Wait()
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
	return uploadStats{allocated: after.TotalAlloc - before.TotalAlloc, peakGrowth: peak.Load(), received: got.Load()}
}

// TestLargeUploadIsStreamed replays a 256 MiB upload after its 401 and
// checks it was streamed, never held: the heap allocates under 16 MiB.
func TestLargeUploadIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 256 MiB")
	}
	const size = 256 << 20
	st := uploadAfter401(t, size)
	if st.received != size {
		t.Fatalf("server received %d bytes, want %d", st.received, size)
	}
	if st.allocated > 16<<20 {
		t.Fatalf("replaying a %d MiB upload allocated %d MiB", size>>20, st.allocated>>20)
	}
	t.Logf("256 MiB upload replayed after a 401: %d KiB allocated, heap grew at most %d KiB", st.allocated>>10, st.peakGrowth>>10)
}

// BenchmarkUpload1GiB replays a 1 GiB upload after a 401 and reports the
// bytes allocated and the most the heap grew (run with -benchtime=1x).
func BenchmarkUpload1GiB(b *testing.B) {
	for b.Loop() {
		st := uploadAfter401(b, 1<<30)
		if st.received != 1<<30 {
			b.Fatalf("server received %d bytes", st.received)
		}
		b.ReportMetric(float64(st.allocated)/(1<<20), "MiB-allocated")
		b.ReportMetric(float64(st.peakGrowth)/(1<<20), "MiB-peak-heap-growth")
	}
}

// BenchmarkConnectionBound compares a request that rides a pooled
// connection a connection-bound scheme authenticated (no header: the
// connection is the credential, as with NTLM) with the same request
// through the bare http.Transport to an open path of the same server, so
// what differs is the Transport's pool: the identity lookup, taking and
// returning the connection.
func BenchmarkConnectionBound(b *testing.B) {
	cs := &connServer{nonces: map[string]string{}, users: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(cs.serve))
	defer srv.Close()
	run := func(name, url string, rt http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			benchGet(b, rt, url) // authenticate a connection
			cs.requests.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				benchGet(b, rt, url)
			}
			b.ReportMetric(float64(cs.requests.Load())/float64(b.N), "roundtrips/req")
		})
	}
	bare := &http.Transport{MaxIdleConnsPerHost: 4}
	defer bare.CloseIdleConnections()
	run("bare", srv.URL+"/open", bare)
	tr := &anyauth.Transport{Base: &http.Transport{MaxIdleConnsPerHost: 4}, Schemes: []anyauth.Scheme{connScheme{}}, Credentials: anyauth.ForOrigin(srv.URL, "alice", "pw")}
	defer tr.CloseIdleConnections()
	run("anyauth-bound", srv.URL+"/x", tr)
}
