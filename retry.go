package anyauth

import (
	"context"
	"net/http"
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
