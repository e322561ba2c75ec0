package anyauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
)

// A RetryPolicy decides whether a request should be sent again after a
// response or an error. Its signature is go-retryablehttp's CheckRetry, so
// one converts to the other.
type RetryPolicy = func(ctx context.Context, resp *http.Response, err error) (bool, error)

// StopOnPermanent wraps a retry policy so that it never retries a request
// that failed with a permanent error (IsPermanent): a refusal to send a
// secret in the clear, a server that failed mutual authentication, a
// proxy that refused CONNECT. Retrying those would send the same
// credentials to the same place again. Everything else is left to policy.
//
// With go-retryablehttp, keep the Transport below the retry layer, where
// it answers 401 and 407 before the policy sees them:
//
//	t := &anyauth.Transport{...}
//	rc := retryablehttp.NewClient()
//	rc.HTTPClient = &http.Client{Transport: t}
//	rc.CheckRetry = anyauth.StopOnPermanent(retryablehttp.DefaultRetryPolicy)
func StopOnPermanent(policy RetryPolicy) RetryPolicy {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		if IsPermanent(err) {
			return false, err
		}
		return policy(ctx, resp, err)
	}
}

// ErrUnsupportedBase is wrapped by the error of a Transport whose Base it
// cannot answer through safely.
var ErrUnsupportedBase = errors.New("anyauth: unsupported Base")

// checkBase refuses a Base that would resend answers behind the
// Transport's back: go-retryablehttp's RoundTripper retries below it with
// the same headers (a Digest nc replayed, which strict servers refuse),
// reads every body whole before the Transport sees it, and follows
// redirects itself, carrying the Transport's answer along where its scope
// rules cannot see.
func checkBase(base http.RoundTripper) error {
	t := reflect.TypeOf(base)
	if t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && t.PkgPath() == "github.com/hashicorp/go-retryablehttp" && t.Name() == "RoundTripper" {
		return Permanent(fmt.Errorf("%w: Base is a go-retryablehttp RoundTripper, whose retries and redirects below the Transport would resend its answers unchanged; put retryablehttp above the Transport instead (a retryablehttp.Client whose HTTPClient.Transport is the anyauth.Transport)", ErrUnsupportedBase))
	}
	return nil
}
