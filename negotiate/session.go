package negotiate

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
)

// session is a Kerberos Session: one protection space, its credential
// source and service principal.
type session struct {
	src             *source
	spn             string
	answerHeader    string
	challengeHeader string
	mutual          MutualMode
	log             *slog.Logger
}

// Start takes the service ticket (from the cache, or from the KDC) for
// one request: the request Begin was for, and, once the space is known,
// every later one (preemptively).
func (s *session) Start(ctx context.Context, _ *http.Request) (anyauth.Leg, error) {
	t, err := s.src.Ticket(ctx, s.spn)
	if err != nil {
		return nil, err
	}
	return &leg{s: s, t: t}, nil
}

// String names the space's service principal and source, no secret.
func (s *session) String() string {
	return "Negotiate session for " + s.spn + " (" + s.src.desc + ")"
}

// Format prints String whatever the verb.
func (s *session) Format(f fmt.State, _ rune) { fmt.Fprint(f, s.String()) }

// maxExtraLegs bounds the legs a server may ask for beyond the first
// (accept-incomplete, KRB-ERROR recoveries).
const maxExtraLegs = 2

// leg is one request's Negotiate answer: the service ticket it uses and
// what its last AP-REQ sent, against which the server's AP-REP is
// checked.
type leg struct {
	s       *session
	t       *ticket
	last    sent
	applied bool
	extra   int  // legs beyond the first
	skewed  bool // a KRB_AP_ERR_SKEW was answered
	renewed bool // the service ticket was replaced after a refusal
}

// Apply sets "Authorization: Negotiate <token>" (Proxy-Authorization for
// a proxy) with a fresh authenticator: every round trip gets its own, so
// a server's replay cache never sees one twice.
func (l *leg) Apply(req *http.Request) error {
	realm, cname := l.s.src.clientName()
	h, st, err := apReqToken(realm, cname, l.t, l.s.mutual != MutualOff, l.s.src.clockSkew(l.s.spn))
	if err != nil {
		return err
	}
	req.Header.Set(l.s.answerHeader, h)
	l.last, l.applied = st, true
	return nil
}

// Continue decides what a new challenge after the answer means. A bare
// "Negotiate" or a SPNEGO reject is a refusal (false). A KRB-ERROR token
// is recovered from once: KRB_AP_ERR_SKEW with the server's clock,
// KRB_AP_ERR_REPEAT with a fresh authenticator, KRB_AP_ERR_TKT_EXPIRED,
// KRB_AP_ERR_MODIFIED, KRB_AP_ERR_BADKEYVER or KRB_AP_ERR_NOKEY with a
// new service ticket. accept-incomplete sends another AP-REQ, up to
// maxExtraLegs legs. request-mic is taken as a refusal: this package
// computes no SPNEGO mechListMIC.
func (l *leg) Continue(ctx context.Context, _ *http.Response, c *anyauth.Challenge) (bool, error) {
	if c == nil || c.Token68 == "" || l.extra >= maxExtraLegs {
		return false, nil
	}
	tok, err := decodeToken(c.Token68)
	if err != nil {
		l.s.log.Debug("negotiate: refusal with an undecodable token", slog.String("spn", l.s.spn), slog.String("error", err.Error()))
		return false, nil
	}
	if e := tok.krbErr; e != nil {
		l.s.log.Debug("negotiate: server sent KRB-ERROR", slog.String("spn", l.s.spn), slog.Int("code", int(e.ErrorCode)))
		switch e.ErrorCode {
		case errorcode.KRB_AP_ERR_SKEW:
			if l.skewed || e.STime.IsZero() {
				return false, nil
			}
			l.skewed = true
			server := e.STime.Add(time.Duration(e.Susec) * time.Microsecond)
			if !l.s.src.setClockSkew(l.s.spn, time.Until(server)) {
				return false, nil
			}
		case errorcode.KRB_AP_ERR_REPEAT:
			if l.skewed {
				return false, nil
			}
			l.skewed = true
		case errorcode.KRB_AP_ERR_TKT_EXPIRED, errorcode.KRB_AP_ERR_MODIFIED, errorcode.KRB_AP_ERR_BADKEYVER, errorcode.KRB_AP_ERR_NOKEY:
			if l.renewed {
				return false, nil
			}
			l.renewed = true
			l.s.src.drop(l.s.spn, l.t)
			t, err := l.s.src.Ticket(ctx, l.s.spn)
			if err != nil {
				return false, err
			}
			l.t = t
		default:
			return false, nil
		}
		l.extra++
		return true, nil
	}
	if tok.hasState && tok.state == acceptIncomplete {
		if tok.apRep != nil && l.s.mutual != MutualOff {
			if err := verifyAPRep(tok.apRep, l.last); err != nil {
				return false, err
			}
		}
		l.extra++
		return true, nil
	}
	return false, nil
}

// Finish checks the server's mutual-authentication token, as
// Kerberos.Mutual says, on the response that accepted the answer.
func (l *leg) Finish(resp *http.Response) error {
	if l.s.mutual == MutualOff || !l.applied {
		return nil
	}
	token, found := negotiateToken(resp.Header.Values(l.s.challengeHeader))
	if !found {
		if l.s.mutual == MutualRequired {
			return fmt.Errorf("%w: the %d response carries no %s: Negotiate token", ErrMutualAuth, resp.StatusCode, l.s.challengeHeader)
		}
		return nil
	}
	tok, err := decodeToken(token)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrMutualAuth, err)
	}
	switch {
	case tok.krbErr != nil:
		return fmt.Errorf("%w: the server's token is a KRB-ERROR (%d)", ErrMutualAuth, tok.krbErr.ErrorCode)
	case tok.hasState && tok.state != acceptCompleted:
		return fmt.Errorf("%w: the server's token has SPNEGO state %d, not accept-completed", ErrMutualAuth, tok.state)
	case tok.apRep == nil:
		if l.s.mutual == MutualRequired {
			return fmt.Errorf("%w: the server's token carries no AP-REP", ErrMutualAuth)
		}
		return nil
	}
	if err := verifyAPRep(tok.apRep, l.last); err != nil {
		return err
	}
	l.s.log.Debug("negotiate: mutual authentication verified", slog.String("spn", l.s.spn))
	return nil
}

// negotiateToken returns the token68 of the first Negotiate challenge
// with one among header lines.
func negotiateToken(lines []string) (string, bool) {
	if len(lines) == 0 {
		return "", false
	}
	for _, c := range anyauth.ParseChallenges(lines...) {
		if c.Is("Negotiate") && c.Token68 != "" {
			return c.Token68, true
		}
	}
	return "", false
}

// String describes the leg without its ticket.
func (l *leg) String() string { return "Negotiate leg for " + l.s.spn + " (ticket REDACTED)" }

// Format prints String whatever the verb.
func (l *leg) Format(f fmt.State, _ rune) { fmt.Fprint(f, l.String()) }
