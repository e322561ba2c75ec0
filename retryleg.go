package anyauth

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
)

// A RetryingLeg is a Leg that can cure a final response that is not a
// challenge: a SigV4 signature refused for the time it was made at (403
// RequestTimeTooSkewed) is signed again on the server's clock. Servers
// that refuse an answer without a 401 or 407 (AWS) are otherwise out of a
// Leg's reach: Continue is called only for challenges, and Finish can
// neither read the body nor send the request again.
type RetryingLeg interface {
	Leg
	// RetryAfterResponse is called, before Finish, for each final
	// response (neither 401 nor 407) to a request the Leg answered, while
	// the answer budget lasts. peek reads at most n bytes of the body,
	// once, and keeps them for the caller. true sends the request again
	// (Apply first), counting as an answer, when the body can be
	// replayed; the response is then drained and closed. When it cannot
	// (a streamed body beyond Transport.MaxBodyBuffer), the response is
	// returned as it is, and what the Leg learned serves the next
	// request.
	RetryAfterResponse(ctx context.Context, resp *http.Response, peek func(n int) ([]byte, error)) (bool, error)
}

// mayRetryAfterResponse reports whether a Leg of the request is a
// RetryingLeg.
func (x *exchange) mayRetryAfterResponse() bool {
	if x.conn != nil || x.tunnel {
		return false
	}
	for _, s := range []*side{&x.origin, &x.proxy} {
		if _, ok := s.leg.(RetryingLeg); ok {
			return true
		}
	}
	return false
}

// retryAfterResponse asks the request's RetryingLegs whether resp, a final
// response, should be sent again.
func (x *exchange) retryAfterResponse(resp *http.Response) (bool, error) {
	if x.conn != nil || x.tunnel {
		return false, nil
	}
	peek := peeker(resp)
	for _, s := range []*side{&x.origin, &x.proxy} {
		rl, ok := s.leg.(RetryingLeg)
		if !ok {
			continue
		}
		retry, err := rl.RetryAfterResponse(x.ctx(), resp, peek)
		if err != nil {
			return false, &AuthError{Space: s.entry.space, Err: err}
		}
		if retry {
			x.debug("anyauth: sending again after a final response", slog.String("space", s.entry.space.String()), slog.Int("status", resp.StatusCode))
			return true, nil
		}
	}
	return false, nil
}

// peeker returns a function that reads up to n bytes of resp's body, once,
// and puts them back in front of the rest.
func peeker(resp *http.Response) func(int) ([]byte, error) {
	var got []byte
	var err error
	done := false
	return func(n int) ([]byte, error) {
		if done || resp.Body == nil {
			return got, err
		}
		done = true
		got, err = io.ReadAll(io.LimitReader(resp.Body, int64(n)))
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(got), resp.Body), resp.Body}
		return got, err
	}
}
