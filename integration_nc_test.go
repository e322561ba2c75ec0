package anyauth_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/anyauth/anyauth/schemes"
)

// Digest under concurrency against Apache's AuthDigestNcCheck,
// which wants each client's (opaque's) nonce counts one after the other.
// Each request answers on a lane of its own (a nonce no other request
// uses meanwhile), so no nc overtakes another, and requests challenged at
// the same time share one session: N requests by G goroutines cost at
// most N + G round trips.

// concurrentPosts sends goroutines × each POSTs of a small body to url
// through tr and returns how many did not end in 200 with the right echo.
// The POSTs carry Idempotency-Key, so that net/http retries one whose
// kept-alive connection Apache closed as it was reused (an event-MPM
// race that has nothing to do with authentication).
func concurrentPosts(t *testing.T, tr http.RoundTripper, url string, goroutines, each int) int32 {
	t.Helper()
	var wg sync.WaitGroup
	var failed atomic.Int32
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				body := fmt.Sprintf("post %d of goroutine %d", i, g)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader([]byte(body)))
				req.Header.Set("Idempotency-Key", fmt.Sprintf("%d-%d", g, i))
				resp, err := tr.RoundTrip(req)
				if err != nil {
					cancel()
					if failed.Add(1) <= 3 {
						t.Log(err)
					}
					continue
				}
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				cancel()
				if resp.StatusCode != 200 || !strings.Contains(string(got), testserver.EchoReply([]byte(body))) {
					if failed.Add(1) <= 3 {
						t.Logf("%s: %q", resp.Status, got)
					}
				}
			}
		}()
	}
	wg.Wait()
	return failed.Load()
}

func TestApacheDigestNcCheckConcurrent(t *testing.T) {
	s := apache(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(s.URL, testserver.User, testserver.Password)}
	defer tr.CloseIdleConnections()
	const goroutines, each = 64, 10
	path := testserver.PathDigest + "echo"
	before, before401 := s.Hits(path)
	failed := concurrentPosts(t, tr, s.URL+path, goroutines, each)
	total, unauth := s.Hits(path)
	t.Logf("%d x %d POSTs: %d failed, %d round trips, %d 401s", goroutines, each, failed, total-before, unauth-before401)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed", failed, goroutines*each)
	}
	if total-before > goroutines*each+goroutines {
		t.Fatalf("%d round trips, want at most %d (N + goroutines)", total-before, goroutines*each+goroutines)
	}
}

func TestSquidToApacheDigestNcCheckConcurrent(t *testing.T) {
	sq, s := realSquid(t), apache(t)
	proxy := sq.URL(testserver.SquidDigest, nil)
	base := &http.Transport{Proxy: http.ProxyURL(proxy), MaxConnsPerHost: 32}
	defer base.CloseIdleConnections()
	tr := &anyauth.Transport{
		Base:             base,
		Schemes:          []anyauth.Scheme{schemes.Digest{}},
		Credentials:      anyauth.ForOrigin(s.URL, testserver.User, testserver.Password),
		ProxyCredentials: anyauth.ForOrigin(proxy.String(), testserver.User, testserver.Password),
	}
	defer tr.CloseIdleConnections()
	const goroutines, each = 16, 10
	path := testserver.PathDigest + "echo"
	before, before401 := s.Hits(path)
	failed := concurrentPosts(t, tr, s.URL+path, goroutines, each)
	total, unauth := s.Hits(path)
	t.Logf("through Squid, %d x %d POSTs: %d failed, Apache saw %d round trips, %d 401s", goroutines, each, failed, total-before, unauth-before401)
	if failed != 0 {
		t.Fatalf("%d of %d requests failed", failed, goroutines*each)
	}
}
