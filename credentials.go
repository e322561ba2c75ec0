package anyauth

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
)

// ErrNoCredentials is wrapped by errors that mean a provider has no
// credentials for a protection space. The Transport then tries the next
// challenge, and returns the server's response untouched when none is left.
var ErrNoCredentials = errors.New("anyauth: no credentials for this protection space")

// A CredentialProvider looks up the user name and password for a
// protection space. It returns an error wrapping ErrNoCredentials when it
// has none. It must be safe for concurrent use and may block (to prompt a
// user, or to read a secret store) while honouring ctx. The caller treats
// the returned value as read-only, so a provider may hand out a pointer
// to credentials it keeps.
//
// The Transport asks the provider on every request that meets a space it
// knows, at most once per realm and request (the answer is remembered for
// the rest of the request): the answer says who the request is, and only
// what the Transport learned for that identity is sent preemptively. A
// provider that answers per request (a CredentialFunc reading the user
// from ctx) is therefore honoured on every request, not only on the
// first; it should be cheap, or cache what it looks up.
type CredentialProvider interface {
	Credentials(ctx context.Context, space *ProtectionSpace) (*UserPassword, error)
}

// UserPassword is a user name and its password. Its String, GoString and
// Format methods never show the password, so it can be logged or printed
// with any verb.
type UserPassword struct {
	Username string
	Password string
}

const redacted = "REDACTED"

// String returns the user name and a redacted password.
func (c UserPassword) String() string {
	return fmt.Sprintf("{Username:%q Password:%s}", c.Username, redacted)
}

// GoString returns a Go-syntax representation with the password redacted.
func (c UserPassword) GoString() string {
	return fmt.Sprintf("anyauth.UserPassword{Username:%q, Password:%q}", c.Username, redacted)
}

// Format prints c with the password redacted, whatever the verb.
func (c UserPassword) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, c.GoString())
		return
	}
	fmt.Fprint(f, c.String())
}

// OriginCredentials offers one user name and password to every
// protection space of one origin, as curl's -u does: a redirect to another
// host, port or scheme gets nothing. Given as Transport.ProxyCredentials,
// its origin is the proxy's. ForOrigin makes one. Its String and Format redact the password.
type OriginCredentials struct {
	// Origin is "scheme://host[:port]"; a path is ignored.
	Origin string
	UserPassword

	parsed *originCache // made by ForOrigin; a copy shares it
}

// originCache keeps an OriginCredentials.Origin parsed.
type originCache struct{ p atomic.Pointer[parsedOrigin] }

// parsedOrigin is an OriginCredentials.Origin and what it names.
type parsedOrigin struct {
	raw string
	o   origin
}

// ForOrigin returns credentials that are valid for origin only, the form
// most programs want: anyauth.ForOrigin("https://api.example.com", user,
// pass). Like curl, it also takes "host:port" (or "host") without a
// scheme: then the credentials answer that host and port over http and
// https alike (port 80 or 443 when none is given). An origin that cannot
// be parsed answers nothing, and the error, naming the argument, comes
// with the first challenge (and in the Transport's Warn log).
func ForOrigin(origin, username, password string) *OriginCredentials {
	return &OriginCredentials{Origin: origin, UserPassword: UserPassword{Username: username, Password: password}, parsed: &originCache{}}
}

// Credentials returns the credentials when space is on c.Origin.
func (c *OriginCredentials) Credentials(_ context.Context, space *ProtectionSpace) (*UserPassword, error) {
	var p *parsedOrigin
	if c.parsed != nil {
		p = c.parsed.p.Load()
	}
	if p == nil || p.raw != c.Origin {
		o, err := parseOriginArg(c.Origin)
		if err != nil {
			return nil, err
		}
		p = &parsedOrigin{raw: c.Origin, o: o}
		if c.parsed != nil {
			c.parsed.p.Store(p)
		}
	}
	if !p.o.matches(space) {
		return nil, fmt.Errorf("%w: %s is not %s", ErrNoCredentials, space.Origin(), p.o)
	}
	return &c.UserPassword, nil
}

// origin is what an origin argument names: a scheme, host and port, or a
// host and port under either scheme.
type origin struct {
	ProtectionSpace      // URLScheme "" for either
	defaultPort     bool // no port was given: 80 for http, 443 for https
}

// matches reports whether space is on o.
func (o *origin) matches(space *ProtectionSpace) bool {
	if o.Host != space.Host {
		return false
	}
	if o.URLScheme != "" {
		return o.URLScheme == space.URLScheme && o.Port == space.Port
	}
	if o.defaultPort {
		return space.Port == defaultPort(space.URLScheme)
	}
	return o.Port == space.Port
}

func (o origin) String() string {
	if o.URLScheme != "" {
		return o.Origin()
	}
	return net.JoinHostPort(o.Host, o.Port) + " (http or https)"
}

// parseOriginArg parses "http(s)://host[:port]", or "host[:port]" for
// either scheme.
func parseOriginArg(arg string) (origin, error) {
	if strings.Contains(arg, "://") {
		u, err := parseOrigin(arg)
		if err != nil {
			return origin{}, err
		}
		return origin{ProtectionSpace: originOf(u)}, nil
	}
	host, port, err := net.SplitHostPort(arg)
	if err != nil {
		host, port = strings.Trim(arg, "[]"), ""
	}
	if host == "" || strings.ContainsAny(host, "/?#@ ") {
		return origin{}, fmt.Errorf("anyauth: origin %q is not http(s)://host[:port] or host[:port]", arg)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
			return origin{}, fmt.Errorf("anyauth: origin %q has no valid port", arg)
		}
	}
	o := origin{ProtectionSpace: ProtectionSpace{Host: strings.ToLower(host), Port: port}, defaultPort: port == ""}
	return o, nil
}

// String describes c with the password redacted.
func (c *OriginCredentials) String() string {
	return "OriginCredentials{" + c.Origin + " " + c.UserPassword.String() + "}"
}

// Format prints c with the password redacted, whatever the verb.
func (c *OriginCredentials) Format(f fmt.State, _ rune) { fmt.Fprint(f, c.String()) }

// Origins lists the origins, in the form "scheme://host[:port]", to which
// a credential that a scheme holds itself (a Bearer token, a signing key,
// a Kerberos ticket) may be sent. Like ForOrigin, it keeps such a
// credential on the origins the user names: a redirect or a challenge from
// anywhere else gets nothing, and neither does a proxy.
//
// A scheme with empty Origins answers nobody: there is no "any origin".
type Origins []string

// AllowsURL reports whether u's origin (scheme, host, port, the default
// port filled in) is one of o's: what a scheme that answers before any
// challenge (a Volunteer) asks of a request's URL.
func (o Origins) AllowsURL(u *url.URL) bool {
	if u == nil {
		return false
	}
	space := originOf(u)
	return o.Allows(&space)
}

// Allows reports whether space is the space of an origin server (not a
// proxy) on one of o's origins. An entry that does not parse as
// "http(s)://host[:port]" allows nothing.
func (o Origins) Allows(space *ProtectionSpace) bool {
	if space == nil || space.Proxy {
		return false
	}
	for _, origin := range o {
		u, err := parseOrigin(origin)
		if err != nil {
			continue
		}
		x := originOf(u)
		if x.URLScheme == space.URLScheme && x.Host == space.Host && x.Port == space.Port {
			return true
		}
	}
	return false
}

// Check returns an error naming the first entry of o that is not of the
// form "http(s)://host[:port]", or nil.
func (o Origins) Check() error {
	for _, origin := range o {
		if _, err := parseOrigin(origin); err != nil {
			return err
		}
	}
	return nil
}

func parseOrigin(origin string) (*url.URL, error) {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("anyauth: origin %q is not of the form http(s)://host[:port]", origin)
	}
	return u, nil
}

// A CredentialEntry is one row of a CredentialTable.
type CredentialEntry struct {
	// Host is "host" (any port), "host:port", or "*" for any host,
	// optionally after "https://" or "http://".
	//
	// For origins, an entry without a scheme answers https, and plain
	// http only on loopback hosts: after a redirect from https to http on
	// the same host, the credentials of the https site are not sent in
	// the clear. Write "http://host" for a plain-http origin. Entries for
	// proxies (Proxy true) answer the proxy whatever its scheme, unless
	// one is written.
	Host string
	// Realm is the realm it answers; "" answers any realm.
	Realm string
	// Proxy limits the entry to proxies (true) or to origins (false).
	Proxy bool
	UserPassword
}

// CredentialTable holds credentials per host and realm. The most specific
// entry wins: a given port over any port, a given realm over any realm, a
// given host over "*". Its String and Format redact the passwords.
type CredentialTable []CredentialEntry

// Credentials returns the most specific entry that matches space.
func (t CredentialTable) Credentials(_ context.Context, space *ProtectionSpace) (*UserPassword, error) {
	best, bestScore := -1, -1
	for i := range t {
		e := &t[i]
		if e.Proxy != space.Proxy {
			continue
		}
		host, scheme := e.Host, ""
		if before, after, ok := strings.Cut(host, "://"); ok {
			scheme, host = strings.ToLower(before), strings.TrimSuffix(after, "/")
		}
		switch {
		case scheme != "":
			if scheme != space.URLScheme {
				continue
			}
		case !space.Proxy && space.URLScheme != "https" && !isLoopback(space.Host):
			continue // a scheme-less entry answers plain http on loopback only
		}
		score := 0
		switch {
		case host == "*":
		case strings.EqualFold(host, space.Host), strings.EqualFold(strings.Trim(host, "[]"), space.Host):
			score += 2
		case strings.EqualFold(host, space.Host+":"+space.Port), strings.EqualFold(host, "["+space.Host+"]:"+space.Port):
			score += 4
		default:
			continue
		}
		switch e.Realm {
		case "":
		case space.Realm:
			score++
		default:
			continue
		}
		if score > bestScore {
			best, bestScore = i, score
		}
	}
	if best < 0 {
		if space.Proxy && t.hasOriginEntryFor(space) {
			return nil, fmt.Errorf("%w: no table entry for %s: the entries for that host are for origins; set Proxy: true on an entry for a proxy", ErrNoCredentials, space)
		}
		return nil, fmt.Errorf("%w: no table entry for %s", ErrNoCredentials, space)
	}
	return &t[best].UserPassword, nil
}

// hasOriginEntryFor reports whether an origin entry (Proxy false) names
// the proxy space's host: a table given as ProxyCredentials whose entries
// forgot Proxy: true.
func (t CredentialTable) hasOriginEntryFor(space *ProtectionSpace) bool {
	for i := range t {
		e := &t[i]
		host := e.Host
		if _, after, ok := strings.Cut(host, "://"); ok {
			host = strings.TrimSuffix(after, "/")
		}
		if !e.Proxy && (host == "*" || strings.EqualFold(strings.Trim(host, "[]"), space.Host) || strings.EqualFold(host, space.Host+":"+space.Port)) {
			return true
		}
	}
	return false
}

// String lists the table's hosts and realms with the passwords redacted.
func (t CredentialTable) String() string {
	var b strings.Builder
	b.WriteString("CredentialTable[")
	for i := range t {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "{%s realm=%q proxy=%t %s}", t[i].Host, t[i].Realm, t[i].Proxy, t[i].UserPassword)
	}
	b.WriteString("]")
	return b.String()
}

// Format prints t with the passwords redacted, whatever the verb.
func (t CredentialTable) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// CredentialFunc adapts a function (a prompt, a secret store) to a
// CredentialProvider.
type CredentialFunc func(ctx context.Context, space *ProtectionSpace) (*UserPassword, error)

// Credentials calls f.
func (f CredentialFunc) Credentials(ctx context.Context, space *ProtectionSpace) (*UserPassword, error) {
	return f(ctx, space)
}

// Chain asks each provider in turn and returns the first credentials
// found. An error other than ErrNoCredentials stops the search.
type Chain []CredentialProvider

// Credentials returns the first provider's answer that is not
// ErrNoCredentials.
func (c Chain) Credentials(ctx context.Context, space *ProtectionSpace) (*UserPassword, error) {
	for _, p := range c {
		up, err := p.Credentials(ctx, space)
		if err == nil {
			return up, nil
		}
		if !errors.Is(err, ErrNoCredentials) {
			return nil, err
		}
	}
	return nil, ErrNoCredentials
}

// Accepted passes the verdict to every member that is a
// CredentialVerdicts.
func (c Chain) Accepted(ctx context.Context, space *ProtectionSpace, up UserPassword) {
	for _, p := range c {
		if v, ok := p.(CredentialVerdicts); ok {
			v.Accepted(ctx, space, up)
		}
	}
}

// Refused passes the verdict to every member that is a
// CredentialVerdicts.
func (c Chain) Refused(ctx context.Context, space *ProtectionSpace, up UserPassword) {
	for _, p := range c {
		if v, ok := p.(CredentialVerdicts); ok {
			v.Refused(ctx, space, up)
		}
	}
}

// A CredentialVerdicts is a CredentialProvider that wants to know how
// the credentials it gave fared, as a credential helper that stores what
// worked and forgets what was refused (git credential approve and
// reject). The Transport calls Accepted when a server accepted a fresh
// answer made with credentials the provider gave for space on this
// request, and Refused when it refused one, the credentials being those
// it gave; neither for an answer sent from the cache, nor for schemes
// that do not ask the provider (Bearer). They run on the request's
// goroutine, within its context: they must not block for long. A Chain
// passes them to every member that is a CredentialVerdicts; each should
// act only on credentials it gave itself.
type CredentialVerdicts interface {
	CredentialProvider
	Accepted(ctx context.Context, space *ProtectionSpace, up UserPassword)
	Refused(ctx context.Context, space *ProtectionSpace, up UserPassword)
}

// requestCredentials is the provider a Transport hands to schemes during
// one request, and the request's record of who it is in each realm:
//   - it asks the provider once per realm and request, and gives the same
//     answer to every later question about that realm (the preemptive
//     lookup, Begin, the identity of a connection), so a CredentialFunc
//     that prompts prompts once;
//   - it remembers which credentials an origin refused on this request,
//     so that they are not offered to another realm of the same scheme (a
//     server that answers every answer with a new realm gets the password
//     once, not once per realm). Another scheme may still get them when
//     AllowDowngrade lets it be tried; after a refusal the provider is
//     asked again, so a prompt can offer other credentials.
//
// It lives inside the request's exchange and allocates nothing for the
// first realm it records.
type requestCredentials struct {
	provider CredentialProvider
	digests  *passwordDigests // the Transport's, to name identities
	given    []givenCredentials
	givenBuf [1]givenCredentials
	refused  []refusedCredentials
}

// givenCredentials is what the provider answered for a space (its path
// aside: a realm's credentials are the same in every directory): up, or
// none when it had no credentials. space is the space the provider was
// asked about: a cache entry's or an Attempt's, neither of which changes.
type givenCredentials struct {
	space *ProtectionSpace
	up    UserPassword
	none  bool
}

// sameRealm reports whether a and b are one scheme's realm on one origin
// or proxy.
func sameRealm(a, b *ProtectionSpace) bool {
	return a.Proxy == b.Proxy && a.Realm == b.Realm && a.Host == b.Host && a.Port == b.Port &&
		a.URLScheme == b.URLScheme && (a.AuthScheme == b.AuthScheme || strings.EqualFold(a.AuthScheme, b.AuthScheme))
}

// recorded returns what the provider answered for space on this request.
func (r *requestCredentials) recorded(space *ProtectionSpace) *givenCredentials {
	for i := range r.given {
		if sameRealm(r.given[i].space, space) {
			return &r.given[i]
		}
	}
	return nil
}

// lookup returns the credentials given for space on this request.
func (r *requestCredentials) lookup(space *ProtectionSpace) (UserPassword, bool) {
	if g := r.recorded(space); g != nil && !g.none {
		return g.up, true
	}
	return UserPassword{}, false
}

// asked reports whether the provider was asked about space on this
// request, and who the answer named (the zero identity for none).
func (r *requestCredentials) asked(space *ProtectionSpace) (identity, bool) {
	if g := r.recorded(space); g != nil {
		return r.identity(g), true
	}
	return identity{}, false
}

type refusedCredentials struct {
	authScheme string
	UserPassword
}

// Credentials answers from what the provider said earlier on this request
// for space's realm, else asks it; it refuses what was refused before on
// this request.
func (r *requestCredentials) Credentials(ctx context.Context, space *ProtectionSpace) (*UserPassword, error) {
	g, err := r.ask(ctx, space)
	if err != nil {
		return nil, err
	}
	if r.wasRefused(&g.up, space) {
		return nil, fmt.Errorf("%w: the credentials for %s were refused by the server earlier in this request", ErrNoCredentials, space)
	}
	up := g.up
	return &up, nil
}

// ask returns what the provider says for space's realm on this request,
// asking it when it was not asked yet, or when what it gave was refused
// (a prompt may offer other credentials). It returns an error wrapping
// ErrNoCredentials when the provider has none, and the provider's other
// errors as they are (those are not remembered).
func (r *requestCredentials) ask(ctx context.Context, space *ProtectionSpace) (*givenCredentials, error) {
	g := r.recorded(space)
	if g == nil && r.provider == nil {
		g = r.record(space, nil, true)
	}
	if g == nil || (!g.none && r.wasRefused(&g.up, space)) {
		up, err := r.provider.Credentials(ctx, space)
		if err != nil && !errors.Is(err, ErrNoCredentials) {
			return nil, err
		}
		g = r.record(space, up, err != nil || up == nil)
		if err != nil {
			return nil, err
		}
	}
	if g.none {
		return nil, fmt.Errorf("%w: the provider has none for %s", ErrNoCredentials, space)
	}
	return g, nil
}

// record keeps the provider's answer for space's realm.
func (r *requestCredentials) record(space *ProtectionSpace, up *UserPassword, none bool) *givenCredentials {
	g := r.recorded(space)
	if g == nil {
		if r.given == nil {
			r.given = r.givenBuf[:0]
		}
		r.given = append(r.given, givenCredentials{space: space})
		g = &r.given[len(r.given)-1]
	}
	g.none, g.up = none, UserPassword{}
	if !none {
		g.up = *up
	}
	return g
}

func (r *requestCredentials) wasRefused(up *UserPassword, space *ProtectionSpace) bool {
	for _, bad := range r.refused {
		if bad.UserPassword == *up && strings.EqualFold(bad.authScheme, space.AuthScheme) {
			return true
		}
	}
	return false
}

// identity names who g's credentials are, the zero identity for none.
func (r *requestCredentials) identity(g *givenCredentials) identity {
	if g.none {
		return identity{}
	}
	return r.digests.identityOf(&g.up)
}

// refuse records that the credentials given for space were refused, and
// tells the provider (CredentialVerdicts).
func (r *requestCredentials) refuse(ctx context.Context, space *ProtectionSpace) {
	if up, ok := r.lookup(space); ok {
		r.refused = append(r.refused, refusedCredentials{space.AuthScheme, up})
		if v, ok := r.provider.(CredentialVerdicts); ok {
			v.Refused(ctx, space, up)
		}
	}
}

// accept tells the provider (CredentialVerdicts) that the credentials it
// gave for space were accepted.
func (r *requestCredentials) accept(ctx context.Context, space *ProtectionSpace) {
	if v, ok := r.provider.(CredentialVerdicts); ok {
		if up, ok := r.lookup(space); ok {
			v.Accepted(ctx, space, up)
		}
	}
}
