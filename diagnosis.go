package anyauth

import (
	"context"
	"errors"
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
