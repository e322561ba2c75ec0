package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/anyauth/anyauth/internal/testserver"
)

// World is the real servers a fleet runs against: oidc-provider issuing
// JWT access tokens, Apache mod_auth_openidc validating them with the
// provider's JWKS, and a redis-server.
type World struct {
	Provider *testserver.OIDCProvider
	API      *testserver.Server
	Redis    *testserver.Redis
	// URL is the protected resource every request GETs.
	URL string
	// RedisKey is the fleet's token encryption key (hex).
	RedisKey string
}

// StartWorld starts the provider with access tokens valid ttl, the API
// and Redis. Close stops them.
func StartWorld(ttl time.Duration) (*World, error) {
	w := &World{}
	var err error
	if w.Provider, err = testserver.StartOIDCProvider(testserver.OIDCProviderOptions{AccessTokenTTL: ttl}); err != nil {
		return nil, err
	}
	if w.API, err = testserver.StartOpenIDCJWKS(w.Provider.JWKSURLTLS, w.Provider.CACertPEM); err != nil {
		w.Close()
		return nil, err
	}
	if w.Redis, err = testserver.StartRedis(); err != nil {
		w.Close()
		return nil, err
	}
	w.URL = w.API.URL + testserver.PathBearer + "whoami"
	var key [32]byte
	rand.Read(key[:])
	w.RedisKey = hex.EncodeToString(key[:])
	return w, nil
}

// Close stops what StartWorld started.
func (w *World) Close() error {
	var errs []error
	if w.Redis != nil {
		errs = append(errs, w.Redis.Close())
	}
	if w.API != nil {
		errs = append(errs, w.API.Close())
	}
	if w.Provider != nil {
		errs = append(errs, w.Provider.Close())
	}
	return errors.Join(errs...)
}

// Config returns the Config of a run in w with cache and grant; a
// RefreshToken run gets a fresh login's refresh token, the same for every
// process.
func (w *World) Config(ctx context.Context, cache Cache, grant Grant) (Config, error) {
	cfg := Config{Cache: cache, Grant: grant, URL: w.URL, RedisAddr: w.Redis.Addr, RedisKey: w.RedisKey, TokenURL: w.Provider.TokenURL}
	switch grant {
	case ClientCredentials:
		cfg.ClientID, cfg.ClientSecret = testserver.OIDCFleetClientID, testserver.OIDCFleetSecret
	case RefreshToken:
		tok, err := w.Provider.LoginRefreshToken(ctx)
		if err != nil {
			return cfg, fmt.Errorf("fleet: login: %w", err)
		}
		cfg.ClientID, cfg.ClientSecret = testserver.OIDCRotatingClientID, testserver.OIDCRotatingSecret
		cfg.RefreshToken, cfg.Subject = tok.RefreshToken, testserver.User
	}
	return cfg, nil
}
