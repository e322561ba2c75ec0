package anyauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"time"
)

// This file is the connection to a proxy while a CONNECT is negotiated on
// it: every byte read from it is bounded (the response heads, the 1xx
// before them, the 407 bodies), and the request's context closes it.

// Bounds on what a proxy may send in answer to a CONNECT.
const (
	// maxConnectHead bounds the response heads of one CONNECT round trip
	// (1xx responses included): net/http's default response-header limit.
	maxConnectHead = 1 << 20
	// maxConnect1xx bounds the interim (1xx) responses before one
	// final response.
	maxConnect1xx = 8
)

// errConnectHeadTooLarge is returned when a proxy's response head to a
// CONNECT is longer than maxConnectHead.
var errConnectHeadTooLarge = fmt.Errorf("the proxy's response head to CONNECT is longer than %d bytes", maxConnectHead)

// tunnelConn is a connection to a proxy while CONNECT is negotiated on
// it. The request's context closes it if it ends first, so that no read
// or write blocks past it.
type tunnelConn struct {
	conn net.Conn
	lim  io.LimitedReader // under br: bounds what a response head may read
	br   *bufio.Reader
	stop func() bool
}

func newTunnelConn(ctx context.Context, conn net.Conn) *tunnelConn {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	c := &tunnelConn{conn: conn, stop: context.AfterFunc(ctx, func() { conn.Close() })}
	c.lim = io.LimitedReader{R: conn, N: maxConnectHead}
	c.br = bufio.NewReader(&c.lim)
	return c
}

// roundTrip writes req and reads the proxy's final response head,
// skipping up to maxConnect1xx interim responses (RFC 9110 §15.2). The
// heads together may be maxConnectHead bytes long.
func (c *tunnelConn) roundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Write(c.conn); err != nil {
		return nil, err
	}
	c.lim.N = maxConnectHead
	for i := 0; ; i++ {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			if c.lim.N <= 0 {
				return nil, errConnectHeadTooLarge
			}
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			c.lim.N = math.MaxInt64 // bodies are bounded where they are read
			return resp, nil
		}
		if i == maxConnect1xx {
			return nil, fmt.Errorf("the proxy sent more than %d interim (1xx) responses to CONNECT", maxConnect1xx)
		}
	}
}

// drain reads a 407's body so the connection can carry the next leg. It
// reports false when the connection cannot be used again: the proxy
// closes it (Connection or Proxy-Connection: close, or HTTP/1.0), or the
// body is longer than maxDrain or takes longer than maxDrainTime. all
// reads the body whatever its length, within the request's context, for a
// connection-bound handshake.
func (c *tunnelConn) drain(resp *http.Response, all bool) bool {
	if all {
		return drainAll(resp) && !proxyCloses(resp)
	}
	slow := time.AfterFunc(maxDrainTime, func() { c.conn.SetReadDeadline(time.Now()) })
	_, err := io.CopyN(io.Discard, resp.Body, maxDrain+1)
	resp.Body.Close()
	if !slow.Stop() {
		return false // too slow: the connection is given up
	}
	return errors.Is(err, io.EOF) && !proxyCloses(resp)
}

// proxyCloses reports whether the proxy closes the connection after resp.
func proxyCloses(resp *http.Response) bool {
	return resp.Close || strings.EqualFold(strings.TrimSpace(resp.Header.Get("Proxy-Connection")), "close")
}

// detach hands the tunnel over: the context no longer closes it, its
// deadline is cleared, and bytes the proxy sent after its response head
// are read first.
func (c *tunnelConn) detach() net.Conn {
	c.stop()
	c.conn.SetDeadline(time.Time{})
	if c.br.Buffered() > 0 {
		return &bufferedConn{Conn: c.conn, r: c.br}
	}
	return c.conn
}

// release closes a connection that did not become a tunnel.
func (c *tunnelConn) release() {
	c.stop()
	c.conn.Close()
}

// bufferedConn is a tunnel whose first bytes were read ahead.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }
