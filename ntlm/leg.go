package ntlm

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"

	"github.com/Azure/go-ntlmssp"
	"github.com/anyauth/anyauth"
)

// The states of a leg.
const (
	stateNegotiate        = iota // next: send the negotiate message
	stateSentNegotiate           // waiting for the challenge message
	stateAuthenticate            // next: send the authenticate message
	stateSentAuthenticate        // waiting for the server's verdict
)

// leg is one request's handshake.
type leg struct {
	s         *session
	state     int
	challenge []byte // the server's challenge message, sanitized
}

// Probing reports that the negotiate message is next: it can never be
// accepted, so the Transport sends it without the request body.
func (l *leg) Probing() bool { return l.state == stateNegotiate }

// Apply sets the negotiate or the authenticate message, whichever is next.
func (l *leg) Apply(req *http.Request) error {
	var msg []byte
	var err error
	switch l.state {
	case stateNegotiate, stateSentNegotiate:
		// An empty domain and workstation are what go-ntlmssp
		// recommends: servers ignore them.
		msg, err = ntlmssp.NewNegotiateMessage("", "")
		l.state = stateSentNegotiate
	default:
		msg, err = ntlmssp.NewAuthenticateMessage(l.challenge, l.s.domain+`\`+l.s.user, l.s.password,
			&ntlmssp.AuthenticateMessageOptions{WorkstationName: l.s.scheme.opts.Workstation})
		if err != nil {
			err = fmt.Errorf("%w: %w", ErrMalformedChallenge, err)
		}
		l.state = stateSentAuthenticate
	}
	if err != nil {
		return err
	}
	req.Header.Set(l.s.answerHeader, l.s.scheme.authScheme+" "+base64.StdEncoding.EncodeToString(msg))
	return nil
}

// Continue takes the server's challenge message after the negotiate
// message. A challenge after the authenticate message, or one without a
// token, is a refusal.
func (l *leg) Continue(_ context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if l.state != stateSentNegotiate || c == nil || c.Token68 == "" {
		return false, nil
	}
	raw, err := base64.StdEncoding.DecodeString(c.Token68)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrMalformedChallenge, err)
	}
	msg, err := sanitizeChallenge(raw)
	if err != nil {
		return false, err
	}
	l.challenge, l.state = msg, stateAuthenticate
	return true, nil
}

// Finish accepts the server's verdict: NTLM has no mutual authentication.
func (l *leg) Finish(*http.Response) error { return nil }
