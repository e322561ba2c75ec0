// Package tokenstoretest checks that a schemes.TokenStore keeps the
// contract the Bearer relies on: Run it from the tests of a store.
//
//	func TestContract(t *testing.T) {
//		tokenstoretest.Run(t, func(t *testing.T) schemes.TokenStore { return myStore(t) })
//	}
package tokenstoretest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// Run checks store, made anew by newStore for each subtest: Get and Put
// round-trip every field the Bearer uses, Put keeps a later token,
// Invalidate compares and keeps the refresh token, a token without a
// refresh token is gone after its Expiry, the lease is exclusive, ends on
// release and on its ttl, and Wait wakes on a change and honours its
// context. Keys are random, so a shared server may hold other entries.
func Run(t *testing.T, newStore func(t *testing.T) schemes.TokenStore) {
	for _, c := range []struct {
		name  string
		check func(*testing.T, schemes.TokenStore)
	}{
		{"GetPut", checkGetPut},
		{"PutKeepsLaterToken", checkPutKeepsLaterToken},
		{"Invalidate", checkInvalidate},
		{"Expiry", checkExpiry},
		{"Lease", checkLease},
		{"Wait", checkWait},
	} {
		t.Run(c.name, func(t *testing.T) { c.check(t, newStore(t)) })
	}
}

// at is a time d from now, to the millisecond a store may keep.
func at(d time.Duration) time.Time { return time.Now().Add(d).Round(time.Millisecond) }

// checkGetPut: a new key is a miss; Put then Get round-trips every field
// the Bearer uses.
func checkGetPut(t *testing.T, s schemes.TokenStore) {
	ctx := context.Background()
	key := newKey()
	if tok, err := s.Get(ctx, key); tok != nil || err != nil {
		t.Fatalf("Get of a new key = %v, %v; want nil, nil", tok != nil, err)
	}
	in := &oauth2.Token{AccessToken: "at-1", TokenType: "Bearer", RefreshToken: "rt-1", Expiry: at(time.Minute), ExpiresIn: 60}
	put(t, s, key, in)
	got := get(t, s, key)
	if got == nil || got.AccessToken != in.AccessToken || got.TokenType != in.TokenType || got.RefreshToken != in.RefreshToken ||
		!got.Expiry.Equal(in.Expiry) || got.ExpiresIn != in.ExpiresIn {
		t.Fatalf("Get after Put lost a field (access, type, refresh, expiry or expires_in)")
	}
}

// checkPutKeepsLaterToken: a token expiring sooner never replaces one
// expiring later; a later one does.
func checkPutKeepsLaterToken(t *testing.T, s schemes.TokenStore) {
	key := newKey()
	put(t, s, key, &oauth2.Token{AccessToken: "later", Expiry: at(2 * time.Minute)})
	put(t, s, key, &oauth2.Token{AccessToken: "sooner", Expiry: at(time.Minute)})
	if got := get(t, s, key); got == nil || got.AccessToken != "later" {
		t.Fatalf("a token expiring sooner replaced one expiring later")
	}
	put(t, s, key, &oauth2.Token{AccessToken: "latest", Expiry: at(3 * time.Minute)})
	if got := get(t, s, key); got == nil || got.AccessToken != "latest" {
		t.Fatalf("a token expiring later did not replace the stored one")
	}
}

// checkInvalidate: Invalidate compares the access token, keeps the
// refresh token, and a Put after it stores the new token.
func checkInvalidate(t *testing.T, s schemes.TokenStore) {
	ctx := context.Background()
	key := newKey()
	put(t, s, key, &oauth2.Token{AccessToken: "at-2", RefreshToken: "rt-2", Expiry: at(time.Minute)})
	if ok, err := s.Invalidate(ctx, key, "at-1"); ok || err != nil {
		t.Fatalf("Invalidate of a token no longer stored = %v, %v; want false, nil", ok, err)
	}
	if got := get(t, s, key); got == nil || got.AccessToken != "at-2" {
		t.Fatalf("Invalidate of another token changed the entry")
	}
	if ok, err := s.Invalidate(ctx, key, "at-2"); !ok || err != nil {
		t.Fatalf("Invalidate of the stored token = %v, %v; want true, nil", ok, err)
	}
	got := get(t, s, key)
	if got == nil || got.AccessToken != "" || got.RefreshToken != "rt-2" {
		t.Fatalf("after Invalidate, Get must return the refresh token without the access token")
	}
	put(t, s, key, &oauth2.Token{AccessToken: "at-3", RefreshToken: "rt-3", Expiry: at(30 * time.Second)})
	if got := get(t, s, key); got == nil || got.AccessToken != "at-3" {
		t.Fatalf("Put after Invalidate did not store the new token")
	}
	other := newKey()
	put(t, s, other, &oauth2.Token{AccessToken: "plain", Expiry: at(time.Minute)})
	if ok, _ := s.Invalidate(ctx, other, "plain"); !ok {
		t.Fatalf("Invalidate of a token without refresh token = false")
	}
	if got := get(t, s, other); got != nil && got.AccessToken != "" {
		t.Fatalf("an invalidated token is still returned")
	}
}

// checkExpiry: a token without a refresh token is not returned as valid
// after its Expiry; one with a refresh token is kept.
func checkExpiry(t *testing.T, s schemes.TokenStore) {
	short, refresh := newKey(), newKey()
	put(t, s, short, &oauth2.Token{AccessToken: "short", Expiry: at(300 * time.Millisecond)})
	put(t, s, refresh, &oauth2.Token{AccessToken: "short", RefreshToken: "rt", Expiry: at(300 * time.Millisecond)})
	time.Sleep(600 * time.Millisecond)
	if got := get(t, s, short); got != nil && got.AccessToken != "" && time.Now().Before(got.Expiry) {
		t.Fatalf("an expired token is returned as valid")
	}
	if got := get(t, s, refresh); got == nil || got.RefreshToken != "rt" {
		t.Fatalf("a token with a refresh token was dropped at its access token's expiry")
	}
}

// checkLease: the lease is exclusive, ends on release and on its ttl,
// and a late release does not free the next holder's lease.
func checkLease(t *testing.T, s schemes.TokenStore) {
	ctx := context.Background()
	key := newKey()
	release, err := s.Lease(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("first Lease: %v", err)
	}
	if _, err := s.Lease(ctx, key, time.Minute); !errors.Is(err, schemes.ErrLeaseHeld) {
		t.Fatalf("second Lease = %v, want ErrLeaseHeld", err)
	}
	if err := release(ctx); err != nil {
		t.Fatalf("release: %v", err)
	}
	short, err := s.Lease(ctx, key, 300*time.Millisecond)
	if err != nil {
		t.Fatalf("Lease after release: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	mine, err := s.Lease(ctx, key, time.Minute)
	if err != nil {
		t.Fatalf("Lease after the last one's ttl: %v", err)
	}
	if err := short(ctx); err != nil { // a late release must not free another's lease
		t.Fatalf("late release: %v", err)
	}
	if _, err := s.Lease(ctx, key, time.Minute); !errors.Is(err, schemes.ErrLeaseHeld) {
		t.Fatalf("a holder whose lease expired released the next holder's lease")
	}
	mine(ctx)
}

// checkWait: Wait wakes on a Put and honours its context.
func checkWait(t *testing.T, s schemes.TokenStore) {
	ctx := context.Background()
	key := newKey()
	release, err := s.Lease(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		done <- s.Wait(c, key)
	}()
	time.Sleep(100 * time.Millisecond)
	put(t, s, key, &oauth2.Token{AccessToken: "woken", Expiry: at(time.Minute)})
	if err := <-done; err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait returned %v after a Put, want well under 2 s", d)
	}
	release(ctx)
	if _, err := s.Lease(ctx, key, time.Minute); err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	err = s.Wait(c, key)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait with an ending context = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Wait outlived its context by %v", d)
	}
}

func newKey() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func put(t *testing.T, s schemes.TokenStore, key string, tok *oauth2.Token) {
	t.Helper()
	if err := s.Put(context.Background(), key, tok); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func get(t *testing.T, s schemes.TokenStore, key string) *oauth2.Token {
	t.Helper()
	tok, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	return tok
}
