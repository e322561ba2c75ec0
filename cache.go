package anyauth

import (
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// The space cache remembers, for later requests, the answers that
// succeeded. Its rules:
//
//   - Key: an entry belongs to one protection space (scheme, origin or
//     proxy, realm, path prefixes) AND one identity: who the credential
//     provider said the request was (user name and a digest of the
//     password), or "anyone" when the scheme never asked the provider
//     (a Bearer token, a Kerberos ticket cache: the scheme holds its own
//     identity). A request is answered preemptively only by an entry of
//     its own identity, so the provider is asked on every request that
//     meets a known space (see CredentialProvider).
//   - A Session answers the challenge it was made from: schemes key what
//     they share between sessions themselves (Digest shares credentials
//     and nonce counts, never a nonce, algorithm, qop, opaque or userhash
//     that a directory did not send).
//   - Lifetime: an entry lives until its answer is refused, Forget, or
//     eviction. Two identities in one space keep two entries.
//   - Bounds: at most maxCachedSpacesPerHost entries per origin or proxy,
//     maxCachedEntries in all, and maxCachedBytes of realms and paths;
//     past a bound, the least recently used entry goes. An entry whose
//     realm and paths alone exceed maxCachedEntryBytes is not kept.
//   - Entries are compared by their own identity (a pointer they share
//     with their trimmed copies), never with == on a Session, which a
//     user's scheme may make uncomparable.
const (
	maxCachedSpacesPerHost = 64
	maxCachedEntries       = 4096
	maxCachedBytes         = 4 << 20
	maxCachedEntryBytes    = maxCachedBytes / 16
	// cachedEntryOverhead is what an entry is counted for besides its
	// realm and paths.
	cachedEntryOverhead = 256
)

// cacheEntry is a protection space whose Session succeeded for one
// identity, kept so later requests of that identity in the space carry
// credentials before being challenged. Entries are never changed after
// they are cached, but for the use stamp in their shared state.
type cacheEntry struct {
	space    ProtectionSpace
	prefixes []string // path prefixes covered (always at least one)
	session  Session
	strength Strength
	traits   Traits
	// who is the identity the entry answers for; asked is false when
	// the scheme never asked the credential provider, and then the entry
	// answers for anyone.
	who   identity
	asked bool
	// state is shared by the entry and the copies that put trims from
	// it: it identifies the entry.
	state *entryState
}

// entryState is what an entry and its trimmed copies share.
type entryState struct {
	used atomic.Uint64 // the cache's clock when last used
	size int           // bytes counted against maxCachedBytes
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

// sameOwner reports whether a and b answer for the same identity.
func (e *cacheEntry) sameOwner(o *cacheEntry) bool {
	return e.asked == o.asked && e.who == o.who
}

// entrySize is what an entry is counted for.
func entrySize(e *cacheEntry) int {
	n := cachedEntryOverhead + len(e.space.Realm) + len(e.space.Host) + len(e.space.Path)
	for _, p := range e.prefixes {
		n += len(p)
	}
	return n
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
// The lists in entries are never modified once stored, so a reader may
// keep one after releasing mu.
type spaceCache struct {
	mu      sync.RWMutex
	entries map[cacheKey][]*cacheEntry
	count   int           // entries in all
	bytes   int           // sum of their sizes
	clock   atomic.Uint64 // advanced by every put
}

// list returns the entries of key's origin or proxy, to be read only.
func (c *spaceCache) list(key cacheKey) []*cacheEntry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.entries[key]
}

// touch records that e was used, for the eviction order.
func (c *spaceCache) touch(e *cacheEntry) {
	now := c.clock.Load()
	if e.state.used.Load() != now { // written once per clock tick: no cache-line ping-pong
		e.state.used.Store(now)
	}
}

// put remembers e. An entry of the same scheme, realm and identity loses
// the path prefixes e covers (e's session is the newer answer there) and
// keeps the others, so one realm spread over several directories keeps an
// answer for each of them instead of evicting one with the other.
func (c *spaceCache) put(e *cacheEntry) bool {
	size := entrySize(e)
	if size > maxCachedEntryBytes {
		return false
	}
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[cacheKey][]*cacheEntry)
	}
	e.state = &entryState{size: size}
	e.state.used.Store(c.clock.Add(1))
	old := c.entries[key]
	list := make([]*cacheEntry, 0, len(old)+1)
	for _, o := range old {
		if !strings.EqualFold(o.space.AuthScheme, e.space.AuthScheme) || o.space.Realm != e.space.Realm || !o.sameOwner(e) {
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
		} else {
			c.forgetLocked(o)
		}
	}
	c.setLocked(key, append(list, e))
	c.count++
	c.bytes += size
	for len(c.entries[key]) > maxCachedSpacesPerHost {
		c.evictLocked(key)
	}
	for c.count > maxCachedEntries || c.bytes > maxCachedBytes {
		c.evictLocked(cacheKey{})
	}
	return true
}

// remove forgets e if it is still cached, or what is left of it after a
// newer answer of its realm took some of its paths.
func (c *spaceCache) remove(e *cacheEntry) {
	if e.state == nil {
		return
	}
	key := keyOf(&e.space)
	c.mu.Lock()
	defer c.mu.Unlock()
	list := c.entries[key]
	for i, old := range list {
		if old.state == e.state {
			c.forgetLocked(old)
			c.setLocked(key, append(list[:i:i], list[i+1:]...))
			return
		}
	}
}

// evictLocked drops the least recently used entry of key's list, or of
// the whole cache when key is the zero key.
func (c *spaceCache) evictLocked(key cacheKey) {
	var victim *cacheEntry
	var victimKey cacheKey
	consider := func(k cacheKey, list []*cacheEntry) {
		for _, e := range list {
			if victim == nil || e.state.used.Load() < victim.state.used.Load() {
				victim, victimKey = e, k
			}
		}
	}
	if key != (cacheKey{}) {
		consider(key, c.entries[key])
	} else {
		for k, list := range c.entries {
			consider(k, list)
		}
	}
	if victim == nil {
		return
	}
	list := c.entries[victimKey]
	i := slices.Index(list, victim)
	c.forgetLocked(victim)
	c.setLocked(victimKey, append(list[:i:i], list[i+1:]...))
}

// forgetLocked takes e out of the counts.
func (c *spaceCache) forgetLocked(e *cacheEntry) {
	c.count--
	c.bytes -= e.state.size
}

// setLocked stores the list of key, deleting the key of an empty one.
func (c *spaceCache) setLocked(key cacheKey, list []*cacheEntry) {
	if len(list) == 0 {
		delete(c.entries, key)
		return
	}
	c.entries[key] = list
}

// reset forgets every entry.
func (c *spaceCache) reset() {
	c.mu.Lock()
	c.entries, c.count, c.bytes = nil, 0, 0
	c.mu.Unlock()
}

// size returns how many entries the cache holds.
func (c *spaceCache) size() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.count
}

// pathForLookup is the path a cached entry must cover for a request to u:
// "/" for a proxy, whose spaces cover everything.
func pathForLookup(proxy bool, u *url.URL) string {
	if proxy {
		return "/"
	}
	return pathOf(u)
}
