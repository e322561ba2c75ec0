package schemes

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// ErrInvalidCredentials is wrapped by errors about credentials that a
// scheme cannot encode, such as a Basic user-id holding a colon. Such an
// error is permanent (anyauth.IsPermanent): the same credentials would
// fail again.
var ErrInvalidCredentials = anyauth.ErrInvalidCredentials

// Basic answers Basic challenges (RFC 7617). User names and passwords are
// sent as UTF-8, as the challenge's charset="UTF-8" asks and as browsers
// do without it.
//
// Basic gives the password to anyone who reads the header, so the
// Transport sends it over plain http only to loopback hosts unless told
// otherwise (Transport.AllowCleartext, Transport.CleartextHosts).
type Basic struct{}

// Name returns "Basic".
func (Basic) Name() string { return "Basic" }

// Strength returns anyauth.StrengthBasic for a Basic challenge with
// auth-params, and false for one that carries a token68: RFC 7617's
// challenge has auth-params only (realm is required), so a token68 means
// the server sent something else, such as `Basic realm=, charset="UTF-8"`
// with an empty realm. A challenge without any realm is still answered,
// as browsers and curl do.
func (Basic) Strength(c *anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthBasic, c.Token68 == ""
}

// Traits reports that a Basic header reveals a reusable secret (the
// password), so the Transport applies its cleartext guard.
func (Basic) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Begin looks up the credentials for the challenge's protection space and
// returns a Session that sends them.
func (Basic) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	if up == nil {
		return nil, fmt.Errorf("basic: %w: the provider returned none", anyauth.ErrNoCredentials)
	}
	if strings.ContainsRune(up.Username, ':') {
		return nil, fmt.Errorf("basic: %w: a user-id cannot hold a colon (RFC 7617 §2)", ErrInvalidCredentials)
	}
	if hasControl(up.Username) || hasControl(up.Password) {
		return nil, fmt.Errorf("basic: %w: credentials cannot hold control characters (RFC 7617 §2)", ErrInvalidCredentials)
	}
	return &basicSession{
		username:     up.Username,
		answerHeader: a.Space.AnswerHeader(),
		header:       "Basic " + base64.StdEncoding.EncodeToString([]byte(up.Username+":"+up.Password)),
	}, nil
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// basicSession sends the same header on every request of its space. It
// holds no per-request state, so it is its own Leg.
type basicSession struct {
	username     string
	answerHeader string
	header       string
}

// Start returns s: every request of the space sends the same header.
func (s *basicSession) Start(context.Context, *http.Request) (anyauth.Leg, error) { return s, nil }

// Apply sets the header.
func (s *basicSession) Apply(req *http.Request) error {
	req.Header[s.answerHeader] = []string{s.header} // the name is canonical already
	return nil
}

// Continue returns false: a Basic challenge after an answer is a
// rejection.
func (s *basicSession) Continue(context.Context, *http.Response, *anyauth.Challenge) (bool, error) {
	return false, nil
}

// Finish accepts every response: Basic has nothing to verify.
func (s *basicSession) Finish(*http.Response) error { return nil }

// String names the user and hides the header.
func (s *basicSession) String() string {
	return fmt.Sprintf("Basic session for %q (credentials REDACTED)", s.username)
}

// Format prints s with its credentials redacted, whatever the verb.
func (s *basicSession) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }
