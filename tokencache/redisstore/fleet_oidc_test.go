package redisstore_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/anyauth/anyauth/internal/fleet"
	"github.com/anyauth/anyauth/internal/testserver"
)

// The fleet tests run OS processes (this test binary, re-executed: see
// TestMain) against oidc-provider and Apache mod_auth_openidc validating
// its JWTs, sharing tokens through a real redis-server. Access tokens
// live 6 s, so a 15 s run spans about three refreshes.

const (
	fleetTTL      = 6 * time.Second
	fleetRun      = 15 * time.Second
	fleetProcs    = 4
	fleetRoutines = 4
	fleetPace     = 20 * time.Millisecond
)

var fleetWorld struct {
	once sync.Once
	w    *fleet.World
	err  error
}

// sharedFleetWorld starts the provider, the API and Redis once per test
// binary; TestMain stops them.
func sharedFleetWorld(t *testing.T) *fleet.World {
	t.Helper()
	fleetWorld.once.Do(func() { fleetWorld.w, fleetWorld.err = fleet.StartWorld(fleetTTL) })
	if err := fleetWorld.err; err != nil {
		skipOrFail(t, "the fleet's servers (oidc-provider, mod_auth_openidc, redis-server)", err)
	}
	return fleetWorld.w
}

func closeFleetWorld() {
	if fleetWorld.w != nil {
		fleetWorld.w.Close()
	}
}

// runFleet runs cfg with the package's sizes and returns the result and
// the token endpoint's answers during the run.
func runFleet(t *testing.T, w *fleet.World, cfg fleet.Config) (fleet.Result, testserver.OIDCTokenCounts) {
	t.Helper()
	cfg.Procs, cfg.Goroutines, cfg.Duration, cfg.Pace = fleetProcs, fleetRoutines, fleetRun, fleetPace
	before := w.Provider.TokenRequests()
	res, err := fleet.Run(context.Background(), cfg, os.Args[0], "-test.run=^$")
	counts := w.Provider.TokenRequests().Sub(before)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s, %s: %d processes x %d goroutines, %v, %v tokens: %d requests ok, %d failed %q; token endpoint: %s",
		cfg.Cache, cfg.Grant, fleetProcs, fleetRoutines, fleetRun, fleetTTL, res.OK, res.Failed, res.FailedSamples, counts)
	return res, counts
}

// maxFetches is the most token requests one cache may make in a run: one
// at the start and one per 80% of a lifetime (refreshed ahead), plus one.
func maxFetches() int { return 1 + int(fleetRun/(fleetTTL*8/10)) + 1 }

// TestFleetClientCredentialsOnRedis: the fleet fetches one token per
// expiry between its processes, and no request fails.
func TestFleetClientCredentialsOnRedis(t *testing.T) {
	w := sharedFleetWorld(t)
	cfg, err := w.Config(context.Background(), fleet.Redis, fleet.ClientCredentials)
	if err != nil {
		t.Fatal(err)
	}
	res, counts := runFleet(t, w, cfg)
	if res.Failed != 0 || res.OK == 0 || res.Warns != 0 {
		t.Errorf("%d failed, %d ok, %d Warn records; want 0 failed and no Warn", res.Failed, res.OK, res.Warns)
	}
	if n := counts.Success["client_credentials"]; n < 2 || n > maxFetches() || counts.Failures() != 0 {
		t.Errorf("%d tokens issued (%d errors) for %d processes, want 2..%d: one per expiry for the whole fleet", n, counts.Failures(), fleetProcs, maxFetches())
	}
}

// TestFleetRotatingRefreshTokenOnRedis: processes seeded with one login's
// refresh token redeem each rotation once between them: no invalid_grant,
// so the grant survives, and no request fails. The same fleet with
// in-memory caches loses the grant at the first refresh.
func TestFleetRotatingRefreshTokenOnRedis(t *testing.T) {
	w := sharedFleetWorld(t)
	for _, cache := range []fleet.Cache{fleet.Redis, fleet.Memory} {
		cfg, err := w.Config(context.Background(), cache, fleet.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		res, counts := runFleet(t, w, cfg)
		if cache == fleet.Memory {
			if counts.InvalidGrant == 0 {
				t.Errorf("in-memory caches got no invalid_grant: the test does not show what the store prevents")
			}
			continue
		}
		if counts.InvalidGrant != 0 || counts.GrantsRevoked != 0 || res.Failed != 0 || res.OK == 0 {
			t.Errorf("%d invalid_grant, %d grants revoked, %d failed requests, %d ok; want 0, 0, 0 and some", counts.InvalidGrant, counts.GrantsRevoked, res.Failed, res.OK)
		}
		if n := counts.Success["refresh_token"]; n < 2 || n > maxFetches() {
			t.Errorf("%d refreshes, want 2..%d: one per expiry for the whole fleet", n, maxFetches())
		}
	}
}

// TestFleetRedisOutage: Redis stops for 5 s of the run and comes back: no
// request fails; while it is down each process fetches on its own (at most
// one per process per expiry); each logs one Warn and one Info.
func TestFleetRedisOutage(t *testing.T) {
	w := sharedFleetWorld(t)
	own := testserver.StartRedisForTest(t) // stopped here, so not the shared one
	cfg, err := w.Config(context.Background(), fleet.Redis, fleet.ClientCredentials)
	if err != nil {
		t.Fatal(err)
	}
	cfg.RedisAddr = own.Addr
	cfg.Procs, cfg.Goroutines, cfg.Duration, cfg.Pace = fleetProcs, fleetRoutines, fleetRun, fleetPace
	before := w.Provider.TokenRequests()
	var down, up testserver.OIDCTokenCounts
	go func() {
		time.Sleep(4 * time.Second)
		down = w.Provider.TokenRequests()
		own.Stop()
		time.Sleep(5 * time.Second)
		up = w.Provider.TokenRequests()
		if err := own.Start(); err != nil {
			t.Error(err)
		}
	}()
	res, err := fleet.Run(context.Background(), cfg, os.Args[0], "-test.run=^$")
	after := w.Provider.TokenRequests()
	if err != nil {
		t.Fatal(err)
	}
	during := up.Sub(down).Success["client_credentials"]
	t.Logf("Redis down 4 s..9 s of %v: %d ok, %d failed %q; tokens issued before %d, during %d, after %d; %d Warn, %d Info",
		fleetRun, res.OK, res.Failed, res.FailedSamples, down.Sub(before).Successes(), during, after.Sub(up).Successes(), res.Warns, res.Infos)
	if res.Failed != 0 {
		t.Errorf("%d requests failed during the outage", res.Failed)
	}
	// 5 s down with 6 s tokens: at most two expiries per process.
	if during > 2*fleetProcs {
		t.Errorf("%d tokens issued while Redis was down, want at most %d (one per process per expiry)", during, 2*fleetProcs)
	}
	if res.Warns < 1 || res.Warns > fleetProcs || res.Infos < 1 || res.Infos > fleetProcs {
		t.Errorf("%d Warn and %d Info records from %d processes, want one each per process that saw the outage and the recovery", res.Warns, res.Infos, fleetProcs)
	}
}

// skipOrFail ends a test whose servers could not start: a failure under
// CI, else a skip that says why.
func skipOrFail(t *testing.T, what string, err error) {
	t.Helper()
	if testserver.InCI() || !isNotInstalled(err) {
		t.Fatalf("%s: %v", what, err)
	}
	t.Skipf("%s not installed (make test installs them): %v", what, err)
}
