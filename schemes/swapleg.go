package schemes

import (
	"net/http"

	"github.com/anyauth/anyauth"
)

// swappableLeg is the leg a wrapping leg answers with for now (Discovery's
// and Registry's, which move to another token's leg when the server asks
// for more scope). It passes Apply, Finish and End on to it.
type swappableLeg struct{ inner anyauth.Leg }

func (l *swappableLeg) Apply(req *http.Request) error    { return l.inner.Apply(req) }
func (l *swappableLeg) Finish(resp *http.Response) error { return l.inner.Finish(resp) }

// End ends the current leg when it holds something for its request.
func (l *swappableLeg) End() {
	if e, ok := l.inner.(anyauth.EndingLeg); ok {
		e.End()
	}
}

// swap ends the current leg and answers with leg from now on.
func (l *swappableLeg) swap(leg anyauth.Leg) {
	l.End()
	l.inner = leg
}
