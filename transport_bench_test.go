package anyauth_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"github.com/icholy/digest"
)

// lenientServer challenges requests without Authorization and accepts any
// that has one, so benchmarks measure the client, not a verifier.
func lenientServer(challenge string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	}))
	return srv, &hits
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
	req, _ := http.NewRequest("GET", url, nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// BenchmarkCachedRequest compares, in one run, a request in a known
// protection space through the bare http.Transport (a header of the same
// size set by hand), anyauth Basic, anyauth Digest SHA-256 and
// icholy/digest's Transport.
// It also reports round trips per request over the whole run.
func BenchmarkCachedRequest(b *testing.B) {
	basicSrv, basicHits := lenientServer(`Basic realm="bench"`)
	defer basicSrv.Close()
	digestSrv, digestHits := lenientServer(benchDigestChallenge)
	defer digestSrv.Close()
	run := func(name string, srv *httptest.Server, hits *atomic.Int64, rt http.RoundTripper) {
		b.Run(name, func(b *testing.B) {
			benchGet(b, rt, srv.URL+"/a/b") // learn the space
			hits.Store(0)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				benchGet(b, rt, srv.URL+"/a/b")
			}
			b.ReportMetric(float64(hits.Load())/float64(b.N), "roundtrips/req")
		})
	}
	base := func() *http.Transport { return &http.Transport{MaxIdleConnsPerHost: 4} }
	run("bare-basic", basicSrv, basicHits, fixedHeader{base(), "Basic YWxpY2U6czNjcmV0"})
	run("anyauth-basic", basicSrv, basicHits, &anyauth.Transport{Base: base(), Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(basicSrv.URL, "alice", "s3cret")})
	run("bare-digest", digestSrv, digestHits, fixedHeader{base(), benchDigestAnswer})
	run("anyauth-digest", digestSrv, digestHits, &anyauth.Transport{Base: base(), Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(digestSrv.URL, "alice", "s3cret")})
	run("icholy-digest", digestSrv, digestHits, &digest.Transport{Transport: base(), Username: "alice", Password: "s3cret"})
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

// uploadAfter401 sends size bytes (with GetBody) to a server that
// challenges first, and returns how much the heap allocated meanwhile.
func uploadAfter401(tb testing.TB, size int64) (allocated uint64, received int64) {
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
	resp, err := tr.RoundTrip(req)
	if err != nil {
		tb.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	runtime.ReadMemStats(&after)
	if resp.StatusCode != 200 {
		tb.Fatalf("status %d", resp.StatusCode)
	}
	return after.TotalAlloc - before.TotalAlloc, got.Load()
}

// TestLargeUploadIsStreamed replays a 256 MiB upload after its 401 and
// checks it was streamed, never held: the heap allocates under 16 MiB.
func TestLargeUploadIsStreamed(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 256 MiB")
	}
	const size = 256 << 20
	alloc, got := uploadAfter401(t, size)
	if got != size {
		t.Fatalf("server received %d bytes, want %d", got, size)
	}
	if alloc > 16<<20 {
		t.Fatalf("replaying a %d MiB upload allocated %d MiB", size>>20, alloc>>20)
	}
	t.Logf("256 MiB upload replayed after a 401: %d KiB allocated", alloc>>10)
}

// BenchmarkUpload1GiB replays a 1 GiB upload after a 401 and reports the
// bytes allocated (run with -benchtime=1x).
func BenchmarkUpload1GiB(b *testing.B) {
	for b.Loop() {
		alloc, _ := uploadAfter401(b, 1<<30)
		b.ReportMetric(float64(alloc)/(1<<20), "MiB-allocated")
	}
}
