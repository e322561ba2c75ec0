package main

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// The real servers of these tests, each started on first use, once per
// test binary, and shared; TestMain stops them. Under CI=true a server
// that is not installed fails the test; elsewhere the test skips.

var shared struct {
	mu      sync.Mutex
	servers map[string]*testserver.Server
	squid   *testserver.Squid
	kdc     *testserver.KDC
	redis   *testserver.Redis
}

func TestMain(m *testing.M) {
	if args := os.Getenv(fetchArgsEnv); args != "" {
		os.Exit(runFromEnv(args)) // a fetch process of a test
	}
	code := m.Run()
	shared.mu.Lock()
	for _, s := range shared.servers {
		s.Close()
	}
	if shared.squid != nil {
		shared.squid.Close()
	}
	if shared.kdc != nil {
		shared.kdc.Close()
	}
	shared.redis.Close()
	shared.mu.Unlock()
	os.Exit(code)
}

// skipOrFail ends a test whose server could not start.
func skipOrFail(t *testing.T, name string, err error) {
	t.Helper()
	if errors.Is(err, testserver.ErrNotInstalled) && !testserver.InCI() {
		t.Skipf("%s not installed (make test installs it): %v", name, err)
	}
	t.Fatalf("%s: %v", name, err)
}

// server starts (once) and returns the named server.
func server(t *testing.T, name string, start func() (*testserver.Server, error)) *testserver.Server {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if s := shared.servers[name]; s != nil {
		return s
	}
	s, err := start()
	if err != nil {
		skipOrFail(t, name, err)
	}
	if shared.servers == nil {
		shared.servers = map[string]*testserver.Server{}
	}
	shared.servers[name] = s
	return s
}

func sharedApache(t *testing.T) *testserver.Server {
	return server(t, "apache", testserver.StartApache)
}
func sharedApacheTLS(t *testing.T) *testserver.Server {
	return server(t, "apache-tls", testserver.StartApacheTLS)
}
func sharedLighttpd(t *testing.T) *testserver.Server {
	return server(t, "lighttpd", testserver.StartLighttpd)
}
func sharedOpenIDC(t *testing.T) *testserver.Server {
	return server(t, "openidc", testserver.StartOpenIDC)
}
func sharedNTLMApache(t *testing.T) *testserver.Server {
	return server(t, "apache-ntlm", testserver.StartNTLMApache)
}

// squid starts (once) Squid with its Basic, Digest and NTLM ports.
func sharedSquid(t *testing.T) *testserver.Squid {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.squid == nil {
		s, err := testserver.StartSquid(testserver.SquidOptions{NTLM: true})
		if err != nil {
			skipOrFail(t, "squid", err)
		}
		shared.squid = s
	}
	return shared.squid
}

// kerberos starts (once) the KDC and the Apache that checks its tickets.
func sharedKerberos(t *testing.T) (*testserver.KDC, *testserver.Server) {
	t.Helper()
	shared.mu.Lock()
	if shared.kdc == nil {
		k, err := testserver.StartKDC()
		if err != nil {
			shared.mu.Unlock()
			skipOrFail(t, "kdc", err)
		}
		shared.kdc = k
	}
	kdc := shared.kdc
	shared.mu.Unlock()
	return kdc, server(t, "apache-gssapi", func() (*testserver.Server, error) { return testserver.StartGSSAPIApache(kdc) })
}

func sharedRedis(t *testing.T) *testserver.Redis {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.redis == nil {
		r, err := testserver.StartRedis()
		if err != nil {
			skipOrFail(t, "redis-server", err)
		}
		shared.redis = r
	}
	return shared.redis
}
