package schemes

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// A BearerError is the error a resource server reported in the Bearer
// challenge of a response (RFC 6750 §3): a 401 that refused a token, or a
// 403 insufficient_scope. The Transport returns such responses as they
// are, following the net/http contract; BearerErrorOf reads them. It is
// shaped like oauth2.RetrieveError.
type BearerError struct {
	// Response is the response that carried the challenge.
	Response *http.Response
	// ErrorCode is RFC 6750's error parameter: "invalid_request",
	// "invalid_token" or "insufficient_scope".
	ErrorCode string
	// ErrorDescription is the error_description parameter.
	ErrorDescription string
	// ErrorURI is the error_uri parameter.
	ErrorURI string
	// Scope is the scope parameter, split at spaces: the scopes the
	// resource needs.
	Scope []string
	// Realm is the realm parameter.
	Realm string
}

// Error describes the error with the response's status.
func (e *BearerError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bearer: server response %d: %q", e.status(), e.ErrorCode)
	if e.ErrorDescription != "" {
		fmt.Fprintf(&b, " %q", e.ErrorDescription)
	}
	if e.ErrorURI != "" {
		fmt.Fprintf(&b, " %q", e.ErrorURI)
	}
	return b.String()
}

func (e *BearerError) status() int {
	if e.Response == nil {
		return 0
	}
	return e.Response.StatusCode
}

// BearerErrorOf returns the error of resp's first Bearer challenge that
// has an error parameter, and nil when resp has none (a 200, a challenge
// without error, or no Bearer challenge at all). It reads WWW-Authenticate
// only; it does not touch the body.
func BearerErrorOf(resp *http.Response) *BearerError {
	if resp == nil {
		return nil
	}
	for _, c := range anyauth.ParseChallenges(resp.Header.Values("Www-Authenticate")...) {
		if !c.Is("Bearer") {
			continue
		}
		code, ok := c.Lookup("error")
		if !ok {
			continue
		}
		return &BearerError{
			Response:         resp,
			ErrorCode:        code,
			ErrorDescription: c.Param("error_description"),
			ErrorURI:         c.Param("error_uri"),
			Scope:            strings.Fields(c.Param("scope")),
			Realm:            c.Realm(),
		}
	}
	return nil
}
