package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/anyauth/anyauth/schemes"
	"github.com/anyauth/anyauth/tokencache/redisstore"
	"github.com/redis/go-redis/v9"
)

// tokenCacheKeyEnv holds the -token-cache encryption keys when
// -token-cache-key is not given.
const tokenCacheKeyEnv = "ANYAUTH_TOKEN_CACHE_KEY"

// tokenCache opens the -token-cache store: Redis at o.tokenCache, with
// the keys of -token-cache-key or $ANYAUTH_TOKEN_CACHE_KEY, or in
// plaintext with -token-cache-plaintext. closeStore closes its client.
func tokenCache(o *options, stderr io.Writer) (store schemes.TokenStore, closeStore func(), err error) {
	opt, err := redis.ParseURL(o.tokenCache)
	if err != nil {
		return nil, nil, usageError{fmt.Sprintf("-token-cache %q: want redis://HOST:PORT/DB (or rediss://): %v", o.tokenCache, err)}
	}
	var keys []redisstore.Key
	if !o.tokenCachePlain {
		var text []byte
		switch {
		case o.tokenCacheKey != "":
			if text, err = os.ReadFile(o.tokenCacheKey); err != nil {
				return nil, nil, fmt.Errorf("-token-cache-key: %w", err)
			}
		case os.Getenv(tokenCacheKeyEnv) != "":
			text = []byte(os.Getenv(tokenCacheKeyEnv))
		default:
			return nil, nil, usageError{"-token-cache encrypts the tokens it stores: give the key with -token-cache-key FILE or $" + tokenCacheKeyEnv + " (32 bytes as 64 hex digits or base64), or store them in the clear with -token-cache-plaintext"}
		}
		if keys, err = parseCacheKeys(text); err != nil {
			return nil, nil, err
		}
	}
	// Short timeouts: an unreachable Redis costs each fetch a few
	// seconds at most, and the Bearer then fetches on its own.
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = time.Second, time.Second, time.Second
	opt.MaxRetries = 1
	rdb := redis.NewClient(opt)
	s, err := redisstore.New(rdb, redisstore.Options{Keys: keys, Plaintext: o.tokenCachePlain, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return s, func() { rdb.Close() }, nil
}

// parseCacheKeys reads one key a line (blank lines and # comments
// skipped): 32 bytes as 64 hex digits or as base64. The first encrypts;
// all decrypt, so a new key goes first and the old one stays until its
// entries are gone. A key's ID is the start of its SHA-256, so the same
// key file names the same IDs everywhere.
func parseCacheKeys(text []byte) ([]redisstore.Key, error) {
	var keys []redisstore.Key
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		secret, err := hex.DecodeString(line)
		if err != nil || len(secret) != 32 {
			secret, err = base64.StdEncoding.DecodeString(line)
		}
		if err != nil || len(secret) != 32 {
			return nil, fmt.Errorf("token cache key on line %d: not 32 bytes as 64 hex digits or base64", n)
		}
		sum := sha256.Sum256(secret)
		keys = append(keys, redisstore.Key{ID: hex.EncodeToString(sum[:4]), Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("token cache key: none found")
	}
	return keys, nil
}
