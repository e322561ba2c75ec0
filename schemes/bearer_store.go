package schemes

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"log/slog"
	"sort"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// This file lets several Bearers, in several processes, share their
// tokens through a TokenStore: one fetch per expiry across a fleet.

// TokenStore is a token cache shared by Bearers in several processes,
// such as tokencache/redisstore. Bearer.Store uses it behind its own
// in-process cache: a request that finds a valid token in its Bearer
// never touches the store. The Bearer reads the store when it has no
// token, when its token is within ExpiryDelta of its Expiry, and after a
// server refused its token; it fetches only while it holds the key's
// lease, so that one process of the fleet fetches per expiry.
//
// key is a SHA-256 hex string (see Bearer.StoreKey): it never holds a
// secret. Every method must be safe for concurrent use, and its errors
// must not contain a token. A Bearer whose store fails fetches on its own,
// as without a store: no request fails because the store did.
type TokenStore interface {
	// Get returns the token stored under key, or nil and no error when
	// there is none, or none that the store can read (an entry it cannot
	// decrypt is a miss, never a token).
	Get(ctx context.Context, key string) (*oauth2.Token, error)

	// Put stores tok under key, until its Expiry if it has one, and wakes
	// the Waits on key.
	Put(ctx context.Context, key string, tok *oauth2.Token) error

	// Lease makes the caller the one fetcher of key for ttl, across every
	// process sharing the store, or returns ErrLeaseHeld while another
	// holds it. release ends the lease early, if the caller still holds
	// it, and wakes the Waits on key. A holder that dies loses its lease
	// when ttl passes.
	Lease(ctx context.Context, key string, ttl time.Duration) (release func(context.Context) error, err error)

	// Wait returns when the entry of key may have changed or its lease
	// may have ended (Put, release, CompareAndDelete, or ttl passed), or
	// when ctx ends (ctx's error). It may return early: the caller reads
	// the store again in any case.
	Wait(ctx context.Context, key string) error

	// CompareAndDelete deletes the entry of key if its access token is
	// accessToken, and reports whether it did. A token that another
	// process has stored meanwhile survives.
	CompareAndDelete(ctx context.Context, key, accessToken string) (deleted bool, err error)
}

// ErrLeaseHeld is returned by TokenStore.Lease while another holds the
// lease.
var ErrLeaseHeld = errors.New("bearer: the token store lease is held by another process")

// storeOpTimeout bounds each TokenStore call but Wait, so that a store
// that hangs delays a fetch by this much at most.
const storeOpTimeout = 2 * time.Second

// storeWaitPoll bounds one Wait: the Bearer reads the store again at
// least this often while another process holds the lease.
const storeWaitPoll = 500 * time.Millisecond

// StoreKey returns the TokenStore key of a token source: the SHA-256
// hex of the token endpoint (or any other name of the authorization
// server), the client ID and the scopes, in any order. Bearers whose
// Fetch gets tokens for the same client and scopes from the same endpoint
// should share it; nothing secret goes into it.
func StoreKey(tokenEndpoint, clientID string, scopes ...string) string {
	s := append([]string(nil), scopes...)
	sort.Strings(s)
	h := sha256.New()
	field := func(v string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	field("anyauth bearer token v1")
	field(tokenEndpoint)
	field(clientID)
	for _, v := range s {
		field(v)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// storeKey is the key b's tokens are stored under: StoreKey as it is
// when it is a SHA-256 hex (what StoreKey returns), else
// StoreKey(b.StoreKey, ""), so that a name given by hand never reaches
// the store as it is.
func (b *Bearer) storeKey() string {
	if k := b.StoreKey; len(k) == sha256.Size*2 && strings.Trim(k, "0123456789abcdef") == "" {
		return k
	}
	return StoreKey(b.StoreKey, "")
}

// storeLease is the lease a fetch takes in the store.
func (b *Bearer) storeLease() time.Duration {
	if b.StoreLease > 0 {
		return b.StoreLease
	}
	if b.FetchTimeout > 0 {
		return b.FetchTimeout
	}
	return DefaultFetchTimeout
}

// storeRetryInterval is how long a Bearer whose store failed fetches on
// its own before it tries the store again, so that an outage costs a
// fetch storeOpTimeout once per interval, not every time.
const storeRetryInterval = 5 * time.Second

// storeFailed notes that the store failed: the first failure of an
// outage is logged at Warn.
func (b *Bearer) storeFailed(ctx context.Context, op string, err error, log *slog.Logger) {
	b.cache.storeRetryAt.Store(time.Now().Add(storeRetryInterval).UnixNano())
	if b.cache.storeDown.CompareAndSwap(false, true) {
		log.LogAttrs(ctx, slog.LevelWarn, "anyauth: bearer token store unavailable; fetching tokens in this process until it is back",
			slog.String("op", op), slog.String("error", err.Error()))
	}
}

// storeWorked notes that the store answered: the end of an outage is
// logged at Info.
func (b *Bearer) storeWorked(ctx context.Context, log *slog.Logger) {
	if b.cache.storeDown.CompareAndSwap(true, false) {
		log.LogAttrs(ctx, slog.LevelInfo, "anyauth: bearer token store available again")
	}
}

// usable reports whether t, read from the store, may be used: it is valid
// for longer than ExpiryDelta and is not the token refused.
func (b *Bearer) usable(t *oauth2.Token, refused string) bool {
	return t != nil && t.AccessToken != "" && b.fresh(t) && (refused == "" || t.AccessToken != refused)
}

// fetchShared gets a token through b.Store: the stored one if it is
// usable, else one fetched while holding the key's lease (and stored),
// else, when another process holds the lease, the one it stores. When the
// store fails, or the lease stays held longer than the lease and one more
// fetch take, it fetches on its own; after a failure, it skips the store
// for storeRetryInterval.
func (b *Bearer) fetchShared(ctx context.Context, f *tokenFetch, why string, refused string, log *slog.Logger) (*oauth2.Token, error, bool) {
	if b.cache.storeDown.Load() && time.Now().UnixNano() < b.cache.storeRetryAt.Load() {
		return b.fetchSource(ctx, f, why, log)
	}
	s, key := b.Store, b.storeKey()
	op := func(fn func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, storeOpTimeout)
		defer cancel()
		return fn(c)
	}
	local := func(opName string, err error) (*oauth2.Token, error, bool) {
		if err != nil {
			b.storeFailed(ctx, opName, err, log)
		}
		return b.fetchSource(ctx, f, why, log)
	}
	if refused != "" {
		if err := op(func(c context.Context) error { _, err := s.CompareAndDelete(c, key, refused); return err }); err != nil {
			return local("CompareAndDelete", err)
		}
	}
	ttl := b.storeLease()
	deadline := time.Now().Add(2*ttl + storeOpTimeout)
	for {
		var t *oauth2.Token
		if err := op(func(c context.Context) (err error) { t, err = s.Get(c, key); return err }); err != nil {
			return local("Get", err)
		}
		b.storeWorked(ctx, log)
		if b.usable(t, refused) {
			log.Debug("anyauth: bearer token from the store", "why", why)
			return t, nil, false
		}
		var release func(context.Context) error
		err := op(func(c context.Context) (err error) { release, err = s.Lease(c, key, ttl); return err })
		if errors.Is(err, ErrLeaseHeld) {
			if time.Now().After(deadline) {
				log.Debug("anyauth: bearer token store lease held too long; fetching in this process")
				return b.fetchSource(ctx, f, why, log)
			}
			wctx, cancel := context.WithTimeout(ctx, storeWaitPoll)
			err = s.Wait(wctx, key)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return local("Wait", err)
			}
			continue
		}
		if err != nil {
			return local("Lease", err)
		}
		// Another process may have stored a token between Get and Lease.
		if err := op(func(c context.Context) (err error) { t, err = s.Get(c, key); return err }); err == nil && b.usable(t, refused) {
			_ = op(release)
			return t, nil, false
		}
		t, err, timed := b.fetchSource(ctx, f, why, log)
		if err == nil {
			if perr := op(func(c context.Context) error { return s.Put(c, key, t) }); perr != nil {
				b.storeFailed(ctx, "Put", perr, log)
			}
		}
		if rerr := op(release); rerr != nil {
			b.storeFailed(ctx, "release", rerr, log)
		}
		return t, err, timed
	}
}
