package anyauth

import (
	"net/url"
	"slices"
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

// put remembers e. An entry of the same scheme and realm loses the path
// prefixes e covers (e's session is the newer answer there) and keeps the
// others, so one realm spread over several directories keeps an answer
// for each of them instead of evicting one with the other.
func (c *spaceCache) put(e *cacheEntry) {
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[cacheKey][]*cacheEntry)
	}
	old := c.entries[key]
	list := make([]*cacheEntry, 0, len(old)+1)
	for _, o := range old {
		if !strings.EqualFold(o.space.AuthScheme, e.space.AuthScheme) || o.space.Realm != e.space.Realm {
			list = append(list, o)
			continue
		}
		var kept []string
		for _, p := range o.prefixes {
			if !slices.Contains(e.prefixes, p) {
				kept = append(kept, p)
			}
		}
		if len(kept) > 0 {
			trimmed := *o // entries are never changed in place: readers hold them
			trimmed.prefixes = kept
			list = append(list, &trimmed)
		}
	}
	if len(list) >= maxCachedSpacesPerHost {
		list = list[len(list)-maxCachedSpacesPerHost+1:]
	}
	if len(old) == 0 && len(c.entries) >= maxCachedOrigins {
		for k := range c.entries { // evict an arbitrary origin
			delete(c.entries, k)
			break
		}
	}
	c.entries[key] = append(list, e)
}

// remove forgets e if it is still cached, or what is left of it after a
// newer answer of its realm took some of its paths.
func (c *spaceCache) remove(e *cacheEntry) {
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.entries[key]
	for i, old := range list {
		if old == e || old.session == e.session {
			c.entries[key] = append(list[:i:i], list[i+1:]...)
			if len(c.entries[key]) == 0 {
				delete(c.entries, key)
			}
			return
		}
	}
}
