package negotiate

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"
)

// Canonicalization says whether the host name is replaced by its
// canonical name (CNAME) before it goes into the service principal, as
// MIT's dns_canonicalize_hostname does.
type Canonicalization int

const (
	// CanonicalizeFromConfig (the default) follows
	// dns_canonicalize_hostname of krb5.conf (true when it is absent,
	// as in MIT Kerberos).
	CanonicalizeFromConfig Canonicalization = iota
	// CanonicalizeNever uses the host name as the URL (or the proxy URL)
	// writes it.
	CanonicalizeNever
	// CanonicalizeCNAME looks up the host's canonical name in the DNS,
	// and uses the host name as written when the lookup fails.
	CanonicalizeCNAME
)

// cnameTTL is how long a canonical name is remembered.
const cnameTTL = 5 * time.Minute

// cnameCache remembers canonical names, so that a request does not cost a
// DNS lookup.
type cnameCache struct {
	mu sync.Mutex
	m  map[string]cnameEntry
}

type cnameEntry struct {
	name    string
	expires time.Time
}

// lookup returns the canonical name of host, lower case and without the
// final dot, or host itself when the lookup fails or host is an address.
func (c *cnameCache) lookup(ctx context.Context, r *net.Resolver, host string) string {
	if net.ParseIP(host) != nil {
		return host
	}
	now := time.Now()
	c.mu.Lock()
	if e, ok := c.m[host]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.name
	}
	c.mu.Unlock()
	if r == nil {
		r = net.DefaultResolver
	}
	name := host
	if cname, err := r.LookupCNAME(ctx, host); err == nil && cname != "" {
		name = strings.ToLower(strings.TrimSuffix(cname, "."))
	} else if ctx.Err() != nil {
		return host // not remembered: the next request may get an answer
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) > 1024 {
		c.m = make(map[string]cnameEntry)
	}
	c.m[host] = cnameEntry{name, now.Add(cnameTTL)}
	c.mu.Unlock()
	return name
}

// hostSPN returns the service principal "HTTP/host" for host (a name or
// an address, without port or brackets).
func hostSPN(host string) string {
	return "HTTP/" + strings.ToLower(strings.TrimSuffix(host, "."))
}
