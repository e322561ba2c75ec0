package anyauth

import (
	"log/slog"
	"net/http"
)

// This file sends each round trip of an exchange and prepares the next
// one: through Base, on an owned connection (connection-bound schemes),
// or on the connection to a proxy that a CONNECT is negotiated on. What
// differs between the three lives here; the loop in exchange.go is one.

// send makes one round trip: on the owned connection when there is one,
// through Base otherwise.
func (x *exchange) send(out *http.Request) (*http.Response, error) {
	if x.conn == nil {
		return x.t.route().rt.RoundTrip(out)
	}
	return x.conn.cc.RoundTrip(out)
}

// retryOnBase handles a failed round trip on an idle connection taken
// from the pool: the server may have closed it meanwhile, so the request
// goes again without it, once, when its body allows.
func (x *exchange) retryOnBase(err error) bool {
	if x.conn == nil || !x.connPooled || x.sent != 1 || x.conn.cc.Err() == nil || ctxErr(x.ctx()) != nil || !x.body.canReplay() {
		return false
	}
	x.debug("anyauth: an idle authenticated connection failed; sending without it", slog.String("error", err.Error()))
	x.conn.cc.Close()
	x.conn = nil
	x.origin.bound, x.proxy.bound = nil, nil
	x.sent = 0
	return true
}

// maxBoundRestarts is how many times one request starts a
// connection-bound handshake again after its connection closed.
const maxBoundRestarts = 2

// connLost handles the owned connection closing in the middle of a
// handshake: the handshakes that had sent a leg on it start again on a new
// connection, up to maxBoundRestarts times.
func (x *exchange) connLost() error {
	x.conn.cc.Close()
	x.conn = nil
	return x.restartBoundLegs()
}

// handOver gives resp to the caller. When it came on an owned connection,
// closing its body (or reading it to the end) hands the connection back:
// to the pool when it is authenticated, closed otherwise.
func (x *exchange) handOver(resp *http.Response) *http.Response {
	c := x.conn
	if c == nil {
		return resp
	}
	x.conn = nil
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusProxyAuthRequired {
		c.pool.unkey(c, false)
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		c.pool.release(c)
		return resp
	}
	resp.Body = &boundBody{ReadCloser: resp.Body, conn: c}
	return resp
}
