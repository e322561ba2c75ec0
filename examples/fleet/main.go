// Command fleet measures what a fleet of replicas costs a token endpoint:
// it starts oidc-provider (the certified Node.js OpenID provider), Apache
// mod_auth_openidc validating its JWT access tokens, and a redis-server,
// all on 127.0.0.1, then runs the same fleet of OS processes three ways,
// golang.org/x/oauth2 (one ReuseTokenSource per process), anyauth with
// its in-memory cache and anyauth on Redis, and prints a Markdown table of
// the token requests the provider answered, the invalid_grant errors of
// rotating refresh tokens, and a Redis outage.
//
//	go run ./examples/fleet                       # 4 processes x 4 goroutines, 20 s, 10 s tokens
//	go run ./examples/fleet -procs 16 -goroutines 8 -duration 90s -ttl 20s -outage 30s
//
// It needs what make deps installs: node and npm (oidc-provider),
// apache2 with libapache2-mod-auth-openidc, and redis-server.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/anyauth/anyauth/internal/fleet"
	"github.com/anyauth/anyauth/internal/testserver"
)

func main() {
	fleet.RunWorker() // returns at once unless this process is a worker
	procs := flag.Int("procs", 4, "processes in the fleet")
	goroutines := flag.Int("goroutines", 4, "goroutines sending requests in each process")
	duration := flag.Duration("duration", 20*time.Second, "length of each run")
	ttl := flag.Duration("ttl", 10*time.Second, "lifetime of the access tokens")
	pace := flag.Duration("pace", 250*time.Millisecond, "pause between two requests of a goroutine")
	outage := flag.Duration("outage", 0, "stop Redis this long in the middle of one more run on Redis (0: duration/3)")
	flag.Parse()
	if *outage == 0 {
		*outage = *duration / 3
	}
	if err := run(*procs, *goroutines, *duration, *ttl, *pace, *outage); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run(procs, goroutines int, duration, ttl, pace, outage time.Duration) error {
	ctx := context.Background()
	say := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "fleet: "+format+"\n", a...) }
	say("starting oidc-provider, mod_auth_openidc and redis-server")
	w, err := fleet.StartWorld(ttl)
	if err != nil {
		return err
	}
	defer w.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	one := func(cache fleet.Cache, grant fleet.Grant, during func()) (fleet.Result, testserver.OIDCTokenCounts, error) {
		cfg, err := w.Config(ctx, cache, grant)
		if err != nil {
			return fleet.Result{}, testserver.OIDCTokenCounts{}, err
		}
		cfg.Procs, cfg.Goroutines, cfg.Duration, cfg.Pace = procs, goroutines, duration, pace
		say("%s, %s: %d processes x %d goroutines for %v", cache, grant, procs, goroutines, duration)
		before := w.Provider.TokenRequests()
		if during != nil {
			go during()
		}
		res, err := fleet.Run(ctx, cfg, self)
		counts := w.Provider.TokenRequests().Sub(before)
		say("  %d ok, %d failed; token endpoint: %s", res.OK, res.Failed, counts)
		return res, counts, err
	}
	caches := []fleet.Cache{fleet.XOAuth2, fleet.Memory, fleet.Redis}
	expiries := float64(duration) / float64(ttl)
	var issued, grants []string
	for _, c := range caches {
		res, counts, err := one(c, fleet.ClientCredentials, nil)
		if err != nil {
			return err
		}
		issued = append(issued, fmt.Sprintf("%d token requests, %d failed requests of %d", counts.Successes()+counts.Failures(), res.Failed, res.OK+res.Failed))
	}
	for _, c := range caches {
		res, counts, err := one(c, fleet.RefreshToken, nil)
		if err != nil {
			return err
		}
		grants = append(grants, fmt.Sprintf("%d invalid_grant (grant revoked: %v), %d refreshes, %d failed requests of %d",
			counts.InvalidGrant, counts.GrantsRevoked > 0, counts.Success["refresh_token"], res.Failed, res.OK+res.Failed))
	}
	// The outage: Redis stops a third of the way in, for outage.
	var down, up testserver.OIDCTokenCounts
	res, total, err := one(fleet.Redis, fleet.ClientCredentials, func() {
		time.Sleep(duration / 3)
		down = w.Provider.TokenRequests()
		w.Redis.Stop()
		time.Sleep(outage)
		up = w.Provider.TokenRequests()
		if err := w.Redis.Start(); err != nil {
			say("restarting Redis: %v", err)
		}
	})
	if err != nil {
		return err
	}
	during := up.Sub(down).Successes()
	outageCell := fmt.Sprintf("%d failed of %d; %d token requests while down (%.1f expiries, %d processes), %d in all; %d Warn, %d Info",
		res.Failed, res.OK+res.Failed, during, float64(outage)/float64(ttl), procs, total.Successes(), res.Warns, res.Infos)

	fmt.Printf("\n| case | %s |\n| --- | --- | --- | --- |\n", strings.Join(func() []string {
		var s []string
		for _, c := range caches {
			s = append(s, string(c))
		}
		return s
	}(), " | "))
	fmt.Printf("| %d processes x %d goroutines, %v, %v tokens (%.1f expiries): token requests at the provider | %s |\n",
		procs, goroutines, duration, ttl, expiries, strings.Join(issued, " | "))
	fmt.Printf("| rotating refresh tokens, %d processes, %v: invalid_grant | %s |\n", procs, duration, strings.Join(grants, " | "))
	fmt.Printf("| Redis stopped for %v of the %v: failed requests; token requests | | | %s |\n", outage, duration, outageCell)
	return nil
}
