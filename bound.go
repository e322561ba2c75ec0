package anyauth

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the connections of connection-bound schemes (NTLM).
// Their handshake authenticates a TCP connection, not a request, so the
// Transport runs it on an HTTP/1.1 connection it owns, made with
// (*http.Transport).NewClientConn, and afterwards keeps that connection
// for later requests of the same protection space and identity only.

// Bounds on the authenticated connections kept idle.
const (
	maxIdleBoundPerKey    = 64
	maxIdleBound          = 1024
	defaultBoundIdleAfter = 90 * time.Second
)

// errBoundConnLost is returned when the server keeps closing connections
// in the middle of a connection-bound handshake.
var errBoundConnLost = errors.New("the connection closed during a connection-bound handshake")

// boundKey names what an authenticated connection may serve: requests of
// one protection space made with one identity.
type boundKey struct {
	space    ProtectionSpace
	identity identity
}

// boundConn is a connection the Transport owns for a connection-bound
// handshake.
type boundConn struct {
	cc   *http.ClientConn
	pool *boundPool

	// Guarded by pool.mu.
	key       boundKey
	keyed     bool // key is set: the connection is authenticated
	released  bool // its request is over; it may go idle
	legFirst  bool // the server challenges requests without a leg on it even once authenticated (Squid)
	idle      bool // in pool.idle
	idleSince time.Time
}

// boundPool keeps the idle authenticated connections of a Transport.
type boundPool struct {
	mu    sync.Mutex
	idle  map[boundKey][]*boundConn
	nIdle int
}

// open makes a new connection to the target of req with owner, the
// HTTP/1.1-only transport of the route.
func (p *boundPool) open(ctx context.Context, owner *http.Transport, scheme, host string) (*boundConn, error) {
	addr := host
	if _, _, err := net.SplitHostPort(host); err != nil {
		addr = net.JoinHostPort(host, defaultPort(scheme))
	}
	cc, err := owner.NewClientConn(ctx, scheme, addr)
	if err != nil {
		return nil, err
	}
	c := &boundConn{cc: cc, pool: p}
	cc.SetStateHook(func(*http.ClientConn) { p.stateChanged(c) })
	return c, nil
}

// take returns an idle connection authenticated for key, reserved for the
// caller, or nil.
func (p *boundPool) take(key boundKey, idleAfter time.Duration) *boundConn {
	for {
		p.mu.Lock()
		list := p.idle[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return nil
		}
		c := list[len(list)-1]
		p.setIdleList(key, list[:len(list)-1])
		p.nIdle--
		c.idle, c.released = false, false
		stale := time.Since(c.idleSince) > idleAfter
		p.mu.Unlock()
		// Reserve runs the state hook, which takes p.mu.
		if stale || c.cc.Err() != nil || c.cc.Reserve() != nil {
			c.cc.Close()
			continue
		}
		return c
	}
}

func (p *boundPool) setIdleList(key boundKey, list []*boundConn) {
	if len(list) == 0 {
		delete(p.idle, key)
		return
	}
	p.idle[key] = list
}

// authenticated records that c now serves key.
func (p *boundPool) authenticated(c *boundConn, key boundKey) {
	p.mu.Lock()
	c.key, c.keyed = key, true
	p.mu.Unlock()
}

// unkey records that c is no longer known to be authenticated: it was
// challenged. bare tells that the request had no leg: the server wants
// one on every request, even on an authenticated connection.
func (p *boundPool) unkey(c *boundConn, bare bool) {
	p.mu.Lock()
	c.key, c.keyed = boundKey{}, false
	c.legFirst = c.legFirst || bare
	p.mu.Unlock()
}

// wantsLeg reports whether requests on c should start their handshake at
// once (see boundConn.legFirst).
func (p *boundPool) wantsLeg(c *boundConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return c.legFirst
}

// release hands c back once its request is over: an authenticated
// connection goes idle as soon as its response is read, any other one is
// closed.
func (p *boundPool) release(c *boundConn) {
	p.mu.Lock()
	if !c.keyed {
		p.mu.Unlock()
		c.cc.Close()
		return
	}
	c.released = true
	p.mu.Unlock()
	p.stateChanged(c)
}

// stateChanged puts a released connection into the idle list when it can
// take a request, and drops it when it broke.
func (p *boundPool) stateChanged(c *boundConn) {
	broken := c.cc.Err() != nil
	available := !broken && c.cc.Available() > 0
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case broken && c.idle:
		p.removeIdle(c)
	case available && c.released && !c.idle:
		if p.idle == nil {
			p.idle = make(map[boundKey][]*boundConn)
		}
		if len(p.idle[c.key]) >= maxIdleBoundPerKey || p.nIdle >= maxIdleBound {
			c.released = false
			go c.cc.Close()
			return
		}
		c.idle, c.idleSince = true, time.Now()
		p.idle[c.key] = append(p.idle[c.key], c)
		p.nIdle++
	}
}

// removeIdle takes c out of the idle list. p.mu is held.
func (p *boundPool) removeIdle(c *boundConn) {
	list := p.idle[c.key]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			p.nIdle--
			break
		}
	}
	c.idle = false
	p.setIdleList(c.key, list)
}

// closeIdle closes every idle connection.
func (p *boundPool) closeIdle() {
	p.mu.Lock()
	var all []*boundConn
	for _, list := range p.idle {
		for _, c := range list {
			c.idle, c.released = false, false
			all = append(all, c)
		}
	}
	p.idle, p.nIdle = nil, 0
	p.mu.Unlock()
	for _, c := range all {
		c.cc.Close()
	}
}

// boundBody is the body of a final response read from an owned
// connection: closing it, or reading it to the end, hands the connection
// back.
type boundBody struct {
	io.ReadCloser
	conn *boundConn
	done atomic.Bool
}

func (b *boundBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && b.done.CompareAndSwap(false, true) {
		b.conn.pool.release(b.conn)
	}
	return n, err
}

func (b *boundBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done.CompareAndSwap(false, true) {
		b.conn.pool.release(b.conn)
	}
	return err
}

// drainAll reads a 401 or 407 body to its end so that the connection can
// carry the next leg, whatever its size; reading honours the request's
// context. It reports whether the connection is still usable.
func drainAll(resp *http.Response) bool {
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err == nil && !resp.Close
}
