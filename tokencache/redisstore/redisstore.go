// Package redisstore is a schemes.TokenStore on Redis: Bearers of a fleet
// of processes that share one Redis fetch one token per expiry between
// them, instead of one per process, and redeem a rotating refresh token
// once between them.
//
//	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "redis:6379"}), redisstore.Options{
//		Keys: []redisstore.Key{{ID: "2024-06", Secret: secret32}},
//	})
//	b := schemes.NewClientCredentialsBearer(cfg, "https://api.example.com")
//	b.Store = store
//
// It is a package of its own so that programs without Redis do not
// compile a Redis client. The client is github.com/redis/go-redis/v9
// (any redis.UniversalClient: a single node, Sentinel or Cluster).
//
// Tokens are encrypted at rest with AES-256-GCM under the first of
// Options.Keys, with the store key as additional data, and decrypted with
// whichever key their entry names, so keys rotate by putting the new one
// first and dropping the old one once its entries are gone. An entry that
// no key decrypts (a wrong or unknown key, a corrupted entry, one copied
// from another key) is a miss, logged at Warn, never a token.
// Options.Plaintext stores tokens unencrypted instead; without either,
// New fails.
//
// Each token is a hash "<prefix>{<key>}:token" holding the sealed token
// (access and refresh token together, so they change atomically), the
// SHA-256 of its access token, its expiry, and whether it holds a refresh
// token. Put is a Lua script that keeps a stored token expiring later
// than the new one; Invalidate is a Lua script that compares the access
// token's SHA-256 and drops it, keeping the refresh token. An entry
// without a refresh token expires with its access token; one with a
// refresh token stays until replaced.
//
// The lease "<prefix>{<key>}:lease" is SET NX PX with a random owner ID,
// released by a Lua compare-and-delete, so a holder whose lease expired
// cannot release another's. Waiters subscribe to "<prefix>{<key>}:changed",
// which gets a PUBLISH after every Put, release and Invalidate, and read
// the store again at least every 500 ms in case they missed one. The
// braces put a token's keys in one hash slot, for Redis Cluster.
package redisstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/anyauth/anyauth/schemes"
	"github.com/redis/go-redis/v9"
	"golang.org/x/oauth2"
)

// DefaultPrefix is the prefix of every Redis key and channel when
// Options.Prefix is "".
const DefaultPrefix = "anyauth:bearer:"

// Key is an AES-256 key and the ID that names it in the entries it
// encrypts. Its String and Format never show Secret.
type Key struct {
	ID     string // non-empty, without ':'
	Secret []byte // 32 bytes
}

// String returns the key's ID, never its secret.
func (k Key) String() string { return fmt.Sprintf("redisstore.Key{ID:%q Secret:REDACTED}", k.ID) }

// Format prints String whatever the verb.
func (k Key) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// Options configure a Store.
type Options struct {
	// Keys encrypt and decrypt tokens: the first encrypts, any decrypts
	// the entries that name its ID. Required unless Plaintext.
	Keys []Key
	// Plaintext stores tokens unencrypted; it may not be combined with
	// Keys.
	Plaintext bool
	// Prefix of Redis keys and channels; "" means DefaultPrefix.
	Prefix string
	// Logger receives a Warn record for every entry that cannot be read
	// (nil: slog.Default()). No token or key is ever logged.
	Logger *slog.Logger
}

// String describes o without its keys' secrets.
func (o Options) String() string {
	ids := make([]string, len(o.Keys))
	for i, k := range o.Keys {
		ids[i] = k.ID
	}
	return fmt.Sprintf("redisstore.Options{Keys:%q Plaintext:%t Prefix:%q}", ids, o.Plaintext, o.Prefix)
}

// Format prints String whatever the verb.
func (o Options) Format(f fmt.State, _ rune) { io.WriteString(f, o.String()) }

// Store is a schemes.TokenStore on Redis. Make one with New.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	plaintext bool
	sealer    cipher.AEAD            // the first key's, nil when plaintext
	sealerID  string                 // the first key's ID
	openers   map[string]cipher.AEAD // by key ID
	log       *slog.Logger
}

var _ schemes.TokenStore = (*Store)(nil)

// New returns a Store on rdb. It fails when o has no key and not
// Plaintext, or a key is not 32 bytes or has an empty, duplicate or
// ':'-containing ID.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	if rdb == nil {
		return nil, errors.New("redisstore: nil Redis client")
	}
	s := &Store{rdb: rdb, prefix: o.Prefix, plaintext: o.Plaintext, openers: map[string]cipher.AEAD{}, log: o.Logger}
	if s.prefix == "" {
		s.prefix = DefaultPrefix
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	switch {
	case o.Plaintext && len(o.Keys) > 0:
		return nil, errors.New("redisstore: Options.Plaintext with Options.Keys: choose one")
	case o.Plaintext:
		return s, nil
	case len(o.Keys) == 0:
		return nil, errors.New("redisstore: no encryption key: set Options.Keys (32-byte AES keys), or Options.Plaintext to store tokens unencrypted")
	}
	for i, k := range o.Keys {
		if k.ID == "" || strings.Contains(k.ID, ":") {
			return nil, fmt.Errorf("redisstore: key %d: its ID must be non-empty and without ':'", i)
		}
		if len(k.Secret) != 32 {
			return nil, fmt.Errorf("redisstore: key %q: %d bytes, want 32", k.ID, len(k.Secret))
		}
		if _, dup := s.openers[k.ID]; dup {
			return nil, fmt.Errorf("redisstore: key ID %q given twice", k.ID)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("redisstore: key %q: %v", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("redisstore: key %q: %v", k.ID, err)
		}
		s.openers[k.ID] = aead
		if i == 0 {
			s.sealer, s.sealerID = aead, k.ID
		}
	}
	return s, nil
}

// String describes s without secrets.
func (s *Store) String() string {
	ids := make([]string, 0, len(s.openers))
	for id := range s.openers {
		ids = append(ids, id)
	}
	return fmt.Sprintf("redisstore.Store{prefix:%q plaintext:%t encrypts with:%q keys:%d}", s.prefix, s.plaintext, s.sealerID, len(ids))
}

// Format prints String whatever the verb.
func (s *Store) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

func (s *Store) tokenKey(key string) string { return s.prefix + "{" + key + "}:token" }
func (s *Store) leaseKey(key string) string { return s.prefix + "{" + key + "}:lease" }
func (s *Store) channel(key string) string  { return s.prefix + "{" + key + "}:changed" }

// entry is a token at rest, before encryption.
type entry struct {
	AccessToken  string    `json:"a,omitempty"`
	TokenType    string    `json:"t,omitempty"`
	RefreshToken string    `json:"r,omitempty"`
	Expiry       time.Time `json:"e,omitzero"`
	ExpiresIn    int64     `json:"n,omitempty"`
}

// Entry formats: "p1:" + JSON; "k1:" + key ID + ":" + base64(nonce |
// AES-GCM(JSON)), with the store key as additional data, so an entry
// copied under another key does not decrypt.
const (
	plainPrefix  = "p1:"
	sealedPrefix = "k1:"
)

func (s *Store) seal(key string, t *oauth2.Token) (string, error) {
	data, err := json.Marshal(entry{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Expiry: t.Expiry, ExpiresIn: t.ExpiresIn})
	if err != nil {
		return "", errors.New("redisstore: encoding a token failed")
	}
	if s.plaintext {
		return plainPrefix + string(data), nil
	}
	nonce := make([]byte, s.sealer.NonceSize(), s.sealer.NonceSize()+len(data)+s.sealer.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("redisstore: nonce: %w", err)
	}
	sealed := s.sealer.Seal(nonce, nonce, data, []byte(key))
	return sealedPrefix + s.sealerID + ":" + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// open decodes an entry; why says why it could not (never its content).
func (s *Store) open(key, v string) (t *oauth2.Token, why string) {
	var data []byte
	switch {
	case strings.HasPrefix(v, plainPrefix):
		if !s.plaintext {
			return nil, "an unencrypted entry, and this store encrypts"
		}
		data = []byte(v[len(plainPrefix):])
	case strings.HasPrefix(v, sealedPrefix):
		if s.plaintext {
			return nil, "an encrypted entry, and this store has no key"
		}
		id, b64, ok := strings.Cut(v[len(sealedPrefix):], ":")
		if !ok {
			return nil, "a malformed entry"
		}
		aead := s.openers[id]
		if aead == nil {
			return nil, fmt.Sprintf("an entry encrypted under key ID %q, which this store does not have", truncate(id))
		}
		sealed, err := base64.RawStdEncoding.DecodeString(b64)
		if err != nil || len(sealed) < aead.NonceSize()+aead.Overhead() {
			return nil, "a malformed entry"
		}
		data, err = aead.Open(nil, sealed[:aead.NonceSize()], sealed[aead.NonceSize():], []byte(key))
		if err != nil {
			return nil, fmt.Sprintf("an entry that key %q does not decrypt (wrong key or corrupted)", id)
		}
	default:
		return nil, "an entry of unknown format"
	}
	var e entry
	if err := json.Unmarshal(data, &e); err != nil || (e.AccessToken == "" && e.RefreshToken == "") {
		return nil, "an entry that does not hold a token"
	}
	return &oauth2.Token{AccessToken: e.AccessToken, TokenType: e.TokenType, RefreshToken: e.RefreshToken, Expiry: e.Expiry, ExpiresIn: e.ExpiresIn}, ""
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// accessSum is what the entry of key records of its access token, for
// Invalidate to compare: a SHA-256, never the token.
func accessSum(key, accessToken string) string {
	h := sha256.New()
	h.Write([]byte("anyauth redisstore access token\x00"))
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write([]byte(accessToken))
	return hex.EncodeToString(h.Sum(nil))
}

// Get returns the token stored under key; nil and no error when there is
// none or it cannot be read (logged at Warn). An entry whose access token
// was invalidated comes back with its refresh token only.
func (s *Store) Get(ctx context.Context, key string) (*oauth2.Token, error) {
	vals, err := s.rdb.HMGet(ctx, s.tokenKey(key), "v", "i").Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: HMGET: %w", err)
	}
	v, _ := vals[0].(string)
	if v == "" {
		return nil, nil
	}
	t, why := s.open(key, v)
	if t == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "anyauth: redisstore: stored token ignored", slog.String("why", why), slog.String("key", key))
		return nil, nil
	}
	if invalid, _ := vals[1].(string); invalid == "1" {
		if t.RefreshToken == "" {
			return nil, nil
		}
		return &oauth2.Token{RefreshToken: t.RefreshToken}, nil
	}
	return t, nil
}

// putScript stores an entry (a hash: v the sealed token, h its access
// token's sum, x its expiry in Unix ms or 0, r "1" when it holds a refresh
// token) unless the stored one has a valid access token that expires
// later, sets its TTL, and wakes the waiters.
var putScript = redis.NewScript(`
local cur = redis.call("HMGET", KEYS[1], "h", "x", "i")
local newx = tonumber(ARGV[3])
if cur[1] and cur[1] ~= "" and cur[3] ~= "1" and cur[2] then
	local curx = tonumber(cur[2])
	if curx and curx > 0 and newx > 0 and curx > newx then
		return 0
	end
end
redis.call("DEL", KEYS[1])
redis.call("HSET", KEYS[1], "v", ARGV[1], "h", ARGV[2], "x", ARGV[3], "r", ARGV[4])
local pttl = tonumber(ARGV[5])
if pttl > 0 then
	redis.call("PEXPIRE", KEYS[1], pttl)
end
redis.call("PUBLISH", ARGV[6], "put")
return 1`)

// Put stores tok under key and wakes the waiters, unless the stored
// token's access token is valid and expires later (see
// schemes.TokenStore). A token without a refresh token is dropped at its
// Expiry; one with a refresh token is kept until replaced.
func (s *Store) Put(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil || (tok.AccessToken == "" && tok.RefreshToken == "") {
		return errors.New("redisstore: no token to store")
	}
	v, err := s.seal(key, tok)
	if err != nil {
		return err
	}
	var pttl int64 // 0: kept until replaced
	if tok.RefreshToken == "" && !tok.Expiry.IsZero() {
		ttl := time.Until(tok.Expiry)
		if ttl < time.Millisecond {
			return nil // expired already: nothing worth storing
		}
		pttl = ttl.Milliseconds()
	}
	var expiry int64
	if !tok.Expiry.IsZero() {
		expiry = tok.Expiry.UnixMilli()
	}
	sum, refresh := "", "0"
	if tok.AccessToken != "" {
		sum = accessSum(key, tok.AccessToken)
	}
	if tok.RefreshToken != "" {
		refresh = "1"
	}
	err = putScript.Run(ctx, s.rdb, []string{s.tokenKey(key)}, v, sum, expiry, refresh, pttl, s.channel(key)).Err()
	if err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("redisstore: storing a token: %w", err)
	}
	return nil
}

// releaseScript deletes the lease if the caller still owns it, and wakes
// the waiters.
var releaseScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	redis.call("DEL", KEYS[1])
	redis.call("PUBLISH", ARGV[2], "released")
	return 1
end
return 0`)

// Lease takes key's lease for ttl (SET NX PX with a random owner ID), or
// returns schemes.ErrLeaseHeld.
func (s *Store) Lease(ctx context.Context, key string, ttl time.Duration) (func(context.Context) error, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("redisstore: lease ID: %w", err)
	}
	owner := hex.EncodeToString(id[:])
	ok, err := s.rdb.SetNX(ctx, s.leaseKey(key), owner, max(ttl, time.Millisecond)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: SET NX: %w", err)
	}
	if !ok {
		return nil, schemes.ErrLeaseHeld
	}
	return func(ctx context.Context) error {
		if err := releaseScript.Run(ctx, s.rdb, []string{s.leaseKey(key)}, owner, s.channel(key)).Err(); err != nil {
			return fmt.Errorf("redisstore: releasing the lease: %w", err)
		}
		return nil
	}, nil
}

// pollInterval is how often a Wait checks the lease when no message
// comes.
const pollInterval = 500 * time.Millisecond

// Wait returns when key's channel gets a message, its lease is gone, or
// ctx ends. Having subscribed, it checks the lease first, so a release
// just before the subscription is not missed.
func (s *Store) Wait(ctx context.Context, key string) error {
	sub := s.rdb.Subscribe(ctx, s.channel(key))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil { // the subscription's confirmation
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("redisstore: SUBSCRIBE: %w", err)
	}
	msgs := sub.Channel()
	for {
		n, err := s.rdb.Exists(ctx, s.leaseKey(key)).Result()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("redisstore: EXISTS: %w", err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-msgs:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// invalidateScript marks the entry's access token invalid if it is still
// the one whose sum is ARGV[1]: an entry with a refresh token keeps it,
// any other is deleted. It wakes the waiters.
var invalidateScript = redis.NewScript(`
if redis.call("HGET", KEYS[1], "h") ~= ARGV[1] then
	return 0
end
if redis.call("HGET", KEYS[1], "r") == "1" then
	redis.call("HSET", KEYS[1], "h", "", "i", "1")
else
	redis.call("DEL", KEYS[1])
end
redis.call("PUBLISH", ARGV[2], "invalidated")
return 1`)

// Invalidate drops the access token of key's entry if it is still
// accessToken, atomically (one Lua script comparing the token's SHA-256),
// and wakes the waiters.
func (s *Store) Invalidate(ctx context.Context, key, accessToken string) (bool, error) {
	n, err := invalidateScript.Run(ctx, s.rdb, []string{s.tokenKey(key)}, accessSum(key, accessToken), s.channel(key)).Int()
	if err != nil {
		return false, fmt.Errorf("redisstore: invalidating a token: %w", err)
	}
	return n == 1, nil
}
