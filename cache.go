package anyauth

import (
	"net/url"
	"strings"
	"sync"
)

// Bounds on what a Transport remembers, so that hostile servers cannot
// grow it without limit.
const (
	maxCachedOrigins       = 1024
	maxCachedSpacesPerHost = 16
)

// cacheEntry is a protection space whose Session succeeded, kept so later
// requests in the space carry credentials before being challenged.
type cacheEntry struct {
	space    ProtectionSpace
	prefixes []string // path prefixes covered (always at least one)
	session  Session
	strength Strength
	traits   Traits
}

// covers reports how long a prefix of path the entry covers, -1 for none.
func (e *cacheEntry) covers(path string) int {
	best := -1
	for _, p := range e.prefixes {
		if len(p) > best && strings.HasPrefix(path, p) {
			best = len(p)
		}
	}
	return best
}

type cacheKey struct {
	proxy     bool
	urlScheme string
	host      string
	port      string
}

func keyOf(s *ProtectionSpace) cacheKey {
	return cacheKey{s.Proxy, s.URLScheme, s.Host, s.Port}
}

// spaceCache maps origins (and proxies) to their known protection spaces.
type spaceCache struct {
	mu      sync.RWMutex
	entries map[cacheKey][]*cacheEntry
}

// lookup returns the entry covering u's path on the origin of key with
// the longest prefix (the strongest among equals), or nil.
func (c *spaceCache) lookup(key cacheKey, u *url.URL) *cacheEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	list := c.entries[key]
	if len(list) == 0 {
		return nil
	}
	path := "/"
	if !key.proxy {
		path = pathOf(u)
	}
	var best *cacheEntry
	bestLen := -1
	for _, e := range list {
		n := e.covers(path)
		if n > bestLen || (n == bestLen && n >= 0 && e.strength > best.strength) {
			best, bestLen = e, n
		}
	}
	return best
}

// put remembers e, replacing the entry of the same scheme and realm.
func (c *spaceCache) put(e *cacheEntry) {
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[cacheKey][]*cacheEntry)
	}
	list := c.entries[key]
	for i, old := range list {
		if strings.EqualFold(old.space.AuthScheme, e.space.AuthScheme) && old.space.Realm == e.space.Realm {
			list[i] = e
			return
		}
	}
	if len(list) >= maxCachedSpacesPerHost {
		list = list[1:]
	}
	if list == nil && len(c.entries) >= maxCachedOrigins {
		for k := range c.entries { // evict an arbitrary origin
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = append(list, e)
}

// remove forgets e if it is still cached.
func (c *spaceCache) remove(e *cacheEntry) {
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.entries[key]
	for i, old := range list {
		if old == e {
			c.entries[key] = append(list[:i:i], list[i+1:]...)
			if len(c.entries[key]) == 0 {
				delete(c.entries, key)
			}
			return
		}
	}
}
