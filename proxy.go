package anyauth

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
)

// This file decides which proxy a request goes through and which
// RoundTripper sends it. When Base is an *http.Transport that may use a
// proxy, the Transport sends through a clone of it that it controls:
//
//   - plain-http targets go to the proxy as net/http sends them (absolute
//     form), and the Transport answers the proxy's 407 with
//     Proxy-Authorization on the request;
//   - https targets get their tunnel from the Transport itself, through
//     the clone's DialTLSContext: it speaks CONNECT, answers each 407 on
//     the tunnel's own connection (see tunnel.go), then runs TLS over it.
//
// So the proxy the Transport answers for is always the one the request
// really goes through, and a proxy URL's user info becomes credentials for
// that proxy instead of a Basic header that net/http would add on its own.

// route is how a Transport sends requests, set up once from Base.
type route struct {
	rt http.RoundTripper
	// proxy returns the proxy for a request, nil for none. It is nil when
	// the Transport knows of no proxy at all.
	proxy func(*http.Request) (*url.URL, error)
	// clone is the *http.Transport the Transport owns, nil when it sends
	// through Base as it is.
	clone *http.Transport
	// dial connects to a proxy or a target, as Base would.
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// dialTLS is Base's own DialTLSContext, used for https targets
	// reached without a proxy.
	dialTLS func(ctx context.Context, network, addr string) (net.Conn, error)
	// owner makes the HTTP/1.1 connections that connection-bound schemes
	// authenticate (NewClientConn); nil when Base is not an
	// *http.Transport.
	owner *http.Transport
}

// routeState builds the route once and keeps it.
type routeState struct {
	once sync.Once
	r    route
}

// route returns how requests are sent, building it on first use.
func (t *Transport) route() *route {
	t.routing.once.Do(func() { t.routing.r = t.buildRoute() })
	return &t.routing.r
}

func (t *Transport) buildRoute() route {
	base := t.base()
	if err := checkBase(base); err != nil {
		return route{rt: failingBase{err}}
	}
	ht, isHTTP := base.(*http.Transport)
	proxy := t.Proxy
	if proxy == nil && isHTTP {
		proxy = ht.Proxy
	}
	if !isHTTP {
		return route{rt: base, proxy: proxy}
	}
	if proxy == nil {
		return route{rt: base, owner: http1Only(ht)}
	}
	clone := ht.Clone()
	r := route{rt: clone, proxy: proxy, clone: clone, dialTLS: ht.DialTLSContext}
	r.dial = ht.DialContext
	if r.dial == nil {
		d := &net.Dialer{}
		r.dial = d.DialContext
	}
	// net/http sees a proxy for plain-http targets only, and without its
	// user info: the Transport answers the proxy with the credentials.
	clone.Proxy = func(req *http.Request) (*url.URL, error) {
		if req.URL.Scheme == "https" {
			return nil, nil
		}
		u, err := proxy(req)
		if u == nil || err != nil {
			return u, err
		}
		return withoutUserinfo(u), nil
	}
	clone.DialTLSContext = t.dialTLS
	r.owner = http1Only(clone)
	r.owner.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return t.dialTLSWith(ctx, network, addr, true)
	}
	return r
}

// http1Only returns a clone of ht that speaks HTTP/1.1 only, for the
// connections of connection-bound schemes: NTLM does not survive HTTP/2.
func http1Only(ht *http.Transport) *http.Transport {
	o := ht.Clone()
	o.Protocols = new(http.Protocols)
	o.Protocols.SetHTTP1(true)
	o.ForceAttemptHTTP2 = false
	o.DisableKeepAlives = false // the handshake needs the connection to stay
	if o.TLSClientConfig != nil {
		o.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	return o
}

// proxyFor returns the proxy of a request to target, nil when it goes
// direct.
func (r *route) proxyFor(scheme, host string) (*url.URL, error) {
	if r.proxy == nil {
		return nil, nil
	}
	return r.proxy(&http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: scheme, Host: host}, Header: http.Header{}})
}

func withoutUserinfo(u *url.URL) *url.URL {
	if u.User == nil {
		return u
	}
	c := *u
	c.User = nil
	return &c
}

// proxyURL returns the proxy req goes through, nil when it goes direct or
// the proxy is unknown, and nil for an https request: it rides a CONNECT
// tunnel whose proxy the Transport answers itself (when it owns the
// tunnel), and a Proxy-Authorization header on it would travel through the
// tunnel to the origin.
func (t *Transport) proxyURL(req *http.Request) *url.URL {
	r := t.route()
	if req.URL.Scheme != "http" || r.proxy == nil {
		return nil
	}
	u, err := r.proxy(req)
	if err != nil {
		return nil
	}
	return u
}

// proxyCredentials returns the credentials for the proxy at u:
// ProxyCredentials first, then u's user info.
func (t *Transport) proxyCredentials(u *url.URL) CredentialProvider {
	var fromURL CredentialProvider
	if u != nil && u.User != nil {
		pass, _ := u.User.Password()
		fromURL = ForOrigin(u.Scheme+"://"+u.Host, u.User.Username(), pass)
	}
	switch {
	case t.ProxyCredentials == nil && fromURL == nil:
		return nil
	case t.ProxyCredentials == nil:
		return fromURL
	case fromURL == nil:
		return t.ProxyCredentials
	}
	return Chain{t.ProxyCredentials, fromURL}
}

// dialTLS is the owned clone's DialTLSContext: a TLS connection to addr,
// directly or through a CONNECT tunnel of the proxy Base would use.
func (t *Transport) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	return t.dialTLSWith(ctx, network, addr, false)
}

// dialTLSWith is dialTLS; http1 offers only HTTP/1.1 in the TLS handshake.
func (t *Transport) dialTLSWith(ctx context.Context, network, addr string, http1 bool) (net.Conn, error) {
	r := t.route()
	proxy, err := r.proxyFor("https", addr)
	if err != nil {
		return nil, err
	}
	if proxy == nil && r.dialTLS != nil {
		return r.dialTLS(ctx, network, addr)
	}
	var conn net.Conn
	if proxy == nil {
		conn, err = r.dial(ctx, network, addr)
	} else {
		conn, err = t.connect(ctx, proxy, addr)
	}
	if err != nil {
		return nil, err
	}
	return r.handshake(ctx, conn, addr, http1)
}

// handshake runs TLS as the client of addr over conn, with Base's TLS
// settings and handshake timeout; http1 offers only HTTP/1.1.
func (r *route) handshake(ctx context.Context, conn net.Conn, addr string, http1 bool) (net.Conn, error) {
	cfg := r.clone.TLSClientConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if http1 {
		cfg.NextProtos = []string{"http/1.1"}
	}
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		cfg.ServerName = strings.Trim(host, "[]")
	}
	if r.clone.TLSHandshakeTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.clone.TLSHandshakeTimeout)
		defer cancel()
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

func (f failingBase) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return nil, f.err
}
