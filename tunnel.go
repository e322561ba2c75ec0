package anyauth

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// DefaultConnectTimeout is the default Transport.ConnectTimeout.
const DefaultConnectTimeout = 30 * time.Second

// connect opens a tunnel to target through the proxy at proxyURL: it
// dials the proxy and runs the CONNECT as an exchange (exchange.go) whose
// round trips ride that connection, answering each 407 on it as long as
// the proxy keeps it open (a proxy that closes it, or whose 407 body is
// too long or too slow to drain, gets the next leg on a new connection).
// The proxy's protection space is remembered like any other, so the next
// tunnel authenticates on its first CONNECT. A CONNECT that ends in
// anything but 2xx returns a *ProxyConnectError.
func (t *Transport) connect(ctx context.Context, proxyURL *url.URL, target string) (net.Conn, error) {
	timeout := t.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := t.route().connectRequest(ctx, proxyURL, target)
	if err != nil {
		return nil, err
	}
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
			disabled:        req.Header.Get("Proxy-Authorization") != "", // set by Base's ProxyConnectHeader
			provider:        t.proxyCredentials(proxyURL),
		},
	}
	defer x.end()
	resp, err := x.run()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, x.connectError(resp)
	}
	conn := x.tc.detach()
	x.tc = nil
	return conn, nil
}

// connectRequest is the CONNECT request for target, with the headers
// Base gives its own CONNECTs (GetProxyConnectHeader, else
// ProxyConnectHeader), as net/http sends them.
func (r *route) connectRequest(ctx context.Context, proxyURL *url.URL, target string) (*http.Request, error) {
	header := make(http.Header)
	if b := r.clone; b != nil {
		var h http.Header
		if b.GetProxyConnectHeader != nil {
			var err error
			if h, err = b.GetProxyConnectHeader(ctx, proxyURL, target); err != nil {
				return nil, fmt.Errorf("anyauth: CONNECT %s through proxy %s: GetProxyConnectHeader: %w", target, safeURL(withoutUserinfo(proxyURL)), err)
			}
		} else {
			h = b.ProxyConnectHeader
		}
		for k, v := range h {
			header[k] = append([]string(nil), v...)
		}
	}
	return (&http.Request{
		Method:     http.MethodConnect,
		URL:        &url.URL{Opaque: target},
		Host:       target,
		Header:     header,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
	}).WithContext(ctx), nil
}

// onConnectResponse calls Base's OnProxyConnectResponse, if any, with
// every response to a CONNECT (each 407 and the final one), as net/http
// calls it with the response to its own.
func (r *route) onConnectResponse(ctx context.Context, proxyURL *url.URL, req *http.Request, resp *http.Response) error {
	if r.clone == nil || r.clone.OnProxyConnectResponse == nil {
		return nil
	}
	if err := r.clone.OnProxyConnectResponse(ctx, proxyURL, req, resp); err != nil {
		return fmt.Errorf("anyauth: CONNECT %s through proxy %s: OnProxyConnectResponse: %w", req.Host, safeURL(withoutUserinfo(proxyURL)), err)
	}
	return nil
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
// closes resp's body: for a 407, why it was not answered.
func (x *exchange) connectError(resp *http.Response) error {
	io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
	e := &ProxyConnectError{
		Proxy:      safeURL(withoutUserinfo(x.proxyURL)),
		Target:     x.req.Host,
		StatusCode: resp.StatusCode,
		Status:     resp.Status,
		Header:     resp.Header,
		Challenges: ParseChallenges(resp.Header.Values("Proxy-Authenticate")...),
	}
	if resp.StatusCode == http.StatusProxyAuthRequired {
		e.Reason = x.gaveUp.proxyReason()
		e.OriginCredentialsOnly = e.Reason == ProxyNoCredentials && x.proxy.provider == nil && x.t.Credentials != nil
	}
	return e
}
