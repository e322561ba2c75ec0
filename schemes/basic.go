package schemes

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// ErrInvalidCredentials is wrapped by errors about credentials that a
// scheme cannot encode, such as a Basic user-id holding a colon.
var ErrInvalidCredentials = errors.New("anyauth/schemes: invalid credentials")

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

// Strength returns anyauth.StrengthBasic for every Basic challenge.
func (Basic) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthBasic, true
}

// RevealsSecret returns true: a Basic header carries the password.
func (Basic) RevealsSecret() bool { return true }

// Begin looks up the credentials for the challenge's protection space and
// returns a Session that sends them.
func (Basic) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	if err != nil {
		return nil, err
	}
	if strings.ContainsRune(up.Username, ':') {
		return nil, fmt.Errorf("%w: a Basic user-id cannot hold a colon (RFC 7617 §2)", ErrInvalidCredentials)
	}
	if hasControl(up.Username) || hasControl(up.Password) {
		return nil, fmt.Errorf("%w: Basic credentials cannot hold control characters (RFC 7617 §2)", ErrInvalidCredentials)
	}
	return &basicSession{
		username: up.Username,
		header:   "Basic " + base64.StdEncoding.EncodeToString([]byte(up.Username+":"+up.Password)),
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

// basicSession sends the same header on every request of its space.
type basicSession struct {
	username string
	header   string
}

// Authorize returns the same header for every request of the space.
func (s *basicSession) Authorize(*http.Request) (string, error) { return s.header, nil }

// Refresh returns false: a Basic challenge after an answer is a rejection.
func (s *basicSession) Refresh(*anyauth.Challenge) bool { return false }

// Complete accepts every response: Basic has nothing to verify.
func (s *basicSession) Complete(*http.Response) error { return nil }

// String names the user and hides the header.
func (s *basicSession) String() string {
	return fmt.Sprintf("Basic session for %q (credentials REDACTED)", s.username)
}

// Format prints s with its credentials redacted, whatever the verb.
func (s *basicSession) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }
