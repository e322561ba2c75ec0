package schemes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
	"golang.org/x/oauth2"
)

// This file holds Bearer's token cache: one current token per Bearer,
// fetched single-flight, invalidated only when the token a request sent is
// the one the server refused.

// DefaultExpiryDelta is how long before its Expiry a Bearer token is taken
// as expired and fetched anew, as golang.org/x/oauth2 does.
const DefaultExpiryDelta = 10 * time.Second

// tokenCache holds a Bearer's current token. Every protection space and
// every request of the Bearer share it.
type tokenCache struct {
	mu     sync.Mutex
	token  *oauth2.Token
	flight *tokenFetch // the fetch in progress, nil when none
}

// tokenFetch is one call of the token source, shared by every request
// that waits for it.
type tokenFetch struct {
	done  chan struct{}
	token *oauth2.Token
	err   error
}

// ErrTokenRefused is wrapped by the error of a Bearer whose token source
// hands back the very token the server has just refused (a static token,
// or a source that caches). It is not returned by the Transport, which
// returns the server's 401 instead; it appears in the Debug log.
var ErrTokenRefused = errors.New("bearer: the token source returned the token the server refused")

// current returns a token that is valid (not within ExpiryDelta of its
// Expiry) and is not refused, fetching one when there is none. refused is
// the access token a request sent and the server refused, "" for none: a
// newer token that another request already fetched is returned as it is,
// so N requests refused together cause one fetch. Waiting honours ctx;
// the fetch itself runs on, detached from ctx's cancellation, for the
// other requests that wait for it.
func (b *Bearer) current(ctx context.Context, refused string, log *slog.Logger) (*oauth2.Token, error) {
	c := &b.cache
	c.mu.Lock()
	if t := c.token; t != nil && t.AccessToken != refused && b.fresh(t) {
		c.mu.Unlock()
		return t, nil
	}
	f := c.flight
	if f == nil {
		f = &tokenFetch{done: make(chan struct{})}
		c.flight = f
		why := "no token yet"
		switch {
		case refused != "":
			why = "the server refused the token (invalid_token)"
		case c.token != nil:
			why = "the token expires"
		}
		go b.fetch(context.WithoutCancel(ctx), f, why, log)
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// fetch calls the token source once and publishes the result.
func (b *Bearer) fetch(ctx context.Context, f *tokenFetch, why string, log *slog.Logger) {
	start := time.Now()
	t, err := b.source(ctx)
	switch {
	case err != nil:
		err = tokenError(err)
	case t == nil || t.AccessToken == "":
		err = errors.New("bearer: the token source returned no access token")
	case t.TokenType != "" && !strings.EqualFold(t.TokenType, "bearer"):
		err = fmt.Errorf("bearer: the token source returned a token of type %q, not Bearer", truncateForError(t.TokenType))
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		attrs := []slog.Attr{slog.String("why", why), slog.Duration("took", time.Since(start))}
		if err != nil {
			attrs = append(attrs, slog.String("error", err.Error()))
		} else if !t.Expiry.IsZero() {
			attrs = append(attrs, slog.Time("expiry", t.Expiry))
		}
		log.LogAttrs(ctx, slog.LevelDebug, "anyauth: bearer token fetch", attrs...)
	}
	c := &b.cache
	c.mu.Lock()
	if err == nil {
		c.token = t
	}
	c.flight = nil
	f.token, f.err = t, err
	c.mu.Unlock()
	close(f.done)
}

// fresh reports whether t is valid for longer than the expiry delta.
func (b *Bearer) fresh(t *oauth2.Token) bool {
	if t.Expiry.IsZero() {
		return true
	}
	delta := b.ExpiryDelta
	if delta == 0 {
		delta = DefaultExpiryDelta
	}
	return time.Now().Add(delta).Before(t.Expiry)
}

// tokenError wraps an error of the token source. A refusal by the
// authorization server (a 4xx RetrieveError: invalid_client,
// invalid_grant) is permanent; a 5xx or a network error is not.
func tokenError(err error) error {
	err = fmt.Errorf("bearer: fetching a token: %w", err)
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 &&
		re.Response.StatusCode != http.StatusTooManyRequests && re.Response.StatusCode != http.StatusRequestTimeout {
		return anyauth.Permanent(err)
	}
	return err
}
