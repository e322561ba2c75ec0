package schemes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
)

// This file holds Bearer's token cache: one current token per Bearer,
// fetched single-flight, invalidated only when the token a request sent is
// the one the server refused. Every fetch is bounded: each call of Fetch
// by FetchTimeout, the waits a throttling token endpoint asks for by
// retryAfterMax, their number by fetchAttempts, and the refreshes a
// refusing resource server can cause by MinRefreshInterval.

// DefaultExpiryDelta is how long before its Expiry a Bearer token is taken
// as expired and fetched anew, as golang.org/x/oauth2 does.
const DefaultExpiryDelta = 10 * time.Second

// DefaultFetchTimeout bounds each call of a Bearer's Fetch when
// Bearer.FetchTimeout is zero.
const DefaultFetchTimeout = 30 * time.Second

// DefaultMinRefreshInterval is the Bearer.MinRefreshInterval used when
// that field is zero.
const DefaultMinRefreshInterval = 5 * time.Second

const (
	// retryAfterMin and retryAfterMax bound the wait after a 429 or 503
	// from the token endpoint; retryAfterMin is also the wait when the
	// response has no Retry-After, or one that does not parse.
	retryAfterMin = time.Second
	retryAfterMax = 60 * time.Second
	// fetchAttempts is how many times one fetch calls Fetch when the
	// token endpoint keeps answering 429 or 503.
	fetchAttempts = 3
)

// tokenCache holds a Bearer's current token. Every protection space and
// every request of the Bearer share it.
type tokenCache struct {
	mu     sync.Mutex
	held   *heldToken  // the current token, nil when none
	flight *tokenFetch // the fetch in progress, nil when none
	// notBefore is when the token endpoint allows the next call, after
	// a 429 or 503 with Retry-After; throttled is that response's error.
	notBefore time.Time
	throttled error
	// storeDown is set while Bearer.Store fails, so that an outage is
	// logged once.
	storeDown atomic.Bool
	// storeRetryAt (UnixNano) is when a failed store is tried again:
	// until then, fetches skip it.
	storeRetryAt atomic.Int64
	// keySum is Bearer.StoreKey's Sum, computed once.
	keyOnce sync.Once
	keySum  string
	// aheadAt is when the next refresh ahead of expiry may start, after
	// one that did not bring a new token.
	aheadAt time.Time
	// refusedUntil is when a fetch may be tried again after the token
	// endpoint refused one for good (invalid_grant, invalid_client); until
	// then requests get refusal, its error, at once.
	refusedUntil time.Time
	refusal      error
}

// heldToken is a token with what the cache knows of it.
type heldToken struct {
	token *oauth2.Token
	at    time.Time // when it was fetched
	// afterRefusal reports that it was fetched because a server refused
	// the token before it.
	afterRefusal bool
	// accepted is set once a server has accepted a request carrying it.
	accepted atomic.Bool
}

// tokenFetch is one fetch of a token, shared by every request that waits
// for it: one call of Fetch, or several when the token endpoint asks to
// retry later.
type tokenFetch struct {
	done  chan struct{}
	held  *heldToken
	err   error
	timed bool // the fetch ended at FetchTimeout

	waiters int // requests waiting for it, under tokenCache.mu
}

// ErrTokenRefused names the case of a token source that hands back the
// very token the server has just refused (a static token, or a source
// that caches). Nothing returns it: the Transport returns the server's
// 401 instead, and the Debug log says this.
var ErrTokenRefused = errors.New("bearer: the token source returned the token the server refused")

// current returns a token that is valid (not within ExpiryDelta of its
// Expiry) and is not refused, fetching one when there is none. refused is
// the token a request sent and the server refused, nil for none: a newer
// token that another request already fetched is returned as it is, so N
// requests refused together cause one fetch. When the refusal may not
// cause a fetch yet (see Bearer.MinRefreshInterval), current returns
// refused itself.
//
// Waiting honours ctx; the fetch itself runs on, detached from ctx's
// cancellation, for the other requests that wait for it. A request that
// joined a fetch already under way, and sees it end at FetchTimeout,
// starts (or joins) one more, so that it is not failed by a fetch it
// never saw begin.
func (b *Bearer) current(ctx context.Context, refused *heldToken, log *slog.Logger) (*heldToken, error) {
	c := &b.cache
	for mayRetry := true; ; mayRetry = false {
		c.mu.Lock()
		if h := c.held; h != nil {
			now := time.Now()
			if b.freshAt(h.token, now) {
				if refused == nil || h.token.AccessToken != refused.token.AccessToken {
					if c.flight == nil && b.dueAt(h.token, now) && now.After(c.aheadAt) {
						b.refreshAhead(ctx, now, log)
					}
					c.mu.Unlock()
					return h, nil
				}
				if wait := b.holdBack(h); wait > 0 {
					c.mu.Unlock()
					log.Debug("anyauth: bearer token not retried", "why", "a token fetched after a refusal was refused too", "next_refresh_in", wait.Round(time.Millisecond))
					return refused, nil
				}
			}
		}
		f := c.flight
		joined := f != nil
		if f == nil && c.refusal != nil && time.Now().Before(c.refusedUntil) {
			err := c.refusal
			c.mu.Unlock()
			return nil, err
		}
		if f == nil {
			f = &tokenFetch{done: make(chan struct{})}
			c.flight = f
			why := "no token yet"
			switch {
			case refused != nil:
				why = "the server refused the token (invalid_token)"
			case c.held != nil:
				why = "the token expires"
			}
			refusedToken := ""
			if refused != nil {
				refusedToken = refused.token.AccessToken
			}
			go b.fetch(context.WithoutCancel(ctx), f, why, refusedToken, false, c.lastToken(), log)
		}
		f.waiters++
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err != nil && f.timed && joined && mayRetry && ctx.Err() == nil {
				continue
			}
			return f.held, f.err
		case <-ctx.Done():
			c.mu.Lock()
			f.waiters--
			c.mu.Unlock()
			return nil, fmt.Errorf("bearer: waiting for a token: %w", ctx.Err())
		}
	}
}

// refreshAhead starts a fetch that no request waits for, because the
// token held is still valid but near its expiry (see dueAt): requests go
// on with the held token meanwhile. Until aheadBackoff has passed, no
// other starts. c.mu is held.
func (b *Bearer) refreshAhead(ctx context.Context, now time.Time, log *slog.Logger) {
	c := &b.cache
	c.aheadAt = now.Add(aheadBackoff)
	f := &tokenFetch{done: make(chan struct{})}
	c.flight = f
	go b.fetch(context.WithoutCancel(ctx), f, "the token expires soon (refreshing ahead)", "", true, c.lastToken(), log)
}

// aheadBackoff is how long after a refresh ahead of expiry the next may
// start, when that one brought no new token (the endpoint failed, or
// another process holds the store's lease and has not stored one yet).
const aheadBackoff = time.Second

// lastToken is the token held, for a Renew to redeem. c.mu is held.
func (c *tokenCache) lastToken() *oauth2.Token {
	if c.held == nil {
		return nil
	}
	return c.held.token
}

// holdBack returns how long a refusal of h must wait before it may cause
// a fetch: zero unless h was itself fetched after a refusal, has not been
// accepted since, and is younger than MinRefreshInterval.
func (b *Bearer) holdBack(h *heldToken) time.Duration {
	interval := b.minRefreshInterval()
	if interval <= 0 || !h.afterRefusal || h.accepted.Load() {
		return 0
	}
	return max(interval-time.Since(h.at), 0)
}

// fetch gets a token for f and publishes the result: from Bearer.Store,
// when there is one (see fetchShared), else from fetchSource. refused is
// the access token a server refused, "" for none; ahead reports a
// refresh ahead of expiry, that no request waits for; last is the token
// held, for Renew.
func (b *Bearer) fetch(ctx context.Context, f *tokenFetch, why, refused string, ahead bool, last *oauth2.Token, log *slog.Logger) {
	c := &b.cache
	var (
		t     *oauth2.Token
		err   error
		timed bool
	)
	if b.Store != nil {
		t, err, timed = b.fetchShared(ctx, f, why, refused, ahead, last, log)
	} else {
		t, err, timed = b.fetchSource(ctx, f, why, last, log)
	}
	var h *heldToken
	if err == nil {
		h = &heldToken{token: t, at: time.Now(), afterRefusal: refused != ""}
	}
	c.mu.Lock()
	if err == nil {
		c.held, c.refusal = h, nil
	} else if anyauth.IsPermanent(err) && !ahead {
		// A refused grant stays refused: no request asks again within
		// MinRefreshInterval, so a fleet of requests cannot hammer the
		// token endpoint with it.
		c.refusal, c.refusedUntil = err, time.Now().Add(b.minRefreshInterval())
	}
	if c.flight == f {
		c.flight = nil
	}
	f.held, f.err, f.timed = h, err, timed
	c.mu.Unlock()
	close(f.done)
}

// fetchSource gets a token from Fetch (or Renew) for f: it waits out the token
// endpoint's Retry-After and calls Fetch again, up to fetchAttempts
// calls, as long as a request still waits.
func (b *Bearer) fetchSource(ctx context.Context, f *tokenFetch, why string, last *oauth2.Token, log *slog.Logger) (t *oauth2.Token, err error, timed bool) {
	c := &b.cache
	for attempt := 1; ; attempt++ {
		c.mu.Lock()
		wait, throttled := time.Until(c.notBefore), c.throttled
		c.mu.Unlock()
		if wait > 0 {
			time.Sleep(wait)
			c.mu.Lock()
			nobody := f.waiters == 0
			c.mu.Unlock()
			if nobody {
				// Every request gave up meanwhile: the next one
				// starts afresh.
				t, err, timed = nil, throttled, false
				break
			}
		}
		t, err, timed = b.fetchOnce(ctx, why, attempt, last, log)
		delay, ok := retryAfter(err)
		if !ok {
			break
		}
		c.mu.Lock()
		c.notBefore, c.throttled = time.Now().Add(delay), err
		c.mu.Unlock()
		if attempt == fetchAttempts {
			break
		}
	}
	return t, err, timed
}

// fetchOnce calls Fetch once, bounded by FetchTimeout, and checks what it
// returns. timed reports that the bound was reached. When Fetch ignores
// its context and overruns the bound, its call is abandoned: whatever it
// returns later is dropped.
func (b *Bearer) fetchOnce(ctx context.Context, why string, attempt int, last *oauth2.Token, log *slog.Logger) (t *oauth2.Token, err error, timed bool) {
	timeout := b.fetchTimeout()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type result struct {
		t   *oauth2.Token
		err error
	}
	res := make(chan result, 1)
	start := time.Now()
	go func() {
		t, err := b.source(ctx, last)
		res <- result{t, err}
	}()
	select {
	case r := <-res:
		t, err = r.t, r.err
		timed = err != nil && ctx.Err() != nil
	case <-ctx.Done():
		err, timed = ctx.Err(), true
	}
	switch {
	case timed:
		if !errors.Is(err, context.DeadlineExceeded) {
			err = errors.Join(context.DeadlineExceeded, err)
		}
		err = fmt.Errorf("bearer: fetching a token: no answer within FetchTimeout (%v): %w", timeout, err)
	case err != nil:
		err = tokenError(err)
	case t == nil || t.AccessToken == "":
		err = errors.New("bearer: the token source returned no access token")
	case b.dpop && !strings.EqualFold(t.TokenType, "DPoP"):
		// RFC 9449 §5: a DPoP-bound token says so; a Bearer token is
		// never sent with a proof as if it were one.
		err = fmt.Errorf("dpop: the token source returned a token of type %q, not DPoP", truncateForError(t.TokenType))
	case !b.dpop && t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer"):
		err = fmt.Errorf("bearer: the token source returned a token of type %q, not Bearer", truncateForError(t.TokenType))
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("why", why), slog.Int("attempt", attempt), slog.Duration("took", time.Since(start))}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
			if d, ok := retryAfter(err); ok {
				attrs = append(attrs, slog.Duration("retry_after", d))
			}
		} else if !t.Expiry.IsZero() {
			attrs = append(attrs, slog.Time("expiry", t.Expiry))
		}
		log.LogAttrs(ctx, slog.LevelDebug, "anyauth: bearer token fetch", attrs...)
	}
	if err != nil {
		return nil, err, timed
	}
	return completed(t, last), nil, false
}

// completed returns t with what the cache needs filled in, without
// changing the token the source returned: its lifetime (ExpiresIn) from
// its Expiry when the source set only that, and last's refresh token when
// a refresh returned none (the server keeps the old one valid, RFC 6749
// §6).
func completed(t, last *oauth2.Token) *oauth2.Token {
	needLife := t.ExpiresIn <= 0 && !t.Expiry.IsZero()
	needRefresh := t.RefreshToken == "" && last != nil && last.RefreshToken != ""
	if !needLife && !needRefresh {
		return t
	}
	c := *t
	if needLife {
		c.ExpiresIn = int64(math.Ceil(time.Until(t.Expiry).Seconds()))
	}
	if needRefresh {
		c.RefreshToken = last.RefreshToken
	}
	return &c
}

// minRefreshInterval is MinRefreshInterval, or its default; less than
// zero turns its limits off.
func (b *Bearer) minRefreshInterval() time.Duration {
	if b.MinRefreshInterval == 0 {
		return DefaultMinRefreshInterval
	}
	return b.MinRefreshInterval
}

// fetchTimeout is FetchTimeout, or its default.
func (b *Bearer) fetchTimeout() time.Duration {
	if b.FetchTimeout > 0 {
		return b.FetchTimeout
	}
	return DefaultFetchTimeout
}

// freshAt reports whether t is valid at now for longer than the expiry
// delta: ExpiryDelta, or else DefaultExpiryDelta but no more than a tenth
// of the token's lifetime, so that a token issued for 20 s is used for
// 18 s, not 10.
func (b *Bearer) freshAt(t *oauth2.Token, now time.Time) bool {
	if t.Expiry.IsZero() {
		return true
	}
	return now.Add(b.expiryDelta(t)).Before(t.Expiry)
}

// dueAt reports whether t, though fresh, is near enough its expiry at now
// to be refreshed ahead: within a fifth of its lifetime (at most five
// minutes) of its Expiry, and never later than the expiry delta.
func (b *Bearer) dueAt(t *oauth2.Token, now time.Time) bool {
	if t.Expiry.IsZero() {
		return false
	}
	life := time.Duration(t.ExpiresIn) * time.Second
	window := max(b.expiryDelta(t), min(life/5, 5*time.Minute))
	return !now.Add(window).Before(t.Expiry)
}

// expiryDelta is how long before its Expiry t is taken as expired.
func (b *Bearer) expiryDelta(t *oauth2.Token) time.Duration {
	if b.ExpiryDelta != 0 {
		return b.ExpiryDelta
	}
	if life := time.Duration(t.ExpiresIn) * time.Second; life > 0 {
		return min(DefaultExpiryDelta, life/10)
	}
	return DefaultExpiryDelta
}

// tokenError wraps an error of the token source. A refusal by the
// authorization server (a 4xx RetrieveError: invalid_client,
// invalid_grant) is permanent; a 408, a 429, a 5xx or a network error is
// not.
func tokenError(err error) error {
	err = fmt.Errorf("bearer: fetching a token: %w", err)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
		re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
		return anyauth.Permanent(err)
	}
	return err
}

// retryAfter reports whether err is a 429 or 503 from the token endpoint,
// and how long to wait before calling it again: its Retry-After (delay
// seconds or HTTP-date), within retryAfterMin and retryAfterMax.
func retryAfter(err error) (time.Duration, bool) {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.Response == nil {
		return 0, false
	}
	if s := re.Response.StatusCode; s != http.StatusTooManyRequests && s != http.StatusServiceUnavailable {
		return 0, false
	}
	return parseRetryAfter(re.Response.Header.Get("Retry-After"), time.Now()), true
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3) at now,
// bounded by retryAfterMin and retryAfterMax.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	d := retryAfterMin
	if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		if n > uint64(retryAfterMax/time.Second) {
			n = uint64(retryAfterMax / time.Second)
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, retryAfterMin), retryAfterMax)
}
