package schemes

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// This file lets several Bearers, in several processes, share their
// tokens through a TokenStore: one fetch per expiry across a fleet.

// TokenStore is a token cache shared by Bearers, in one process or in
// many: MemoryTokenStore in one process, tokencache/redisstore across a
// fleet, or a file for a command-line tool that keeps its refresh token
// between runs (see the TokenStore example).
//
// A Bearer uses its store behind its own in-process token: a request that
// finds a valid token in its Bearer never touches the store. The Bearer
// reads the store when it has no token, when its token comes near its
// expiry, and after a server refused its token; it fetches only while it
// holds the key's lease, so that one process of the fleet fetches per
// expiry while the others wait for its result (or, refreshing ahead of
// expiry, go on using the token they have).
//
// key is a SHA-256 hex string (TokenKey.Sum): it never holds a secret.
// Every method must be safe for concurrent use, and no error or log line
// may contain a token. A Bearer whose store fails fetches on its own, as
// without a store: no request fails because the store did.
type TokenStore interface {
	// Get returns the token stored under key, or nil and no error when
	// there is none, or none that the store can read (an entry it cannot
	// decrypt is a miss, never a token). A token whose access token was
	// invalidated comes back with an empty AccessToken and its
	// RefreshToken.
	Get(ctx context.Context, key string) (*oauth2.Token, error)

	// Put stores tok under key, access and refresh token together, and
	// wakes the Waits on key. A token without a refresh token may be
	// dropped at its Expiry; one with a refresh token is kept after it,
	// so that the next fetch can redeem it. Put keeps the stored token
	// when that one has an access token that expires later than tok's:
	// a fetcher whose lease ran out cannot overwrite a fresher token.
	Put(ctx context.Context, key string, tok *oauth2.Token) error

	// Lease makes the caller the one fetcher of key for ttl, across every
	// process sharing the store, or returns ErrLeaseHeld while another
	// holds it. release ends the lease early, if the caller still holds
	// it, and wakes the Waits on key. A holder that dies loses its lease
	// when ttl passes.
	Lease(ctx context.Context, key string, ttl time.Duration) (release func(context.Context) error, err error)

	// Wait returns when the entry of key may have changed or its lease
	// may have ended (Put, release, Invalidate, or the lease's ttl
	// passed), or when ctx ends (ctx's error). It may return early: the
	// caller reads the store again in any case.
	Wait(ctx context.Context, key string) error

	// Invalidate drops the access token of key's entry if it is still
	// accessToken, keeping its refresh token, and reports whether it did.
	// A token that another process has stored meanwhile survives: this
	// is the compare-and-swap that keeps a late refusal from throwing a
	// fresh token away.
	Invalidate(ctx context.Context, key, accessToken string) (invalidated bool, err error)
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

// storeRetryInterval is how long a Bearer whose store failed fetches on
// its own before it tries the store again, so that a store that hangs
// costs a fetch storeOpTimeout at most once per interval, not every
// time; the next fetch after it tries the store again.
const storeRetryInterval = time.Second

// TokenKey names what a token is for: Bearers whose keys are equal share
// their tokens through a TokenStore, and no others do. Only its Sum, a
// SHA-256, reaches the store; ClientSecret enters it hashed, so that a
// replica with another secret (another identity) never gets this one's
// token, and no secret is ever stored.
//
// NewClientCredentialsBearer and NewRefreshBearer fill it in from their
// configuration.
type TokenKey struct {
	// TokenURL is the token endpoint (or another name of the
	// authorization server).
	TokenURL string
	// ClientID and ClientSecret identify the client.
	ClientID, ClientSecret string
	// Scopes, in any order.
	Scopes []string
	// Audience holds the audience and resource (RFC 8707) values the
	// token is asked for, in any order.
	Audience []string
	// Subject is whose token it is when it is not the client's own: the
	// user of an authorization-code grant. A refresh-token Bearer with a
	// Store must name it.
	Subject string
	// Binding is the thumbprint of the key a sender-constrained token is
	// bound to (DPoP sets it): only holders of that key share it.
	Binding string
}

// IsZero reports whether k names nothing.
func (k TokenKey) IsZero() bool {
	return k.TokenURL == "" && k.ClientID == "" && k.ClientSecret == "" && len(k.Scopes) == 0 && len(k.Audience) == 0 && k.Subject == "" && k.Binding == ""
}

// Sum returns k as the store sees it: the hex SHA-256 of every field,
// with scopes and audiences sorted.
func (k TokenKey) Sum() string {
	h := sha256.New()
	field := func(v string) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(v)))
		h.Write(n[:])
		h.Write([]byte(v))
	}
	list := func(vs []string) {
		s := slices.Clone(vs)
		slices.Sort(s)
		field(fmt.Sprint(len(s)))
		for _, v := range s {
			field(v)
		}
	}
	secret := sha256.Sum256([]byte(k.ClientSecret))
	field("anyauth bearer token v2")
	field(k.TokenURL)
	field(k.ClientID)
	field(string(secret[:]))
	list(k.Scopes)
	list(k.Audience)
	field(k.Subject)
	field(k.Binding)
	return hex.EncodeToString(h.Sum(nil))
}

// String describes k without its client secret.
func (k TokenKey) String() string {
	secret := "none"
	if k.ClientSecret != "" {
		secret = "REDACTED"
	}
	return fmt.Sprintf("TokenKey{TokenURL:%q ClientID:%q ClientSecret:%s Scopes:%q Audience:%q Subject:%q Binding:%q}", k.TokenURL, k.ClientID, secret, k.Scopes, k.Audience, k.Subject, k.Binding)
}

// Format prints String whatever the verb, so the secret is never printed.
func (k TokenKey) Format(f fmt.State, _ rune) { io.WriteString(f, k.String()) }

// storeKey is the key b's tokens are stored under, computed once.
func (b *Bearer) storeKey() string {
	c := &b.cache
	c.keyOnce.Do(func() { c.keySum = b.StoreKey.Sum() })
	return c.keySum
}

// checkStore says what is missing for b to use its Store.
func (b *Bearer) checkStore() error {
	switch {
	case b.Store == nil:
		return nil
	case b.StoreKey.IsZero():
		return errors.New("bearer: Bearer.Store is set but Bearer.StoreKey is empty; name the token source (token URL, client, scopes, audience) so that only Bearers of the same client share tokens")
	case b.Renew != nil && b.StoreKey.Subject == "":
		return errors.New("bearer: Bearer.Store is set on a refresh-token Bearer but Bearer.StoreKey.Subject is empty; name the user the grant is for, so that no other user's Bearer gets its tokens")
	}
	return nil
}

// storeLease is the lease a fetch takes in the store: StoreLease, and no
// less than the time one fetch may take, so that no other process
// redeems a refresh token while this one is still redeeming it.
func (b *Bearer) storeLease() time.Duration {
	return max(b.StoreLease, b.fetchTimeout()+storeOpTimeout)
}

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

// acceptable reports whether t, read from the store, may be used instead
// of fetching: it is valid for longer than the expiry delta, is not the
// token refused, and, when the fetch refreshes ahead of expiry, is not
// due for that refresh itself.
func (b *Bearer) acceptable(t *oauth2.Token, refused string, ahead bool) bool {
	if t == nil || t.AccessToken == "" || (refused != "" && t.AccessToken == refused) {
		return false
	}
	now := time.Now()
	return b.freshAt(t, now) && !(ahead && b.dueAt(t, now))
}

// fetchShared gets a token through b.Store: the stored one if it is
// acceptable, else one fetched while holding the key's lease (and
// stored), else, when another process holds the lease, the one it
// stores. A refresh-token Bearer redeems the stored refresh token, which
// is newer than its own once another process has rotated it.
//
// When the store fails, or the lease stays held longer than a lease and
// one more fetch take, it fetches on its own (fetchAlone); after a
// failure, it skips the store for storeRetryInterval.
func (b *Bearer) fetchShared(ctx context.Context, f *tokenFetch, why, refused string, ahead bool, last *oauth2.Token, log *slog.Logger) (*oauth2.Token, error, bool) {
	if b.cache.storeDown.Load() && time.Now().UnixNano() < b.cache.storeRetryAt.Load() {
		return b.fetchAlone(ctx, f, why, ahead, last, log)
	}
	s, key := b.Store, b.storeKey()
	op := func(fn func(context.Context) error) error {
		c, cancel := context.WithTimeout(ctx, storeOpTimeout)
		defer cancel()
		return fn(c)
	}
	alone := func(opName string, err error) (*oauth2.Token, error, bool) {
		b.storeFailed(ctx, opName, err, log)
		return b.fetchAlone(ctx, f, why, ahead, last, log)
	}
	if refused != "" {
		if err := op(func(c context.Context) error { _, err := s.Invalidate(c, key, refused); return err }); err != nil {
			return alone("Invalidate", err)
		}
	}
	ttl := b.storeLease()
	deadline := time.Now().Add(ttl + b.fetchTimeout())
	for {
		var t *oauth2.Token
		if err := op(func(c context.Context) (err error) { t, err = s.Get(c, key); return err }); err != nil {
			return alone("Get", err)
		}
		b.storeWorked(ctx, log)
		if b.acceptable(t, refused, ahead) {
			log.Debug("anyauth: bearer token from the store", "why", why)
			return t, nil, false
		}
		var release func(context.Context) error
		err := op(func(c context.Context) (err error) { release, err = s.Lease(c, key, ttl); return err })
		if errors.Is(err, ErrLeaseHeld) {
			if time.Now().After(deadline) {
				log.Debug("anyauth: bearer token store lease held too long; fetching in this process")
				return b.fetchAlone(ctx, f, why, ahead, last, log)
			}
			wctx, cancel := context.WithTimeout(ctx, storeWaitPoll)
			err = s.Wait(wctx, key)
			cancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				return alone("Wait", err)
			}
			continue
		}
		if err != nil {
			return alone("Lease", err)
		}
		// Another process may have stored a token between Get and Lease.
		if err := op(func(c context.Context) (err error) { t, err = s.Get(c, key); return err }); err == nil && b.acceptable(t, refused, ahead) {
			_ = op(release)
			return t, nil, false
		}
		if t != nil && t.RefreshToken != "" {
			last = t // the fleet's refresh token: ours may be rotated away
		}
		t, err, timed := b.fetchSource(ctx, f, why, last, log)
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

// fetchAlone fetches without the store, in this process only. A
// refresh-token Bearer does not redeem its refresh token alone ahead of
// expiry: another process may redeem it too, and the loser's grant is
// gone; it keeps the token it has until that expires.
func (b *Bearer) fetchAlone(ctx context.Context, f *tokenFetch, why string, ahead bool, last *oauth2.Token, log *slog.Logger) (*oauth2.Token, error, bool) {
	if ahead && b.Renew != nil {
		return nil, errors.New("bearer: not refreshing ahead of expiry without the token store"), false
	}
	return b.fetchSource(ctx, f, why, last, log)
}
