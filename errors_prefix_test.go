package anyauth_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
)

// Every error has one prefix, once: "anyauth: " for the root's, the
// scheme's name for a scheme's, none for the sentinels schemes wrap; and
// an error of the root wrapped in another (an *AuthError around a
// provider's error) does not say "anyauth: " twice.
func TestErrorsHaveOnePrefixOnce(t *testing.T) {
	space := anyauth.ProtectionSpace{AuthScheme: "Basic", URLScheme: "https", Host: "h", Port: "443", Realm: "r", Path: "/"}
	provider := anyauth.ForOrigin("api.example.com/path", "u", "p")
	_, providerErr := provider.Credentials(t.Context(), &space)
	all := map[string]error{
		"ErrBodyNotReplayable":       anyauth.ErrBodyNotReplayable,
		"ErrNoSchemes":               anyauth.ErrNoSchemes,
		"ErrCleartext":               anyauth.ErrCleartext,
		"ErrNoCredentials":           anyauth.ErrNoCredentials,
		"ErrUnsupportedBase":         anyauth.ErrUnsupportedBase,
		"AuthError(provider)":        &anyauth.AuthError{Space: space, Err: providerErr},
		"AuthError(scheme)":          &anyauth.AuthError{Space: space, Err: schemes.ErrBadChallenge},
		"CleartextError":             &anyauth.CleartextError{AuthScheme: "Basic", Host: "h"},
		"BodyNotReplayableError":     &anyauth.BodyNotReplayableError{Method: "POST", URL: "http://h/", Status: 401, Limit: 1},
		"ProxyConnectError":          &anyauth.ProxyConnectError{Proxy: "http://p", Target: "t:443", StatusCode: 407, Status: "407", Reason: anyauth.ProxyNoCredentials},
		"digest.ErrMutualAuth":       schemes.ErrMutualAuth,
		"digest.ErrBodyNotReadable":  schemes.ErrBodyNotReadable,
		"digest.ErrBadChallenge":     schemes.ErrBadChallenge,
		"bearer.ErrTokenRefused":     schemes.ErrTokenRefused,
		"negotiate.ErrLogin":         negotiate.ErrLogin,
		"negotiate.ErrMutualAuth":    negotiate.ErrMutualAuth,
		"ntlm.ErrMalformedChallenge": ntlm.ErrMalformedChallenge,
	}
	for name, err := range all {
		msg := err.Error()
		if strings.Count(msg, "anyauth: ") > 1 {
			t.Errorf("%s says anyauth twice: %q", name, msg)
		}
		prefix, _, _ := strings.Cut(msg, ": ")
		if strings.Count(msg, prefix+": ") > 1 {
			t.Errorf("%s repeats its prefix %q: %q", name, prefix, msg)
		}
		switch prefix {
		case "anyauth", "digest", "bearer", "negotiate", "ntlm":
		default:
			t.Errorf("%s has no known prefix: %q", name, msg)
		}
	}
	// The sentinels schemes wrap carry no prefix of their own.
	for _, err := range []error{anyauth.ErrMutualAuth, anyauth.ErrInvalidCredentials} {
		if strings.Contains(err.Error(), ": ") {
			t.Errorf("sentinel %q carries a prefix", err)
		}
	}
	// One ErrInvalidCredentials: errors.Is works across packages.
	if !errors.Is(fmt.Errorf("x: %w", schemes.ErrInvalidCredentials), ntlm.ErrInvalidCredentials) || !errors.Is(ntlm.ErrInvalidCredentials, anyauth.ErrInvalidCredentials) {
		t.Error("ErrInvalidCredentials differs between packages")
	}
}
