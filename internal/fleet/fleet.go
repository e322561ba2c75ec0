// Package fleet runs a fleet of OS processes that call one OAuth-protected
// API with one client, each process with its own token cache, and counts
// what they did: the world of the "Running many replicas" measurements
// (examples/fleet) and of the Redis fleet tests. A process of the fleet is
// the calling program re-executed with the Config in its environment; its
// main (or TestMain) calls RunWorker first thing.
package fleet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"github.com/anyauth/anyauth/tokencache/redisstore"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Cache says how a process keeps its tokens.
type Cache string

const (
	// XOAuth2 is golang.org/x/oauth2: one ReuseTokenSource per process
	// (clientcredentials.Config.Client, oauth2.Config.Client).
	XOAuth2 Cache = "x/oauth2"
	// Memory is an anyauth Bearer with its in-process cache only.
	Memory Cache = "anyauth in-memory"
	// Redis is an anyauth Bearer on tokencache/redisstore.
	Redis Cache = "anyauth on Redis"
)

// Grant says how tokens are obtained.
type Grant string

const (
	// ClientCredentials fetches tokens with the client credentials grant.
	ClientCredentials Grant = "client_credentials"
	// RefreshToken redeems a refresh token that rotates on every use,
	// starting from Config.RefreshToken.
	RefreshToken Grant = "refresh_token"
)

// Config is one fleet run.
type Config struct {
	Procs, Goroutines int
	Duration          time.Duration
	// Pace is the pause between two requests of a goroutine.
	Pace  time.Duration
	Cache Cache
	Grant Grant

	TokenURL, ClientID, ClientSecret string
	Scopes                           []string
	// Resource is sent as the "resource" parameter (RFC 8707) of client
	// credentials requests, when set.
	Resource string
	// RefreshToken seeds the RefreshToken grant.
	RefreshToken string
	// Subject names the user of the RefreshToken grant in the store key.
	Subject string
	// URL is what every request GETs.
	URL string
	// RedisAddr and RedisKey (hex, 32 bytes) configure the Redis cache.
	RedisAddr, RedisKey string
}

// Result is what the fleet did.
type Result struct {
	OK, Failed int
	// Warns and Infos count the log records the processes' Transports
	// wrote at those levels (the store's outage and recovery).
	Warns, Infos int
	// FailedSamples holds a few failures, for the report.
	FailedSamples []string
	// Took is the wall time from the first process's start to the last
	// one's end.
	Took time.Duration
}

// envConfig carries the Config to a worker process.
const envConfig = "ANYAUTH_FLEET_WORKER"

// resultPrefix starts the line a worker prints its Result on.
const resultPrefix = "FLEETRESULT "

// Run starts cfg.Procs processes of cmd (the calling program, with the
// arguments it needs to reach RunWorker at once) and sums their results.
// It fails when a process fails or prints no result.
func Run(ctx context.Context, cfg Config, cmd ...string) (Result, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return Result{}, err
	}
	start := time.Now()
	type proc struct {
		cmd *exec.Cmd
		out bytes.Buffer
	}
	procs := make([]*proc, cfg.Procs)
	for i := range procs {
		p := &proc{cmd: exec.CommandContext(ctx, cmd[0], cmd[1:]...)}
		p.cmd.Env = append(os.Environ(), envConfig+"="+string(data))
		p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
		if err := p.cmd.Start(); err != nil {
			return Result{}, fmt.Errorf("fleet: starting process %d: %w", i, err)
		}
		procs[i] = p
	}
	var sum Result
	var errs []error
	for i, p := range procs {
		if err := p.cmd.Wait(); err != nil {
			errs = append(errs, fmt.Errorf("fleet: process %d: %w\n%s", i, err, tail(p.out.String())))
			continue
		}
		var r Result
		found := false
		sc := bufio.NewScanner(&p.out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
				found = json.Unmarshal([]byte(rest), &r) == nil
			}
		}
		if !found {
			errs = append(errs, fmt.Errorf("fleet: process %d printed no result:\n%s", i, tail(p.out.String())))
			continue
		}
		sum.OK += r.OK
		sum.Failed += r.Failed
		sum.Warns += r.Warns
		sum.Infos += r.Infos
		if len(sum.FailedSamples) < 5 {
			sum.FailedSamples = append(sum.FailedSamples, r.FailedSamples...)
		}
	}
	sum.Took = time.Since(start)
	return sum, errors.Join(errs...)
}

func tail(s string) string {
	if len(s) > 2000 {
		return "..." + s[len(s)-2000:]
	}
	return s
}

// RunWorker returns at once in a process that is not a fleet worker.
// In a worker it runs the Config it was given, prints its Result and
// exits.
func RunWorker() {
	data := os.Getenv(envConfig)
	if data == "" {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(data), &cfg); err != nil {
		fmt.Println("fleet worker:", err)
		os.Exit(2)
	}
	r, err := work(cfg)
	if err != nil {
		fmt.Println("fleet worker:", err)
		os.Exit(2)
	}
	out, _ := json.Marshal(r)
	fmt.Println(resultPrefix + string(out))
	os.Exit(0)
}

// work is one process of the fleet.
func work(cfg Config) (Result, error) {
	logs := &levelCount{}
	client, closeClient, err := newClient(cfg, slog.New(logs))
	if err != nil {
		return Result{}, err
	}
	defer closeClient()
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var samples []string
	deadline := time.Now().Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Goroutines {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				req, _ := http.NewRequestWithContext(ctx, "GET", cfg.URL, nil)
				resp, err := client.Do(req)
				why := ""
				switch {
				case err != nil:
					why = err.Error()
				case resp.StatusCode != http.StatusOK:
					why = resp.Status + " " + resp.Header.Get("WWW-Authenticate")
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				cancel()
				if why == "" {
					ok.Add(1)
				} else {
					failed.Add(1)
					mu.Lock()
					if len(samples) < 3 {
						samples = append(samples, why)
					}
					mu.Unlock()
				}
				time.Sleep(cfg.Pace)
			}
		})
	}
	wg.Wait()
	return Result{OK: int(ok.Load()), Failed: int(failed.Load()), Warns: int(logs.warns.Load()), Infos: int(logs.infos.Load()), FailedSamples: samples}, nil
}

// newClient is the process's HTTP client for cfg.Cache and cfg.Grant.
func newClient(cfg Config, log *slog.Logger) (*http.Client, func(), error) {
	base := &http.Transport{MaxIdleConnsPerHost: cfg.Goroutines + 2}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Transport: base, Timeout: 10 * time.Second})
	cc := &clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL, Scopes: cfg.Scopes, AuthStyle: oauth2.AuthStyleInHeader}
	if cfg.Resource != "" {
		cc.EndpointParams = map[string][]string{"resource": {cfg.Resource}}
	}
	oc := &oauth2.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, Endpoint: oauth2.Endpoint{TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInHeader}, Scopes: cfg.Scopes}
	seed := &oauth2.Token{RefreshToken: cfg.RefreshToken}
	closeAll := func() { base.CloseIdleConnections() }
	if cfg.Cache == XOAuth2 {
		if cfg.Grant == RefreshToken {
			return oc.Client(ctx, seed), closeAll, nil
		}
		return cc.Client(ctx), closeAll, nil
	}
	var b *schemes.Bearer
	if cfg.Grant == RefreshToken {
		b = schemes.NewRefreshBearer(oc, seed, cfg.URL)
		b.StoreKey.Subject = cfg.Subject
		renew := b.Renew
		b.Renew = func(c context.Context, last *oauth2.Token) (*oauth2.Token, error) {
			return renew(context.WithValue(c, oauth2.HTTPClient, &http.Client{Transport: base}), last)
		}
	} else {
		b = schemes.NewClientCredentialsBearer(cc, cfg.URL)
		b.Fetch = func(c context.Context) (*oauth2.Token, error) {
			return cc.Token(context.WithValue(c, oauth2.HTTPClient, &http.Client{Transport: base}))
		}
	}
	if cfg.Cache == Redis {
		secret, err := hex.DecodeString(cfg.RedisKey)
		if err != nil {
			return nil, nil, fmt.Errorf("fleet: RedisKey: %w", err)
		}
		rdb := redis.NewClient(&redis.Options{Addr: cfg.RedisAddr, DialTimeout: time.Second, ReadTimeout: time.Second, WriteTimeout: time.Second})
		store, err := redisstore.New(rdb, redisstore.Options{Keys: []redisstore.Key{{ID: "fleet", Secret: secret}}, Logger: log})
		if err != nil {
			return nil, nil, err
		}
		b.Store = store
		closeAll = func() { rdb.Close(); base.CloseIdleConnections() }
	}
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{b}, Logger: log}
	return &http.Client{Transport: tr}, closeAll, nil
}

// levelCount is a slog.Handler that counts Warn and Info records.
type levelCount struct{ warns, infos atomic.Int64 }

func (c *levelCount) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (c *levelCount) WithAttrs([]slog.Attr) slog.Handler           { return c }
func (c *levelCount) WithGroup(string) slog.Handler                { return c }
func (c *levelCount) Handle(_ context.Context, r slog.Record) error {
	switch {
	case r.Level >= slog.LevelWarn:
		c.warns.Add(1)
	case r.Level >= slog.LevelInfo:
		c.infos.Add(1)
	}
	return nil
}
