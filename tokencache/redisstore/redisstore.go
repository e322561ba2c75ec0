// Package redisstore is a schemes.TokenStore on Redis: Bearers of a fleet
// of processes that share one Redis fetch one token per expiry between
// them, instead of one per process.
//
//	store, err := redisstore.New(redis.NewClient(&redis.Options{Addr: "redis:6379"}), redisstore.Options{
//		Keys: []redisstore.Key{{ID: "2024-06", Secret: secret32}},
//	})
//	b := schemes.NewBearer(cfg.Token, "https://api.example.com")
//	b.Store, b.StoreKey = store, schemes.StoreKey(cfg.TokenURL, cfg.ClientID, cfg.Scopes...)
//
// Tokens are encrypted at rest with AES-256-GCM under the first of
// Options.Keys, and decrypted with whichever key their entry names, so
// keys rotate by putting the new one first and dropping the old one once
// its tokens have expired. An entry that no key decrypts (a wrong or
// unknown key, a corrupted or foreign entry) is a miss, logged, never a
// token. Options.Plaintext stores tokens unencrypted instead; without
// either, New fails.
//
// The lease is SET NX PX with a random owner ID, released by a Lua
// compare-and-delete, so a holder whose lease expired cannot release
// another's. Waiters are woken by a PUBLISH on a channel per key after
// every Put, release and delete, and read the store again at least every
// 500 ms in case they missed it. Keys are "<prefix>{<key>}:token" and
// "<prefix>{<key>}:lease" (one hash slot per token, for Redis Cluster),
// and the channel "<prefix>{<key>}:changed".
package redisstore

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
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
	AccessToken string    `json:"a"`
	TokenType   string    `json:"t,omitempty"`
	Expiry      time.Time `json:"e,omitzero"`
}

// Entry formats: "p1:" + JSON; "k1:" + key ID + ":" + base64(nonce |
// AES-GCM(JSON)), with the store key as additional data, so an entry
// copied under another key does not decrypt.
const (
	plainPrefix  = "p1:"
	sealedPrefix = "k1:"
)

func (s *Store) seal(key string, t *oauth2.Token) (string, error) {
	data, err := json.Marshal(entry{AccessToken: t.AccessToken, TokenType: t.TokenType, Expiry: t.Expiry})
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
	if err := json.Unmarshal(data, &e); err != nil || e.AccessToken == "" {
		return nil, "an entry that does not hold a token"
	}
	return &oauth2.Token{AccessToken: e.AccessToken, TokenType: e.TokenType, Expiry: e.Expiry}, ""
}

func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "..."
	}
	return s
}

// Get returns the token stored under key; nil and no error when there is
// none or it cannot be read (logged at Warn).
func (s *Store) Get(ctx context.Context, key string) (*oauth2.Token, error) {
	v, err := s.rdb.Get(ctx, s.tokenKey(key)).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: GET: %w", err)
	}
	t, why := s.open(key, v)
	if t == nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "anyauth: redisstore: stored token ignored", slog.String("why", why), slog.String("key", key))
	}
	return t, nil
}

// Put stores tok under key until its Expiry (for good when it has none)
// and wakes the waiters.
func (s *Store) Put(ctx context.Context, key string, tok *oauth2.Token) error {
	if tok == nil || tok.AccessToken == "" {
		return errors.New("redisstore: no token to store")
	}
	v, err := s.seal(key, tok)
	if err != nil {
		return err
	}
	var ttl time.Duration // KeepTTL is -1; 0 means none
	if !tok.Expiry.IsZero() {
		if ttl = time.Until(tok.Expiry); ttl < time.Millisecond {
			return nil // expired already: nothing worth storing
		}
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.tokenKey(key), v, ttl)
		p.Publish(ctx, s.channel(key), "put")
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: SET: %w", err)
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

// CompareAndDelete deletes key's entry if it holds accessToken (WATCH,
// GET, MULTI DEL), and wakes the waiters.
func (s *Store) CompareAndDelete(ctx context.Context, key, accessToken string) (bool, error) {
	tk := s.tokenKey(key)
	deleted := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, tk).Result()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		t, _ := s.open(key, v)
		if t == nil || t.AccessToken != accessToken {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Del(ctx, tk)
			p.Publish(ctx, s.channel(key), "deleted")
			return nil
		})
		if err == nil {
			deleted = true
		}
		return err
	}, tk)
	if errors.Is(err, redis.TxFailedErr) {
		return false, nil // changed meanwhile: what is there now is newer
	}
	if err != nil {
		return false, fmt.Errorf("redisstore: compare-and-delete: %w", err)
	}
	return deleted, nil
}
