package anyauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
)

// This file lets a caller learn why a challenge went unanswered. The
// Transport returns the server's 401 or 407 untouched when it cannot
// answer it (no credentials, a Kerberos login the KDC refused, a secret
// that would go in the clear); the reasons go to the Debug log and, for
// a request whose context carries a Diagnosis, into it.

// A Diagnosis collects, for the requests whose context carries it (see
// WithDiagnosis), each challenge that a configured scheme understood but
// did not answer, and why. It is safe for concurrent use; the zero value
// is ready.
//
//	var d anyauth.Diagnosis
//	req = req.WithContext(anyauth.WithDiagnosis(req.Context(), &d))
//	resp, err := client.Do(req)
//	if err == nil && resp.StatusCode == http.StatusUnauthorized {
//		log.Print(d.Err()) // such as "negotiate: Kerberos login refused: ... wrong password"
//	}
type Diagnosis struct {
	mu      sync.Mutex
	skipped []Skip
}

// A Skip is a challenge that a scheme understood and did not answer.
type Skip struct {
	// Space is the challenge's protection space.
	Space ProtectionSpace
	// Scheme is the name of the scheme that did not answer.
	Scheme string
	// Err says why. It wraps ErrNoCredentials when the scheme had
	// nothing to answer with (then the scheme's own error, such as a
	// refused Kerberos login, is wrapped too).
	Err error
}

type diagnosisKey struct{}

// WithDiagnosis returns a copy of ctx that carries d: requests sent with
// it record in d why their challenges went unanswered.
func WithDiagnosis(ctx context.Context, d *Diagnosis) context.Context {
	return context.WithValue(ctx, diagnosisKey{}, d)
}

// Skipped returns the challenges recorded so far, oldest first.
func (d *Diagnosis) Skipped() []Skip {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Skip(nil), d.skipped...)
}

// Err joins the errors of the challenges recorded so far (errors.Is and
// errors.As see each of them), or returns nil when there are none.
func (d *Diagnosis) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := make([]error, len(d.skipped))
	for i := range d.skipped {
		errs[i] = d.skipped[i].Err
	}
	return errors.Join(errs...)
}

// noteSkip records in the request's Diagnosis, if any, that scheme did
// not answer a challenge of space.
func (x *exchange) noteSkip(space *ProtectionSpace, scheme string, err error) {
	d, _ := x.ctx().Value(diagnosisKey{}).(*Diagnosis)
	if d == nil {
		return
	}
	d.mu.Lock()
	if len(d.skipped) < maxSkips {
		d.skipped = append(d.skipped, Skip{Space: *space, Scheme: scheme, Err: err})
	}
	d.mu.Unlock()
}

// maxSkips bounds what one Diagnosis keeps.
const maxSkips = 64

// warnUnanswered logs at Warn level that a challenge goes back unanswered
// and why, once per origin (or proxy), challenge and reason, so that a
// misconfiguration speaks without flooding the log.
func (x *exchange) warnUnanswered(resp *http.Response, why giveUpReason) {
	if why == reasonNone || why == reasonDisabled || !x.log.Enabled(x.ctx(), slog.LevelWarn) {
		return
	}
	s := &x.origin
	where := x.req.URL
	if resp.StatusCode == http.StatusProxyAuthRequired {
		s, where = &x.proxy, x.proxyURL
	}
	o := originOf(where)
	challenges := strings.Join(resp.Header[s.challengeHeader], ", ")
	key := s.name() + " " + o.Origin() + " " + truncate(challenges, 200) + " " + why.String()
	if !x.t.warned.first(key) {
		return
	}
	attrs := []slog.Attr{
		slog.String("from", s.name()),
		slog.String("origin", o.Origin()),
		slog.Int("status", resp.StatusCode),
		slog.String("challenges", truncate(challenges, 200)),
		slog.String("why", why.String()),
	}
	if s.lastSkip != nil {
		attrs = append(attrs, slog.String("detail", s.lastSkip.Error()))
	}
	x.log.LogAttrs(x.ctx(), slog.LevelWarn, "anyauth: challenge not answered", attrs...)
}

// onceSet remembers keys, so that a warning is logged once per key; it
// is bounded, past which it warns no more.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

const maxWarned = 1024

// first reports whether key is new, and remembers it.
func (o *onceSet) first(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.seen[key]; ok || len(o.seen) >= maxWarned {
		return false
	}
	if o.seen == nil {
		o.seen = make(map[string]struct{})
	}
	o.seen[key] = struct{}{}
	return true
}
