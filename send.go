package anyauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// This file sends each round trip of an exchange and readies the next
// one. A round trip goes one of three ways:
//   - through Base (the route's RoundTripper): a request to an origin,
//     directly or through a proxy;
//   - on an owned connection (x.conn), while a connection-bound scheme
//     (NTLM) authenticates it, and afterwards from the pool;
//   - on the connection to a proxy that a CONNECT is negotiated on (x.tc).
//
// What differs between the three lives here; the loop in exchange.go is
// one for all.

// ready makes sure the connection the next round trip needs is there: a
// new one to the proxy for a CONNECT, an owned one for a connection-bound
// handshake.
func (x *exchange) ready() error {
	switch {
	case x.tunnel:
		if x.tc == nil {
			conn, err := x.t.dialProxy(x.ctx(), x.proxyURL)
			if err != nil {
				return x.sendError(err)
			}
			x.tc = newTunnelConn(x.ctx(), conn)
		}
	case x.conn == nil && x.needsConn():
		return x.openConn()
	}
	return nil
}

// send makes one round trip.
func (x *exchange) send(out *http.Request) (*http.Response, error) {
	switch {
	case x.tunnel:
		resp, err := x.tc.roundTrip(out)
		if err == nil {
			err = x.t.route().onConnectResponse(x.ctx(), x.proxyURL, out, resp)
			if err != nil {
				resp.Body.Close()
			}
		}
		return resp, err
	case x.conn != nil:
		return x.conn.cc.RoundTrip(out)
	}
	return x.t.route().rt.RoundTrip(out)
}

// recoverFrom handles a round trip that failed. It reports true when the
// request should go again on a new connection: an idle authenticated
// connection taken from the pool had died, the server closed an owned
// connection between two legs (the handshake starts again), or a proxy
// closed the CONNECT's connection before answering the next leg (dialled
// again once, as curl does), or a server reset the connection while the
// body was being written (sent once more with "Expect: 100-continue",
// see resetWhileWritingBody). Otherwise it returns the error to give the
// caller.
func (x *exchange) recoverFrom(err error) (bool, error) {
	if ctxErr(x.ctx()) != nil || !x.body.canReplay() {
		return false, x.sendError(err)
	}
	switch {
	case x.retryOnBase(err):
		return true, nil
	case x.resetWhileWritingBody(err):
		x.expectContinue = true
		x.debug("anyauth: the server reset the connection while the body was being written; sending again with Expect: 100-continue", slog.String("error", err.Error()))
		return true, nil
	case x.conn != nil && x.conn.cc.Err() != nil:
		// The server closed the connection between two legs.
		if err := x.connLost(); err != nil {
			return false, err
		}
		return true, nil
	case x.tunnel && x.redials < maxConnectRedials && !errors.Is(err, errConnectHeadTooLarge) && !isTimeout(err):
		x.redials++
		x.debug("anyauth: the proxy closed the connection before answering; CONNECT again on a new one", slog.String("proxy", safeURL(x.proxyURL)), slog.String("error", err.Error()))
		x.closeTunnelConn()
		if err := x.restartBoundLegs(); err != nil {
			return false, err
		}
		return true, nil
	}
	return false, x.sendError(err)
}

// maxConnectRedials is how many times one CONNECT is sent again on a new
// connection after the proxy closed the connection without answering.
const maxConnectRedials = 1

// sendError is the error of a round trip that cannot be retried. A
// CONNECT's says which tunnel it was for.
func (x *exchange) sendError(err error) error {
	if !x.tunnel {
		return err
	}
	if cause := ctxErr(x.ctx()); cause != nil {
		err = cause
	} else if isTimeout(err) {
		// The connection's deadline is the context's, and may fire
		// first.
		err = context.DeadlineExceeded
	}
	return fmt.Errorf("anyauth: CONNECT %s through proxy %s: %w", x.req.Host, safeURL(withoutUserinfo(x.proxyURL)), err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readyForNextLeg disposes of a challenge that is being answered so that
// the next leg can go: on an owned or tunnel connection, the body is read
// so the connection can carry it (a connection that cannot is replaced,
// and a connection-bound handshake starts again on the new one); through
// Base, a little is read so net/http can reuse the connection.
func (x *exchange) readyForNextLeg(s *side, resp *http.Response) error {
	switch {
	case x.tunnel:
		if !x.tc.drain(resp, s.connectionBound()) {
			x.debug("anyauth: the proxy closes the connection; the next CONNECT goes on a new one", slog.String("proxy", safeURL(x.proxyURL)))
			x.closeTunnelConn()
			return x.restartBoundLegs()
		}
	case x.conn != nil:
		// The next leg must ride this connection: read the whole body,
		// however long, so that it can.
		if !drainAll(resp) {
			return x.connLost()
		}
	case s.proxy && x.squidStallsOnLargeReplay():
		// Closing the 407 unread makes net/http drop its connection, so
		// the replay goes on a new one.
		resp.Body.Close()
	default:
		drainAndClose(resp)
	}
	return nil
}

// connectionBound reports whether the side answers with a
// connection-bound scheme.
func (s *side) connectionBound() bool {
	return s.entry != nil && s.entry.traits.ConnectionBound
}

// closeTunnelConn closes the connection a CONNECT was negotiated on.
func (x *exchange) closeTunnelConn() {
	if x.tc != nil {
		x.tc.release()
		x.tc = nil
	}
}

// retryOnBase handles a failed round trip on an idle connection taken
// from the pool: the server may have closed it meanwhile, so the request
// goes again without it, once.
func (x *exchange) retryOnBase(err error) bool {
	if x.conn == nil || !x.connPooled || x.sent != 1 || x.conn.cc.Err() == nil {
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
