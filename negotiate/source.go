package negotiate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/keytab"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// A source is one place Kerberos credentials come from (a keytab, a
// password, a credential cache), with the tickets obtained from it. A
// Kerberos scheme keeps one source per place and shares it between all
// protection spaces and requests: one ticket-granting ticket, and one
// service ticket per service principal, fetched once (single-flight) and
// renewed or fetched again shortly before they expire.
//
// gokrb5's Client.Login starts a renewal goroutine per login and its
// GetServiceTicket cannot be told to drop a ticket the server refused, so
// a source uses only gokrb5's message exchanges (ASExchange,
// TGSREQGenerateAndExchange) and keeps the tickets itself: no goroutine
// outlives a KDC exchange.
type source struct {
	kind  string // "keytab", "password", "ccache"
	desc  string // for messages: never a secret
	cfg   *config.Config
	realm string
	cname types.PrincipalName
	cl    *client.Client
	as    sync.Mutex // gokrb5's ASExchange mutates its client's settings

	ccPath string // ccache file, for kind "ccache"

	mu      sync.Mutex
	tgt     *ticket
	ccStamp fileStamp // the ccache file tgt was read from
	tgtCall *call
	tickets map[string]*ticket // by service principal
	calls   map[string]*call
	skews   map[string]time.Duration // by service principal: the server's clock minus ours, from KRB_AP_ERR_SKEW

	refused   error     // the KDC refused the last login (ErrLogin)
	refusedAt time.Time // when
}

// refusalTTL is how long a refused login is remembered: a wrong password
// is not tried again at the KDC on every request (and locked out).
const refusalTTL = 30 * time.Second

// A ticket is a Kerberos ticket and its session key. It is never printed.
type ticket struct {
	tkt        messages.Ticket
	key        types.EncryptionKey
	start, end time.Time
	renewTill  time.Time
}

// String hides the ticket and its key.
func (t *ticket) String() string { return "ticket(REDACTED)" }

// Format prints String whatever the verb.
func (t *ticket) Format(f fmt.State, _ rune) { fmt.Fprint(f, t.String()) }

// refreshMargin is how long before its end a ticket is replaced: two
// minutes, or a quarter of its lifetime if that is shorter.
func refreshMargin(t *ticket) time.Duration {
	m := 2 * time.Minute
	if life := t.end.Sub(t.start); life > 0 && life/4 < m {
		m = life / 4
	}
	return m
}

// fresh reports whether t is valid and not about to expire.
func (t *ticket) fresh(now time.Time) bool {
	return t != nil && now.Before(t.end.Add(-refreshMargin(t)))
}

// valid reports whether t has not expired yet.
func (t *ticket) valid(now time.Time) bool { return t != nil && now.Before(t.end) }

// A call is one KDC exchange in flight, awaited by every request that
// needs its result.
type call struct {
	done chan struct{}
	t    *ticket
	err  error
}

// await waits for c or for ctx, whichever ends first. The exchange goes
// on when ctx ends: other requests may be waiting for it too.
func (c *call) await(ctx context.Context) (*ticket, error) {
	select {
	case <-c.done:
		return c.t, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// newPasswordSource makes a source that logs in with a password.
func newPasswordSource(cfg *config.Config, user, realm, password string) *source {
	cl := client.NewWithPassword(user, realm, password, cfg)
	return &source{kind: "password", desc: "password of " + user + "@" + realm, cfg: cfg, realm: realm,
		cname: types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, user), cl: cl}
}

// newKeytabSource makes a source that logs in with a keytab. With user
// "", the keytab's first principal is used.
func newKeytabSource(cfg *config.Config, path, user, realm string) (*source, error) {
	kt, err := keytab.Load(path)
	if err != nil {
		return nil, fmt.Errorf("negotiate: keytab %s: %w", path, err)
	}
	if user == "" {
		if len(kt.Entries) == 0 {
			return nil, fmt.Errorf("negotiate: keytab %s is empty", path)
		}
		p := kt.Entries[0].Principal
		user = types.PrincipalName{NameType: p.NameType, NameString: p.Components}.PrincipalNameString()
		if realm == "" {
			realm = p.Realm
		}
	}
	if realm == "" {
		realm = cfg.LibDefaults.DefaultRealm
	}
	cl := client.NewWithKeytab(user, realm, kt, cfg)
	return &source{kind: "keytab", desc: "keytab " + path + " for " + user + "@" + realm, cfg: cfg, realm: realm,
		cname: types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, user), cl: cl}, nil
}

// newCCacheSource makes a source that reads its ticket-granting ticket
// from a credential cache file, which it reads again when kinit has
// replaced it.
func newCCacheSource(cfg *config.Config, loc ccacheLocation) *source {
	return &source{kind: "ccache", desc: "credential cache " + loc.String(), cfg: cfg, ccPath: loc.path}
}

// readCCache loads the ccache's ticket-granting ticket for its client's
// realm.
func (s *source) readCCache() (*ticket, fileStamp, error) {
	stamp, err := stampOf(s.ccPath)
	if err != nil {
		return nil, stamp, stepAside(fmt.Errorf("%w: no %s; run kinit", ErrNoTicket, s.desc))
	}
	cc, err := credentials.LoadCCache(s.ccPath)
	if err != nil {
		return nil, stamp, stepAside(fmt.Errorf("%w: %s cannot be read: %w", ErrNoTicket, s.desc, err))
	}
	realm := cc.DefaultPrincipal.Realm
	cred, ok := cc.GetEntry(types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", realm}})
	if !ok {
		return nil, stamp, stepAside(fmt.Errorf("%w: %s holds no ticket-granting ticket for %s; run kinit", ErrNoTicket, s.desc, realm))
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(cred.Ticket); err != nil {
		return nil, stamp, stepAside(fmt.Errorf("%w: %s holds a malformed ticket-granting ticket: %w", ErrNoTicket, s.desc, err))
	}
	t := &ticket{tkt: tkt, key: cred.Key, start: cred.StartTime, end: cred.EndTime, renewTill: cred.RenewTill}
	if t.start.IsZero() {
		t.start = cred.AuthTime
	}
	user := cc.DefaultPrincipal.PrincipalName.PrincipalNameString()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cl == nil || s.realm != realm || !s.cname.Equal(cc.DefaultPrincipal.PrincipalName) {
		// The client only sends TGS-REQs: it needs the client's name and
		// the configuration, no key.
		s.cl = client.NewWithPassword(user, realm, "", s.cfg)
		s.realm, s.cname = realm, cc.DefaultPrincipal.PrincipalName
		s.tickets = nil // another principal: its service tickets are not ours
	}
	return t, stamp, nil
}

// principal names the source's client principal, once known.
func (s *source) principal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.cname.NameString) == 0 {
		return ""
	}
	return s.cname.PrincipalNameString() + "@" + s.realm
}

// TGT returns a fresh ticket-granting ticket, getting or renewing one when
// needed.
func (s *source) TGT(ctx context.Context) (*ticket, error) {
	s.mu.Lock()
	if s.kind == "ccache" {
		// kinit (or kdestroy) may have replaced the cache since it was
		// read: read it again.
		stamp, err := stampOf(s.ccPath)
		if err != nil || stamp != s.ccStamp {
			s.tgt = nil
		}
	}
	now := time.Now()
	if s.tgt.fresh(now) {
		t := s.tgt
		s.mu.Unlock()
		return t, nil
	}
	if s.refused != nil && now.Sub(s.refusedAt) < refusalTTL {
		err := s.refused
		s.mu.Unlock()
		return nil, err
	}
	c := s.tgtCall
	if c == nil {
		c = &call{done: make(chan struct{})}
		s.tgtCall = c
		old := s.tgt
		go func() {
			t, stamp, err := s.fetchTGT(old)
			s.mu.Lock()
			if err == nil {
				s.tgt, s.ccStamp, s.refused = t, stamp, nil
			}
			if errors.Is(err, ErrLogin) {
				s.refused, s.refusedAt = err, time.Now()
			}
			s.tgtCall = nil
			s.mu.Unlock()
			c.t, c.err = t, err
			close(c.done)
		}()
	}
	s.mu.Unlock()
	return c.await(ctx)
}

// fetchTGT gets a new ticket-granting ticket: it renews old when it is
// renewable, logs in again with a password or keytab, or reads the
// credential cache again.
func (s *source) fetchTGT(old *ticket) (*ticket, fileStamp, error) {
	now := time.Now()
	if old.valid(now) && old.renewTill.After(now.Add(refreshMargin(old))) {
		if t, err := s.renewTGT(old); err == nil {
			return t, s.ccStamp, nil
		}
	}
	switch s.kind {
	case "ccache":
		t, stamp, err := s.readCCache()
		if err != nil {
			return nil, stamp, err
		}
		if t.fresh(now) {
			return t, stamp, nil
		}
		if t.valid(now) && t.renewTill.After(now.Add(refreshMargin(t))) {
			if r, err := s.renewTGT(t); err == nil {
				return r, stamp, nil
			}
		}
		if t.valid(now) {
			return t, stamp, nil // about to expire, but still good
		}
		return nil, stamp, stepAside(fmt.Errorf("%w: the ticket of %s in %s expired at %s; run kinit", ErrTicketExpired,
			s.principal(), s.desc, t.end.Local().Format(time.RFC3339)))
	default:
		t, err := s.login()
		return t, fileStamp{}, err
	}
}

// login performs an AS exchange with the source's password or keytab.
func (s *source) login() (*ticket, error) {
	s.as.Lock()
	defer s.as.Unlock()
	req, err := messages.NewASReqForTGT(s.realm, s.cfg, s.cname)
	if err != nil {
		return nil, fmt.Errorf("negotiate: AS-REQ for %s: %w", s.principal(), err)
	}
	rep, err := s.cl.ASExchange(s.realm, req, 0)
	if err != nil {
		return nil, s.kdcError("login of "+s.principal()+" with its "+s.kind, err)
	}
	d := rep.DecryptedEncPart
	t := &ticket{tkt: rep.Ticket, key: d.Key, start: d.StartTime, end: d.EndTime, renewTill: d.RenewTill}
	if t.start.IsZero() {
		t.start = d.AuthTime
	}
	return t, nil
}

// renewTGT renews a renewable ticket-granting ticket.
func (s *source) renewTGT(old *ticket) (*ticket, error) {
	spn := types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", s.realm}}
	_, rep, err := s.cl.TGSREQGenerateAndExchange(spn, s.realm, old.tkt, old.key, true)
	if err != nil {
		return nil, s.kdcError("renewal of the ticket of "+s.principal(), err)
	}
	d := rep.DecryptedEncPart
	t := &ticket{tkt: rep.Ticket, key: d.Key, start: d.StartTime, end: d.EndTime, renewTill: d.RenewTill}
	if t.start.IsZero() {
		t.start = d.AuthTime
	}
	return t, nil
}

// kdcError turns a gokrb5 error into one of the package's errors.
func (s *source) kdcError(what string, err error) error {
	// A KDC that cannot be reached, or that refuses the login or the
	// service ticket, leaves Kerberos nothing to answer with: it steps
	// aside, so that another scheme answers, or the server's 401 comes
	// back untouched with the reason in anyauth.Diagnosis.
	switch name := kdcErrorName(err); {
	case isNetworkError(err):
		return stepAside(fmt.Errorf("%w: %s: no KDC of realm %s answered: %w", ErrKDCUnreachable, what, s.realm, err))
	case name == "KDC_ERR_PREAUTH_FAILED" || (name == "" && s.kind != "ccache" && (strings.Contains(err.Error(), "password/keytab incorrect") || strings.Contains(err.Error(), "Decrypting_Error"))):
		return stepAside(fmt.Errorf("%w: %s: wrong %s: %w", ErrLogin, what, s.kind, err))
	case name == "KDC_ERR_C_PRINCIPAL_UNKNOWN":
		return stepAside(fmt.Errorf("%w: %s: the KDC does not know %s: %w", ErrLogin, what, s.principal(), err))
	case name == "KDC_ERR_S_PRINCIPAL_UNKNOWN":
		return stepAside(fmt.Errorf("%w: %s: the KDC does not know the service principal: %w", ErrServiceTicket, what, err))
	case name == "KRB_AP_ERR_TKT_EXPIRED":
		return stepAside(fmt.Errorf("%w: %s: %w", ErrTicketExpired, what, err))
	case s.kind == "ccache" || name == "":
		return fmt.Errorf("negotiate: %s failed: %w", what, err)
	default:
		return stepAside(fmt.Errorf("%w: %s: %s: %w", ErrLogin, what, name, err))
	}
}

// Ticket returns a fresh service ticket for spn ("HTTP/host"), from the
// cache or from the KDC. At most one TGS-REQ per spn is in flight. A
// credential cache that kinit or kdestroy changed is read again first.
func (s *source) Ticket(ctx context.Context, spn string) (*ticket, error) {
	s.mu.Lock()
	if s.kind == "ccache" {
		// kinit or kdestroy changed the cache since its tickets were
		// read: what it holds now is what counts, also for the service
		// tickets of preemptive answers.
		if stamp, err := stampOf(s.ccPath); err != nil || stamp != s.ccStamp {
			s.tgt, s.tickets = nil, nil
		}
	}
	if t := s.tickets[spn]; t.fresh(time.Now()) {
		s.mu.Unlock()
		return t, nil
	}
	c := s.calls[spn]
	if c == nil {
		c = &call{done: make(chan struct{})}
		if s.calls == nil {
			s.calls = make(map[string]*call)
		}
		s.calls[spn] = c
		go func() {
			t, err := s.fetchTicket(spn)
			s.mu.Lock()
			if err == nil {
				if s.tickets == nil {
					s.tickets = make(map[string]*ticket)
				}
				s.tickets[spn] = t
			}
			delete(s.calls, spn)
			s.mu.Unlock()
			c.t, c.err = t, err
			close(c.done)
		}()
	}
	s.mu.Unlock()
	return c.await(ctx)
}

// fetchTicket asks the KDC for a service ticket for spn.
func (s *source) fetchTicket(spn string) (*ticket, error) {
	tgt, err := s.TGT(context.Background())
	if err != nil {
		return nil, err
	}
	princ := types.NewPrincipalName(nametype.KRB_NT_SRV_HST, spn)
	s.mu.Lock()
	home, cl := s.realm, s.cl
	s.mu.Unlock()
	realm, tkt, key := home, tgt.tkt, tgt.key
	if r := s.cfg.ResolveRealm(princ.NameString[len(princ.NameString)-1]); r != "" && r != home {
		// Another realm (domain_realm says so): a cross-realm TGT from
		// the home KDC first, as MIT clients do. Not exercised by the
		// tests, which have one realm.
		cross := types.PrincipalName{NameType: nametype.KRB_NT_SRV_INST, NameString: []string{"krbtgt", r}}
		_, crep, err := cl.TGSREQGenerateAndExchange(cross, home, tgt.tkt, tgt.key, false)
		if err != nil {
			return nil, s.kdcError("cross-realm ticket for "+r, err)
		}
		realm, tkt, key = r, crep.Ticket, crep.DecryptedEncPart.Key
	}
	_, rep, err := cl.TGSREQGenerateAndExchange(princ, realm, tkt, key, false)
	if err != nil {
		e := s.kdcError("service ticket for "+spn, err)
		if errors.Is(e, ErrTicketExpired) {
			// The KDC says the ticket-granting ticket expired (our clock
			// may be behind): forget it.
			s.mu.Lock()
			if s.tgt == tgt {
				s.tgt = nil
			}
			s.mu.Unlock()
		}
		return nil, e
	}
	d := rep.DecryptedEncPart
	t := &ticket{tkt: rep.Ticket, key: d.Key, start: d.StartTime, end: d.EndTime, renewTill: d.RenewTill}
	if t.start.IsZero() {
		t.start = d.AuthTime
	}
	return t, nil
}

// drop forgets the service ticket t for spn, which a server refused.
func (s *source) drop(spn string, t *ticket) {
	s.mu.Lock()
	if s.tickets[spn] == t {
		delete(s.tickets, spn)
	}
	s.mu.Unlock()
}

// maxSkew bounds the clock offset a server's KRB_AP_ERR_SKEW may set.
const maxSkew = 24 * time.Hour

// clockSkew returns the clock offset to apply to authenticators for spn.
func (s *source) clockSkew(spn string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.skews[spn]
}

// setClockSkew records the clock offset of spn's server, from a
// KRB_AP_ERR_SKEW. It reports false for an offset beyond maxSkew.
func (s *source) setClockSkew(spn string, d time.Duration) bool {
	if d > maxSkew || d < -maxSkew {
		return false
	}
	s.mu.Lock()
	if s.skews == nil || len(s.skews) > 1024 {
		s.skews = make(map[string]time.Duration)
	}
	s.skews[spn] = d
	s.mu.Unlock()
	return true
}

// clientName returns the client's realm and name for authenticators.
func (s *source) clientName() (string, types.PrincipalName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.realm, s.cname
}

// String describes the source without secrets.
func (s *source) String() string { return "negotiate source: " + s.desc }
