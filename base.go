package anyauth

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
)

// This file holds what the Transport refuses as Base, and how.

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

// failingBase answers every request with err, for a Base the Transport
// refuses.
type failingBase struct{ err error }
