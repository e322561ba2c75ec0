package anyauth

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultConnectTimeout is the default Transport.ConnectTimeout.
const DefaultConnectTimeout = 30 * time.Second

// connect opens a tunnel to target through the proxy at proxyURL: it
// dials the proxy, sends CONNECT, and answers each 407 on the same
// connection, as long as the proxy keeps it open (a proxy that closes it,
// or whose 407 body is too long to drain, gets the next leg on a new
// connection). The proxy's protection space is remembered like any other,
// so the next tunnel authenticates on its first CONNECT. A CONNECT that
// ends in anything but 2xx returns a *ProxyConnectError.
func (t *Transport) connect(ctx context.Context, proxyURL *url.URL, target string) (net.Conn, error) {
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req := (&http.Request{
		Method:     http.MethodConnect,
		URL:        &url.URL{Opaque: target},
		Host:       target,
		Header:     make(http.Header),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}).WithContext(ctx)
	x := &exchange{
		t:        t,
		req:      req,
		body:     noBody{},
		log:      t.logger(),
		proxyURL: proxyURL,
		tunnel:   true,
		origin:   side{challengeHeader: "Www-Authenticate", disabled: true},
		proxy: side{
			proxy:           true,
			challengeHeader: "Proxy-Authenticate",
			memo:            requestCredentials{provider: t.proxyCredentials(proxyURL), digests: &t.digests},
		},
	}
	x.usePreemptive(&x.proxy, proxyURL)
	defer x.end()

	var tc *tunnelConn
	defer func() {
		if tc != nil {
			tc.release()
		}
	}()
	answers := 0
	for {
		if err := ctxErr(ctx); err != nil {
			return nil, err
		}
		if tc == nil {
			conn, err := t.dialProxy(ctx, proxyURL)
			if err != nil {
				return nil, err
			}
			tc = newTunnelConn(ctx, conn)
		}
		out, err := x.build()
		if err != nil {
			return nil, err
		}
		x.sent++
		resp, err := tc.roundTrip(out)
		if err != nil {
			var ne net.Error
			cause := ctxErr(ctx)
			if cause == nil && errors.As(err, &ne) && ne.Timeout() {
				// The connection's deadline is the context's, and may
				// fire first.
				cause = context.DeadlineExceeded
			}
			if cause != nil {
				return nil, fmt.Errorf("anyauth: CONNECT %s through proxy %s: %w", target, safeURL(withoutUserinfo(proxyURL)), cause)
			}
			return nil, err
		}
		if x.log.Enabled(ctx, slog.LevelDebug) {
			x.debug("anyauth: CONNECT",
				slog.Int("n", x.sent),
				slog.String("proxy", safeURL(proxyURL)),
				slog.String("target", target),
				slog.String("proxy_authorization", describe(&x.proxy)),
				slog.Int("status", resp.StatusCode))
		}
		switch {
		case resp.StatusCode/100 == 2:
			if err := x.accepted(&x.proxy, resp); err != nil {
				return nil, err
			}
			conn := tc.detach()
			tc = nil
			return conn, nil
		case resp.StatusCode != http.StatusProxyAuthRequired:
			return nil, connectError(proxyURL, target, resp)
		}
		if answers >= t.maxAnswers() {
			x.debug("anyauth: giving up, answer budget spent", slog.Int("answers", answers))
			return nil, connectError(proxyURL, target, resp)
		}
		ok, err := x.answer(&x.proxy, out, resp)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, connectError(proxyURL, target, resp)
		}
		answers++
		bound := x.proxy.entry != nil && x.proxy.entry.traits.ConnectionBound
		if !tc.drain(resp, bound) {
			x.debug("anyauth: the proxy closes the connection; the next CONNECT goes on a new one", slog.String("proxy", safeURL(proxyURL)))
			tc.release()
			tc = nil
			if err := x.restartBoundLegs(); err != nil {
				return nil, err
			}
		}
	}
}

// dialProxy connects to the proxy, with TLS for an https proxy.
func (t *Transport) dialProxy(ctx context.Context, proxyURL *url.URL) (net.Conn, error) {
	r := t.route()
	addr := proxyURL.Host
	if proxyURL.Port() == "" {
		addr = net.JoinHostPort(proxyURL.Hostname(), defaultPort(proxyURL.Scheme))
	}
	conn, err := r.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if proxyURL.Scheme != "https" {
		return conn, nil
	}
	cfg := &tls.Config{}
	if r.clone.TLSClientConfig != nil {
		cfg = r.clone.TLSClientConfig.Clone()
	}
	cfg.ServerName = proxyURL.Hostname()
	cfg.NextProtos = nil // CONNECT is HTTP/1.1
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// connectError describes a CONNECT that did not end in a tunnel, and
// closes resp's body.
func connectError(proxyURL *url.URL, target string, resp *http.Response) error {
	io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	return &ProxyConnectError{
		Proxy:      safeURL(withoutUserinfo(proxyURL)),
		Target:     target,
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Header:     resp.Header,
		Challenges: ParseChallenges(resp.Header.Values("Proxy-Authenticate")...),
	}
}

// tunnelConn is a connection to a proxy while CONNECT is negotiated on
// it. The request's context closes it if it ends first, so that no read
// or write blocks past it.
type tunnelConn struct {
	conn net.Conn
	br   *bufio.Reader
	stop func() bool
}

func newTunnelConn(ctx context.Context, conn net.Conn) *tunnelConn {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
	return &tunnelConn{
		conn: conn,
		br:   bufio.NewReader(conn),
		stop: context.AfterFunc(ctx, func() { conn.Close() }),
	}
}

// roundTrip writes req and reads the proxy's response head.
func (c *tunnelConn) roundTrip(req *http.Request) (*http.Response, error) {
	if err := req.Write(c.conn); err != nil {
		return nil, err
	}
	return http.ReadResponse(c.br, req)
}

// drain reads a 407's body so the connection can carry the next leg. It
// reports false when the connection cannot be used again: the proxy
// closes it, or the body is longer than the Transport drains. all reads
// the body whatever its length, for a connection-bound handshake.
func (c *tunnelConn) drain(resp *http.Response, all bool) bool {
	if all {
		return drainAll(resp)
	}
	_, err := io.CopyN(io.Discard, resp.Body, maxDrain+1)
	resp.Body.Close()
	return !resp.Close && err == io.EOF
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
