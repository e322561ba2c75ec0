// Package redisclientbench compares github.com/redis/go-redis/v9 and
// github.com/valkey-io/valkey-go on what tokencache/redisstore does, side
// by side against one redis-server from internal/testserver. It is a
// module of its own so that the root module never requires valkey-go.
//
//	go test -bench . -benchmem -count 3   # TestReconnect prints its figures
//	./footprint.sh                         # binary size and modules
//
// On a noisy machine, interleave the clients by repeating whole runs and
// compare with benchstat (names need a key=value part for -col):
//
//	go test -c -o /tmp/rcb.test
//	for i in 1 2 3 4 5 6 7 8; do /tmp/rcb.test -test.run '^$' -test.bench . -test.benchmem; done |
//		sed -E 's#/(go-redis|valkey)-([0-9]+)#/lib=\1-\2#' >/tmp/rcb.txt
//	benchstat -col /lib /tmp/rcb.txt
package redisclientbench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth/internal/testserver"
	"github.com/redis/go-redis/v9"
)

var srv *testserver.Redis

func TestMain(m *testing.M) {
	r, err := testserver.StartRedis()
	if err != nil {
		fmt.Fprintln(os.Stderr, "redisclientbench:", err)
		if errors.Is(err, testserver.ErrNotInstalled) && os.Getenv("CI") == "" {
			os.Exit(0)
		}
		os.Exit(1)
	}
	srv = r
	code := m.Run()
	r.Close()
	os.Exit(code)
}

var libs = []struct {
	name string
	open func(addr string) (client, error)
}{
	{"go-redis", newGoRedis},
	{"valkey", newValkey},
}

func open(tb testing.TB, f func(string) (client, error)) client {
	tb.Helper()
	c, err := f(srv.Addr)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.close)
	return c
}

const (
	tokenKey  = "anyauth:bearer:{bench}:token"
	leaseKey  = "anyauth:bearer:{bench}:lease"
	channel   = "anyauth:bearer:{bench}:changed"
	leaseTTL  = 10 * time.Second
	entrySize = 1024
)

// entry is a stand-in for an encrypted token entry of about 1 KB.
func entry() string {
	b := make([]byte, entrySize*3/4)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func putEntry(tb testing.TB, c client) {
	tb.Helper()
	if err := c.set(context.Background(), tokenKey, entry(), time.Hour); err != nil {
		tb.Fatal(err)
	}
}

func getOnce(b *testing.B, ctx context.Context, get func(context.Context, string) (string, error)) {
	v, err := get(ctx, tokenKey)
	if err != nil || len(v) != entrySize {
		b.Fatalf("GET: %d bytes, %v", len(v), err)
	}
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	cs := make([]client, len(libs))
	for i, lib := range libs {
		cs[i] = open(b, lib.open)
		putEntry(b, cs[i])
	}
	// Each mode runs both clients back to back.
	for i, lib := range libs {
		b.Run("seq/"+lib.name, func(b *testing.B) {
			for b.Loop() {
				getOnce(b, ctx, cs[i].get)
			}
		})
	}
	for _, p := range []int{1, 8} {
		for i, lib := range libs {
			b.Run(fmt.Sprintf("parallel%d/%s", p, lib.name), func(b *testing.B) {
				b.SetParallelism(p)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						getOnce(b, ctx, cs[i].get)
					}
				})
			})
		}
	}
	for i, lib := range libs {
		if v, ok := cs[i].(valkeyGo); ok {
			b.Run("seq-clientcache/"+lib.name, func(b *testing.B) {
				for b.Loop() {
					getOnce(b, ctx, v.getCached)
				}
			})
		}
	}
}

// BenchmarkLease is one SET NX PX and one EVALSHA compare-and-delete.
func BenchmarkLease(b *testing.B) {
	ctx := context.Background()
	const owner = "0123456789abcdef0123456789abcdef"
	for _, lib := range libs {
		c := open(b, lib.open)
		b.Run(lib.name, func(b *testing.B) {
			for b.Loop() {
				ok, err := c.lease(ctx, leaseKey, owner, leaseTTL)
				if err != nil || !ok {
					b.Fatalf("SET NX: %v %v", ok, err)
				}
				if err := c.release(ctx, leaseKey, owner, channel); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWake times a PUBLISH by one client until a subscribed client
// of the same library has the message; p50 and p99 over b.N messages.
func BenchmarkWake(b *testing.B) {
	ctx := context.Background()
	for _, lib := range libs {
		pub, sub := open(b, lib.open), open(b, lib.open)
		b.Run(lib.name, func(b *testing.B) {
			wait, stop, err := sub.subscribe(ctx, channel)
			if err != nil {
				b.Fatal(err)
			}
			defer stop()
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				if err := pub.publish(ctx, channel, "put"); err != nil {
					b.Fatal(err)
				}
				if err := wait(ctx); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkSubscribeWait is one redisstore.Wait woken by a PUBLISH:
// subscribe (confirmed), PUBLISH from another client, receive,
// unsubscribe.
func BenchmarkSubscribeWait(b *testing.B) {
	ctx := context.Background()
	for _, lib := range libs {
		pub, sub := open(b, lib.open), open(b, lib.open)
		b.Run(lib.name, func(b *testing.B) {
			dials := connections(b)
			for b.Loop() {
				wait, stop, err := sub.subscribe(ctx, channel)
				if err != nil {
					b.Fatal(err)
				}
				if err := pub.publish(ctx, channel, "released"); err != nil {
					b.Fatal(err)
				}
				if err := wait(ctx); err != nil {
					b.Fatal(err)
				}
				if err := stop(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(connections(b)-dials)/float64(b.N), "dials/op")
		})
	}
}

// connections is the server's total_connections_received.
func connections(tb testing.TB) int {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	info, err := c.InfoMap(context.Background(), "stats").Result()
	if err != nil {
		tb.Fatal(err)
	}
	n, err := strconv.Atoi(info["Stats"]["total_connections_received"])
	if err != nil {
		tb.Fatal(err)
	}
	return n - 1 // this one
}

// TestReconnect stops redis-server under both clients, times a GET and a
// SET during the outage (2 s context each), starts it again and times
// the first successful GET after the server answers PING again; then
// restarts it with no command in between and times the next GET.
func TestReconnect(t *testing.T) {
	if testing.Short() {
		t.Skip("stops and restarts redis-server")
	}
	cs := make([]client, len(libs))
	for i, lib := range libs {
		cs[i] = open(t, lib.open)
		putEntry(t, cs[i])
	}
	each := func(f func(i int, c client) string) []string {
		out := make([]string, len(cs))
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Go(func() { out[i] = f(i, c) })
		}
		wg.Wait()
		return out
	}
	timed := func(f func(context.Context) error) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		t0 := time.Now()
		err := f(ctx)
		return fmt.Sprintf("%v (%v)", time.Since(t0).Round(10*time.Microsecond), err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	down := each(func(i int, c client) string {
		get := timed(func(ctx context.Context) error { _, err := c.get(ctx, tokenKey); return err })
		set := timed(func(ctx context.Context) error { return c.set(ctx, tokenKey, "x", time.Minute) })
		return "GET " + get + ", SET " + set
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	back := each(func(i int, c client) string {
		failed, first := 0, error(nil)
		for time.Since(up) < 20*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := c.get(ctx, tokenKey)
			cancel()
			if err == nil {
				return fmt.Sprintf("%v after PING answered, %d failed GETs before (first: %v)",
					time.Since(up).Round(10*time.Microsecond), failed, first)
			}
			if failed++; first == nil {
				first = err
			}
			time.Sleep(time.Millisecond)
		}
		return fmt.Sprintf("no GET succeeded in 20 s (%d failed, first: %v)", failed, first)
	})
	// A restart between two commands: the clients' connections are dead
	// but no command has noticed yet.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	idle := each(func(i int, c client) string {
		return timed(func(ctx context.Context) error { _, err := c.get(ctx, tokenKey); return err })
	})
	for i, lib := range libs {
		// Printed, not logged, so that the figures show without -v.
		fmt.Printf("reconnect %-8s outage: %s\n", lib.name, down[i])
		fmt.Printf("reconnect %-8s restart: first OK GET %s\n", lib.name, back[i])
		fmt.Printf("reconnect %-8s idle restart: next GET %s\n", lib.name, idle[i])
	}
}
