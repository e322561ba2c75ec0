package negotiate

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Kerberos answers Negotiate challenges (RFC 4559) with a SPNEGO token
// carrying a Kerberos 5 AP-REQ, built with github.com/jcmturner/gokrb5/v8.
//
// Credentials are taken, first found first served, from:
//  1. Keytab (with Principal), or Password (with Principal);
//  2. the user name and password the Transport's credential provider has
//     for the protection space (Attempt.Credentials), unless
//     IgnoreTransportCredentials: the password that serves Basic or
//     Digest serves Kerberos too, the name being "user", "user@REALM" or
//     "REALM\user";
//  3. the credential cache kinit left: CCache, else KRB5CCNAME, else
//     default_ccache_name of krb5.conf (include and includedir
//     followed), else /tmp/krb5cc_<uid>. FILE: caches, plain paths, DIR:
//     collections, KCM: (the KCM daemon of Fedora, RHEL and sssd
//     desktops, sssd-kcm or Heimdal's kcm, at kcm_socket of krb5.conf)
//     and, on Linux, KEYRING: (persistent, session, user, process and
//     legacy names, read with keyctl) are read; MEMORY: and API: are not.
//     A KCM or KEYRING cache's principal and ticket-granting ticket are
//     copied for gokrb5, which reads only files, into a file of mode 0600
//     in a private directory
//     ($XDG_RUNTIME_DIR/anyauth-kcm, else $TMPDIR/anyauth-kcm-<uid>, mode
//     0700), as a FILE: cache would hold them; no service ticket goes
//     there.
//
// With none of them, Begin returns an error wrapping
// anyauth.ErrNoCredentials (and ErrNoTicket or ErrTicketExpired, saying
// where it looked and to run kinit), so the Transport answers another
// challenge of the response, such as Basic or Digest.
//
// The service principal is "HTTP/<host>" of the request's URL (of the
// proxy's URL for a 407), without the port, after canonicalization as
// Canonicalize says; SPN overrides it. The request's Host header is
// never changed.
//
// Tickets are shared by every request of the Kerberos value: one
// ticket-granting ticket per credential source, renewed, obtained again
// (password, keytab) or read again from the cache (when kinit replaced
// it) shortly before it expires, and one service ticket per service
// principal, fetched once however many requests want it at the same time.
// Each answer carries a fresh authenticator, since servers keep replay
// caches. No goroutine outlives a KDC exchange.
//
// Once a Negotiate answer succeeded in a protection space, later requests
// of the space (and of the same identity) carry a fresh AP-REQ from the
// first round trip, with the cached service ticket and a new
// authenticator, so N requests cost N+1 round trips, as for Basic and
// Digest; a refused preemptive answer falls back to the challenge.
// Mutual authentication is asked for and checked as Mutual says.
//
// A Kerberos must not be copied after first use. Its String and Format
// never show the password.
type Kerberos struct {
	// Config is the path of krb5.conf. "" means the first file of
	// KRB5_CONFIG, else /etc/krb5.conf.
	Config string

	// CCache names the credential cache: "FILE:/path", "/path",
	// "DIR:/dir", "DIR::/dir/tkt", "KCM:", "KCM:uid" or "KCM:uid:name".
	// "" means KRB5CCNAME, then default_ccache_name of krb5.conf, then
	// /tmp/krb5cc_<uid>.
	CCache string

	// Keytab is the path of a keytab to log in with, as Principal (or as
	// the keytab's first principal when Principal is "").
	Keytab string

	// Principal is the client principal for Keytab or Password: "user"
	// (in the default realm of krb5.conf) or "user@REALM".
	Principal string

	// Password is Principal's password.
	Password string

	// IgnoreTransportCredentials stops the scheme from logging in with
	// the user name and password of the Transport's credential provider.
	IgnoreTransportCredentials bool

	// SPN, if set, is the service principal for every challenge, such as
	// "HTTP/www.example.com", instead of the one derived from the host.
	SPN string

	// Canonicalize says whether the host name is canonicalized (CNAME)
	// before it goes into the service principal.
	Canonicalize Canonicalization

	// Resolver looks up canonical names; nil means net.DefaultResolver.
	Resolver *net.Resolver

	// Mutual says whether the server must prove itself with the token of
	// its final response. The default is MutualIfPresent. For proxies,
	// MutualRequired is taken as MutualIfPresent: Squid's
	// negotiate_kerberos_auth sends no token with the answers it lets
	// through.
	Mutual MutualMode

	// Preemptive is kept for compatibility and has no effect: every
	// protection space is answered preemptively once a Negotiate answer
	// succeeded in it (see Kerberos).
	//
	// Deprecated: Negotiate is preemptive everywhere after its first
	// success.
	Preemptive anyauth.Origins

	mu      sync.Mutex
	configs map[string]*config.Config
	sources map[string]*source
	secret  []byte // keys the password sources' map entries
	cnames  cnameCache

	availAt atomic.Int64 // unix nanoseconds of the last availability check
	avail   atomic.Bool
}

// Name returns "Negotiate".
func (*Kerberos) Name() string { return "Negotiate" }

// Traits reports the zero Traits: a Negotiate answer reveals no reusable
// secret, is sent preemptively once its space is known (each with a
// fresh authenticator), and is not bound to a connection.
func (k *Kerberos) Traits() anyauth.Traits { return anyauth.Traits{} }

// Strength returns anyauth.StrengthNegotiate when Kerberos credentials
// may be available: a keytab or password is configured, or a krb5.conf
// exists and the Transport's credentials may be used or a credential
// cache file exists. The check reads no file and is redone at most once
// a second. Begin may still find nothing to answer with.
func (k *Kerberos) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	now := time.Now().UnixNano()
	if last := k.availAt.Load(); last != 0 && now-last < int64(time.Second) {
		return anyauth.StrengthNegotiate, k.avail.Load()
	}
	ok := k.available()
	k.avail.Store(ok)
	k.availAt.Store(now)
	return anyauth.StrengthNegotiate, ok
}

func (k *Kerberos) available() bool {
	if k.Keytab != "" || k.Password != "" {
		return true // configured: errors (no krb5.conf...) must show
	}
	if _, err := os.Stat(k.configPath()); err != nil {
		return false
	}
	if !k.IgnoreTransportCredentials {
		return true
	}
	loc := locateCCache(k.CCache, k.configPath())
	if loc.err != nil {
		return false
	}
	_, err := os.Stat(loc.path)
	return err == nil
}

// configPath returns the krb5.conf to use.
func (k *Kerberos) configPath() string {
	if k.Config != "" {
		return k.Config
	}
	if env := os.Getenv("KRB5_CONFIG"); env != "" {
		for _, p := range strings.Split(env, ":") {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		return strings.Split(env, ":")[0]
	}
	return "/etc/krb5.conf"
}

// config loads (once per path) the Kerberos configuration.
func (k *Kerberos) config() (*config.Config, string, error) {
	path := k.configPath()
	k.mu.Lock()
	defer k.mu.Unlock()
	if c := k.configs[path]; c != nil {
		return c, path, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, path, fmt.Errorf("%w: %s does not exist; set KRB5_CONFIG or Kerberos.Config", ErrNoConfig, path)
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, path, fmt.Errorf("%w: %s: %w", ErrNoConfig, path, err)
	}
	if k.configs == nil {
		k.configs = make(map[string]*config.Config)
	}
	k.configs[path] = c
	return c, path, nil
}

// maxSources bounds the credential sources a Kerberos keeps; past it,
// the password sources are forgotten.
const maxSources = 64

// source returns the shared credential source for a, creating it if
// needed.
func (k *Kerberos) source(ctx context.Context, a *anyauth.Attempt) (*source, error) {
	explicit := k.Keytab != "" || k.Password != ""
	cfg, cfgPath, err := k.config()
	if err != nil {
		if !explicit {
			return nil, stepAside(err)
		}
		return nil, err
	}
	var key string
	var newSrc func() (*source, error)
	switch {
	case k.Keytab != "":
		user, realm := "", ""
		if k.Principal != "" {
			if user, realm, err = resolvePrincipal(k.Principal, cfg, cachedTGT{}); err != nil {
				return nil, err
			}
		}
		key = "keytab\x00" + cfgPath + "\x00" + k.Keytab + "\x00" + user + "@" + realm
		newSrc = func() (*source, error) { return newKeytabSource(cfg, k.Keytab, user, realm) }
	case k.Password != "":
		if k.Principal == "" {
			return nil, errors.New("negotiate: Kerberos.Password needs Kerberos.Principal")
		}
		user, realm, err := resolvePrincipal(k.Principal, cfg, cachedTGT{})
		if err != nil {
			return nil, err
		}
		user, realm = enterpriseRealm(ctx, k.Principal, user, realm, k.Password, cfg, cachedTGT{})
		key = "password\x00" + cfgPath + "\x00" + user + "@" + realm + "\x00" + k.passwordKey(k.Password)
		newSrc = func() (*source, error) { return newPasswordSource(cfg, user, realm, k.Password), nil }
	}
	if key == "" && !k.IgnoreTransportCredentials && a != nil && a.Credentials != nil {
		if key, newSrc, err = k.transportLogin(ctx, a, cfg, cfgPath); err != nil {
			return nil, err
		}
	}
	if key == "" {
		loc := locateCCache(k.CCache, cfgPath)
		if loc.err != nil {
			return nil, stepAside(fmt.Errorf("%w: %w", ErrNoTicket, loc.err))
		}
		key = "ccache\x00" + cfgPath + "\x00" + loc.path
		newSrc = func() (*source, error) { return newCCacheSource(cfg, loc), nil }
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if s := k.sources[key]; s != nil {
		return s, nil
	}
	s, err := newSrc()
	if err != nil {
		return nil, err
	}
	if k.sources == nil || len(k.sources) >= maxSources {
		old := k.sources
		k.sources = make(map[string]*source)
		for kk, v := range old {
			if v.kind != "password" {
				k.sources[kk] = v
			}
		}
	}
	k.sources[key] = s
	return s, nil
}

// transportLogin returns the key and maker of a password source for the
// user name and password of the Transport's provider, or "" when there
// are none or when kinit already logged that user in (its ticket wins
// over a password login, as on a domain member).
func (k *Kerberos) transportLogin(ctx context.Context, a *anyauth.Attempt, cfg *config.Config, cfgPath string) (string, func() (*source, error), error) {
	up, err := a.Credentials.Credentials(ctx, &a.Space)
	switch {
	case err != nil && !errors.Is(err, anyauth.ErrNoCredentials):
		return "", nil, err
	case err != nil || up == nil || up.Username == "" || up.Password == "":
		return "", nil, nil
	}
	cached := cachedLogin(locateCCache(k.CCache, cfgPath))
	user, realm, err := resolvePrincipal(up.Username, cfg, cached)
	if err != nil {
		return "", nil, err
	}
	user, realm = enterpriseRealm(ctx, up.Username, user, realm, up.Password, cfg, cached)
	if cached.valid && strings.EqualFold(cached.user, user) && cached.realm == realm {
		return "", nil, nil
	}
	pw := up.Password
	key := "password\x00" + cfgPath + "\x00" + user + "@" + realm + "\x00" + k.passwordKey(pw)
	return key, func() (*source, error) { return newPasswordSource(cfg, user, realm, pw), nil }, nil
}

// passwordKey returns a keyed hash of a password, to tell password
// sources apart without keeping the password in a map key.
func (k *Kerberos) passwordKey(pw string) string {
	k.mu.Lock()
	if k.secret == nil {
		k.secret = make([]byte, 32)
		_, _ = rand.Read(k.secret)
	}
	secret := k.secret
	k.mu.Unlock()
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(pw))
	return hex.EncodeToString(m.Sum(nil))
}

// resolvePrincipal turns a user name as people type it into a Kerberos
// principal, as a Windows domain member does:
//   - "user@REALM" is taken as it is, a lower-case realm ("alice@corp.test",
//     a DNS domain) upper-cased unless krb5.conf knows it so;
//   - "DOMAIN\user" maps the logon domain to its realm: a DNS domain
//     ("corp.test\alice") is the realm upper-cased; a NetBIOS name
//     ("CORP\alice") is the realm of the ticket kinit left for that user,
//     else default_realm, a [realms] name or a [domain_realm] value whose
//     first label is that name (CORP.TEST for CORP), else default_realm;
//   - "user" is in default_realm.
func resolvePrincipal(p string, cfg *config.Config, cached cachedTGT) (user, realm string, err error) {
	switch {
	case strings.Contains(p, "@"):
		i := strings.LastIndex(p, "@")
		user, realm = p[:i], p[i+1:]
		if realm != strings.ToUpper(realm) && !knownRealm(cfg, realm) {
			realm = strings.ToUpper(realm)
		}
	case strings.Contains(p, `\`):
		i := strings.Index(p, `\`)
		user = p[i+1:]
		realm, _ = realmOfDomain(p[:i], user, cfg, cached)
	default:
		user, realm = p, cfg.LibDefaults.DefaultRealm
	}
	if user == "" {
		return "", "", fmt.Errorf("negotiate: principal %q has no user name", p)
	}
	if realm == "" {
		return "", "", fmt.Errorf("%w: principal %q names no realm and krb5.conf has no default_realm", ErrNoConfig, p)
	}
	return user, realm, nil
}

// realmOfDomain maps a Windows logon domain to a Kerberos realm (see
// resolvePrincipal). It reports false when no rule named the domain and
// the realm is only default_realm's guess: then the KDC may be asked
// (enterpriseRealm).
func realmOfDomain(domain, user string, cfg *config.Config, cached cachedTGT) (string, bool) {
	if strings.Contains(domain, ".") {
		return strings.ToUpper(domain), true // a DNS domain names its realm
	}
	named := func(realm string) bool {
		first, _, _ := strings.Cut(realm, ".")
		return realm != "" && strings.EqualFold(first, domain)
	}
	if cached.user != "" && strings.EqualFold(cached.user, user) && named(cached.realm) {
		return cached.realm, true
	}
	if named(cfg.LibDefaults.DefaultRealm) {
		return cfg.LibDefaults.DefaultRealm, true
	}
	for _, r := range cfg.Realms {
		if named(r.Realm) {
			return r.Realm, true
		}
	}
	for _, r := range cfg.DomainRealm {
		if named(r) {
			return r, true
		}
	}
	if r := cfg.LibDefaults.DefaultRealm; r != "" {
		return r, false
	}
	return strings.ToUpper(domain), false
}

// enterpriseRealm returns user and realm as resolvePrincipal made them,
// unless name is DOMAIN\user with a domain no rule of krb5.conf maps:
// then it asks the KDC of the default realm who user@DOMAIN is, as an
// enterprise name (canonicalPrincipal), and returns its answer. When the
// KDC cannot say, the default realm's guess stands.
func enterpriseRealm(ctx context.Context, name, user, realm, password string, cfg *config.Config, cached cachedTGT) (string, string) {
	domain, _, ok := strings.Cut(name, `\`)
	if !ok || strings.Contains(name, "@") {
		return user, realm
	}
	if _, sure := realmOfDomain(domain, user, cfg, cached); sure || realm == "" {
		return user, realm
	}
	cu, cr, err := canonicalPrincipal(ctx, cfg, realm, user+"@"+domain, password)
	if err != nil || cu == "" || cr == "" {
		return user, realm
	}
	return cu, cr
}

// knownRealm reports whether krb5.conf names realm.
func knownRealm(cfg *config.Config, realm string) bool {
	if cfg.LibDefaults.DefaultRealm == realm {
		return true
	}
	for _, r := range cfg.Realms {
		if r.Realm == realm {
			return true
		}
	}
	return false
}

// cachedTGT is who the credential cache kinit left is logged in as, and
// whether its ticket-granting ticket is still valid.
type cachedTGT struct {
	user, realm string
	valid       bool
}

// cachedLogin reads who the credential cache at loc is for; the zero
// cachedTGT when there is none that can be read.
func cachedLogin(loc ccacheLocation) cachedTGT {
	if loc.err != nil || loc.path == "" {
		return cachedTGT{}
	}
	cc, err := credentials.LoadCCache(loc.path)
	if err != nil {
		return cachedTGT{}
	}
	c := cachedTGT{user: cc.DefaultPrincipal.PrincipalName.PrincipalNameString(), realm: cc.DefaultPrincipal.Realm}
	tgt, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", c.realm}})
	c.valid = ok && time.Now().Before(tgt.EndTime)
	return c
}

// Begin finds the Kerberos credentials for a's protection space, makes
// sure a ticket-granting ticket is at hand (logging in or reading the
// credential cache), and returns the space's Session. Without
// credentials it returns an error wrapping anyauth.ErrNoCredentials.
func (k *Kerberos) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	src, err := k.source(ctx, a)
	if err != nil {
		return nil, err
	}
	if _, err := src.TGT(ctx); err != nil {
		return nil, err
	}
	spn, err := k.spn(ctx, src, a.Space.Host)
	if err != nil {
		return nil, err
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mutual := k.Mutual
	if a.Space.Proxy && mutual == MutualRequired {
		mutual = MutualIfPresent // Squid sends no token: see Kerberos.Mutual
	}
	return &session{
		src:             src,
		spn:             spn,
		answerHeader:    a.Space.AnswerHeader(),
		challengeHeader: a.Space.ChallengeHeader(),
		mutual:          mutual,
		log:             log,
	}, nil
}

// spn returns the service principal for host.
func (k *Kerberos) spn(ctx context.Context, src *source, host string) (string, error) {
	if k.SPN != "" {
		return k.SPN, nil
	}
	if host == "" {
		return "", errors.New("negotiate: the request has no host to name the service principal after")
	}
	canon := false
	switch k.Canonicalize {
	case CanonicalizeFromConfig:
		canon = src.cfg.LibDefaults.DNSCanonicalizeHostname
	case CanonicalizeCNAME:
		canon = true
	}
	if canon {
		host = k.cnames.lookup(ctx, k.Resolver, host)
	}
	return hostSPN(host), nil
}

// String describes k without its password.
func (k *Kerberos) String() string {
	var b strings.Builder
	b.WriteString("negotiate.Kerberos{")
	if k.Config != "" {
		fmt.Fprintf(&b, "Config:%q ", k.Config)
	}
	if k.CCache != "" {
		fmt.Fprintf(&b, "CCache:%q ", k.CCache)
	}
	if k.Keytab != "" {
		fmt.Fprintf(&b, "Keytab:%q ", k.Keytab)
	}
	if k.Principal != "" {
		fmt.Fprintf(&b, "Principal:%q ", k.Principal)
	}
	if k.Password != "" {
		b.WriteString("Password:REDACTED ")
	}
	if k.SPN != "" {
		fmt.Fprintf(&b, "SPN:%q ", k.SPN)
	}
	fmt.Fprintf(&b, "Mutual:%s Preemptive:%v}", k.Mutual, []string(k.Preemptive))
	return b.String()
}

// Format prints String whatever the verb, so the password never shows.
func (k *Kerberos) Format(f fmt.State, _ rune) { fmt.Fprint(f, k.String()) }
