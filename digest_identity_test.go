package anyauth_test

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// Regression tests for the identity of a Digest answer: which challenge
// (algorithm, qop, opaque, userhash, nonce) a request answers, and the
// nonce count it sends. The servers here verify every answer for real
// (RFC 7616: MD5, SHA-256 and SHA-512-256, qop auth and auth-int,
// userhash), each with its own rule on nonces and nonce counts.

// diTimeout bounds every request of these tests, so a hang fails.
const diTimeout = 20 * time.Second

// diNewHash returns the hash function of a Digest algorithm name ("" is
// MD5), nil for one these servers do not know.
func diNewHash(alg string) func() hash.Hash {
	switch strings.ToUpper(alg) {
	case "", "MD5":
		return md5.New
	case "SHA-256":
		return sha256.New
	case "SHA-512-256":
		return sha512.New512_256
	}
	return nil
}

// diH is H(s) in lower-case hex under the algorithm alg.
func diH(alg, s string) string {
	h := diNewHash(alg)()
	io.WriteString(h, s)
	return hex.EncodeToString(h.Sum(nil))
}

// diChallenge is what a server asks of one protected directory.
type diChallenge struct {
	realm     string
	alg       string // as sent; "" sends none (MD5)
	qop       string // "auth", "auth-int", "auth,auth-int", or "" for none
	opaque    string
	hasOpaque bool // opaque is sent, and answers must echo it
	userhash  bool // userhash=true: answers must carry H(user:realm)
}

// header is the WWW-Authenticate value of c with nonce.
func (c diChallenge) header(nonce string, stale bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, `Digest realm=%q, nonce=%q`, c.realm, nonce)
	if c.qop != "" {
		fmt.Fprintf(&b, `, qop=%q`, c.qop)
	}
	if c.alg != "" {
		b.WriteString(", algorithm=" + c.alg)
	}
	if c.hasOpaque {
		fmt.Fprintf(&b, `, opaque=%q`, c.opaque)
	}
	if c.userhash {
		b.WriteString(", userhash=true")
	}
	if stale {
		b.WriteString(", stale=true")
	}
	return b.String()
}

// offers reports whether c's qop list holds qop.
func (c diChallenge) offers(qop string) bool {
	for _, q := range strings.Split(c.qop, ",") {
		if strings.TrimSpace(q) == qop {
			return true
		}
	}
	return false
}

// diAnswer is an answer whose response diVerify found right; the server
// still checks its nonce and nc against its own state.
type diAnswer struct {
	nonce, opaque, qop, uri, nc, cnonce string
	ncN                                 uint64 // nc as a number, 0 without qop
	ha1                                 string
}

// rspauth is the rspauth of a qop=auth answer (RFC 7616 §3.5).
func (a *diAnswer) rspauth(alg string) string {
	return diH(alg, a.ha1+":"+a.nonce+":"+a.nc+":"+a.cnonce+":"+a.qop+":"+diH(alg, ":"+a.uri))
}

// diVerify checks the Digest answer in r's Authorization header against
// challenge c, for user with password pass, as an RFC 7616 server does:
// realm, algorithm, user name (hashed exactly when c asks for userhash),
// opaque, the request-target, a qop that c offers, and the response
// (HA2 covers H(body) for auth-int). It does not judge the nonce or nc.
func diVerify(r *http.Request, body []byte, c diChallenge, user, pass string) (*diAnswer, error) {
	cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
	if len(cs) != 1 || !cs[0].Is("Digest") {
		return nil, errors.New("no Digest answer")
	}
	p := &cs[0]
	if got := p.Param("realm"); got != c.realm {
		return nil, fmt.Errorf("realm %q", got)
	}
	alg := p.Param("algorithm")
	if !strings.EqualFold(alg, c.alg) && !(c.alg == "" && strings.EqualFold(alg, "MD5")) {
		return nil, fmt.Errorf("algorithm %q, want %q", alg, c.alg)
	}
	hashed := strings.EqualFold(p.Param("userhash"), "true")
	wantUser := user
	switch {
	case c.userhash && !hashed:
		return nil, fmt.Errorf("plain user name %q where userhash=true was asked", p.Param("username"))
	case !c.userhash && hashed:
		return nil, errors.New("hashed user name where none was asked")
	case hashed:
		wantUser = diH(c.alg, user+":"+c.realm)
	}
	if got := p.Param("username"); got != wantUser {
		return nil, fmt.Errorf("username %q", got)
	}
	opaque, hasOpaque := p.Lookup("opaque")
	if c.hasOpaque && (!hasOpaque || opaque != c.opaque) {
		return nil, fmt.Errorf("opaque %q, want %q", opaque, c.opaque)
	}
	a := &diAnswer{nonce: p.Param("nonce"), opaque: opaque, qop: p.Param("qop"), uri: p.Param("uri"),
		nc: p.Param("nc"), cnonce: p.Param("cnonce")}
	if a.nonce == "" {
		return nil, errors.New("no nonce")
	}
	if a.uri != r.URL.RequestURI() {
		return nil, fmt.Errorf("uri %q for %q", a.uri, r.URL.RequestURI())
	}
	ha2 := diH(c.alg, r.Method+":"+a.uri)
	switch {
	case a.qop == "" && c.qop == "":
	case a.qop == "auth" && c.offers("auth"):
	case a.qop == "auth-int" && c.offers("auth-int"):
		ha2 = diH(c.alg, r.Method+":"+a.uri+":"+diH(c.alg, string(body)))
	default:
		return nil, fmt.Errorf("qop %q where %q is offered", a.qop, c.qop)
	}
	a.ha1 = diH(c.alg, user+":"+c.realm+":"+pass)
	want := diH(c.alg, a.ha1+":"+a.nonce+":"+ha2)
	if a.qop != "" {
		n, err := strconv.ParseUint(a.nc, 16, 32)
		if err != nil || len(a.nc) != 8 || n == 0 {
			return nil, fmt.Errorf("nc %q", a.nc)
		}
		if a.cnonce == "" {
			return nil, errors.New("no cnonce")
		}
		a.ncN = n
		want = diH(c.alg, a.ha1+":"+a.nonce+":"+a.nc+":"+a.cnonce+":"+a.qop+":"+ha2)
	}
	if got := strings.ToLower(p.Param("response")); got != want {
		return nil, errors.New("wrong response")
	}
	return a, nil
}

// diRefusals keeps the first reasons a server gave for refusing answers,
// for the test log.
type diRefusals struct {
	mu   sync.Mutex
	n    int
	list []string
}

func (r *diRefusals) add(why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.n++
	if len(r.list) < 12 {
		r.list = append(r.list, why)
	}
}

func (r *diRefusals) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d refused, first: %q", r.n, r.list)
}

// diGet sends a GET through rt with diTimeout and returns the status, or
// -1 and the error.
func diGet(rt http.RoundTripper, rawURL string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), diTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return -1, err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return -1, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// diTransport is a Transport with Digest only and the test credentials
// for origin.
func diTransport(origin string) *anyauth.Transport {
	return &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(origin, testUser, testPass)}
}

// diDirServer serves one realm over several directories, each with a
// challenge of its own. It accepts an answer only when it matches the
// challenge of the directory asked for, its nonce is one it issued (by
// that very directory when bindNonce is set), and its nc was not used
// before with that nonce. Every 401 carries a fresh nonce.
type diDirServer struct {
	*httptest.Server
	dirs      map[string]diChallenge
	bindNonce bool
	trips     atomic.Int32
	refused   diRefusals

	mu     sync.Mutex
	seq    int
	issued map[string]string          // nonce → the directory that issued it
	used   map[string]map[uint64]bool // nonce → the nc values used with it
}

func newDiDirServer(t *testing.T, dirs map[string]diChallenge, bindNonce bool) *diDirServer {
	s := &diDirServer{dirs: dirs, bindNonce: bindNonce, issued: map[string]string{}, used: map[string]map[uint64]bool{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *diDirServer) serve(w http.ResponseWriter, r *http.Request) {
	s.trips.Add(1)
	body, _ := io.ReadAll(r.Body)
	dir := ""
	for d := range s.dirs {
		if strings.HasPrefix(r.URL.Path, d) {
			dir = d
		}
	}
	if dir == "" {
		http.NotFound(w, r)
		return
	}
	c := s.dirs[dir]
	if r.Header.Get("Authorization") != "" {
		why := s.check(r, body, dir, c)
		if why == "" {
			fmt.Fprint(w, "ok "+dir)
			return
		}
		s.refused.add(dir + ": " + why)
	}
	w.Header().Set("WWW-Authenticate", c.header(s.newNonce(dir), false))
	w.WriteHeader(http.StatusUnauthorized)
}

// check returns why the answer of r is refused, "" when it is accepted.
func (s *diDirServer) check(r *http.Request, body []byte, dir string, c diChallenge) string {
	a, err := diVerify(r, body, c, testUser, testPass)
	if err != nil {
		return err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	by, ok := s.issued[a.nonce]
	switch {
	case !ok:
		return "unknown nonce " + a.nonce
	case s.bindNonce && by != dir:
		return "nonce " + a.nonce + " of " + by
	case s.used[a.nonce][a.ncN]:
		return fmt.Sprintf("nc %s used before with nonce %s", a.nc, a.nonce)
	}
	if s.used[a.nonce] == nil {
		s.used[a.nonce] = map[uint64]bool{}
	}
	s.used[a.nonce][a.ncN] = true
	return ""
}

func (s *diDirServer) newNonce(dir string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	tag := "any"
	if s.bindNonce {
		tag = strings.Trim(dir, "/")
	}
	n := fmt.Sprintf("%s-%d", tag, s.seq)
	s.issued[n] = dir
	return n
}

// The happy path: one directory, 10 requests, one 401 in all.
func TestDigestOneDirectoryHappyPath(t *testing.T) {
	srv := newDiDirServer(t, map[string]diChallenge{"/a/": {realm: "shared", alg: "SHA-512-256", qop: "auth"}}, false)
	tr := diTransport(srv.URL)
	for i := range 10 {
		if code, err := diGet(tr, srv.URL+"/a/x"); code != 200 {
			t.Fatalf("request %d: %d %v (%s)", i, code, err, &srv.refused)
		}
	}
	if got := srv.trips.Load(); got != 11 {
		t.Fatalf("%d round trips for 10 requests, want 11 (%s)", got, &srv.refused)
	}
}

// Two directories of one realm whose challenges differ in one thing each
// keep answering their own challenge: the answer learnt on /b/ is not
// sent to /a/, nor /a/'s to /b/. Sequentially that costs one 401 per
// directory; concurrently every request still ends in 200.
func TestDigestDirectoriesOfOneRealmKeepTheirOwnChallenge(t *testing.T) {
	base := diChallenge{realm: "shared", alg: "MD5", qop: "auth"}
	variant := func(f func(a, b *diChallenge)) map[string]diChallenge {
		a, b := base, base
		f(&a, &b)
		return map[string]diChallenge{"/a/": a, "/b/": b}
	}
	cases := []struct {
		name      string
		dirs      map[string]diChallenge
		bindNonce bool
	}{
		{"algorithm", variant(func(_, b *diChallenge) { b.alg = "SHA-256" }), false},
		{"qop", variant(func(_, b *diChallenge) { b.qop = "auth-int" }), false},
		{"opaque", variant(func(a, b *diChallenge) {
			a.opaque, a.hasOpaque = "opaque-of-a", true
			b.opaque, b.hasOpaque = "opaque-of-b", true
		}), false},
		{"userhash", variant(func(_, b *diChallenge) { b.userhash = true }), false},
		{"nonce", variant(func(*diChallenge, *diChallenge) {}), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("sequential", func(t *testing.T) {
				srv := newDiDirServer(t, tc.dirs, tc.bindNonce)
				tr := diTransport(srv.URL)
				codes := make([]int, 20)
				bad := 0
				for i := range codes {
					dir := []string{"/a/", "/b/"}[i%2]
					code, err := diGet(tr, srv.URL+dir+"x")
					codes[i] = code
					if code != 200 {
						bad++
						if err != nil {
							t.Logf("request %d (%s): %v", i, dir, err)
						}
					}
				}
				trips := srv.trips.Load()
				t.Logf("statuses %v; %d round trips; %s", codes, trips, &srv.refused)
				if bad != 0 {
					t.Errorf("%d of 20 requests alternating /a/x and /b/x did not end in 200: %v", bad, codes)
				}
				if trips > 22 {
					t.Errorf("%d round trips for 20 requests over 2 directories, want at most 22", trips)
				}
			})
			t.Run("concurrent", func(t *testing.T) {
				srv := newDiDirServer(t, tc.dirs, tc.bindNonce)
				tr := diTransport(srv.URL)
				const workers, each = 8, 10
				var wg sync.WaitGroup
				var ok, failed atomic.Int32
				var mu sync.Mutex
				statuses := map[int]int{}
				var firstErr error
				start := make(chan struct{})
				for g := range workers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						for i := range each {
							dir := []string{"/a/", "/b/"}[(g+i)%2]
							code, err := diGet(tr, srv.URL+dir+"x")
							mu.Lock()
							statuses[code]++
							if err != nil && firstErr == nil {
								firstErr = err
							}
							mu.Unlock()
							if code == 200 {
								ok.Add(1)
							} else {
								failed.Add(1)
							}
						}
					}()
				}
				close(start)
				wg.Wait()
				t.Logf("statuses %v; %d round trips for %d requests; %s", statuses, srv.trips.Load(), workers*each, &srv.refused)
				if failed.Load() != 0 {
					t.Errorf("%d of %d concurrent requests did not end in 200 (statuses %v, first error %v)", failed.Load(), workers*each, statuses, firstErr)
				}
			})
		})
	}
}

// A server that hands every client the same nonce and accepts only an nc
// above the highest it accepted for it (the strict reading of "nc must
// rise") still sees every request of 16 concurrent goroutines accepted,
// at the cost of at most one 401 per goroutine: the Transport does not
// let nonce counts of one nonce overtake each other on the way.
func TestDigestStaticNonceStrictRisingNC(t *testing.T) {
	const nonce = "static-nonce"
	c := diChallenge{realm: "r", qop: "auth"}
	var trips, accepted atomic.Int32
	var refused diRefusals
	var mu sync.Mutex
	var highest uint64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trips.Add(1)
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "" {
			a, err := diVerify(r, body, c, testUser, testPass)
			var why string
			switch {
			case err != nil:
				why = err.Error()
			case a.nonce != nonce:
				why = "nonce " + a.nonce
			default:
				mu.Lock()
				if a.ncN > highest {
					highest = a.ncN
					mu.Unlock()
					accepted.Add(1)
					fmt.Fprint(w, "ok")
					return
				}
				why = fmt.Sprintf("nc %d not above %d", a.ncN, highest)
				mu.Unlock()
			}
			refused.add(why)
		}
		w.Header().Set("WWW-Authenticate", c.header(nonce, false))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	tr := diTransport(srv.URL)
	const workers, each = 16, 10
	var wg sync.WaitGroup
	var mu2 sync.Mutex
	statuses := map[int]int{}
	var firstErr error
	start := make(chan struct{})
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range each {
				code, err := diGet(tr, fmt.Sprintf("%s/doc/%d/%d", srv.URL, g, i))
				mu2.Lock()
				statuses[code]++
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu2.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("statuses %v; %d round trips; %d accepted; %s", statuses, trips.Load(), accepted.Load(), &refused)
	if statuses[200] != workers*each {
		t.Errorf("%d of %d requests ended in 200 (statuses %v, first error %v)", statuses[200], workers*each, statuses, firstErr)
	}
	if got := trips.Load(); got > workers*each+workers {
		t.Errorf("%d round trips for %d requests, want at most %d", got, workers*each, workers*each+workers)
	}
}

// webrickDigest imitates Ruby WEBrick's HTTPAuth::DigestAuth with
// UseOpaque, UseNextNonce and CheckNc: one client record per opaque, whose
// nc must start at 00000001 and rise by exactly one; a record that is
// unknown, or an nc that is not the expected one, gets a 401 with
// stale=true and a new opaque (a new record). Its nonces are WEBrick's
// per-second ones, so within the test every challenge and nextnonce
// carries the same nonce value. Every third accepted request expires the
// record used, so the next answer gets that stale 401.
type webrickDigest struct {
	*httptest.Server
	c        diChallenge
	nonce    string
	trips    atomic.Int32
	refused  diRefusals
	mu       sync.Mutex
	records  map[string]uint64 // opaque → the nc expected next
	seq      int
	accepted int
	expire   bool
}

func newWebrickDigest(t *testing.T) *webrickDigest {
	s := &webrickDigest{c: diChallenge{realm: "webrick", alg: "MD5", qop: "auth"}, nonce: "MTc1MjAwMDAwMDpmYWtlcGs=", records: map[string]uint64{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// challenge writes a 401 with a new client record.
func (s *webrickDigest) challenge(w http.ResponseWriter, stale bool) {
	s.mu.Lock()
	s.seq++
	opaque := fmt.Sprintf("opaque-%d", s.seq)
	s.records[opaque] = 1
	s.mu.Unlock()
	c := s.c
	c.opaque, c.hasOpaque = opaque, true
	w.Header().Set("WWW-Authenticate", c.header(s.nonce, stale))
	w.WriteHeader(http.StatusUnauthorized)
}

func (s *webrickDigest) serve(w http.ResponseWriter, r *http.Request) {
	s.trips.Add(1)
	body, _ := io.ReadAll(r.Body)
	if r.Header.Get("Authorization") == "" {
		s.challenge(w, false)
		return
	}
	a, err := diVerify(r, body, s.c, testUser, testPass)
	if err == nil && a.nonce != s.nonce {
		err = errors.New("nonce " + a.nonce)
	}
	if err != nil {
		s.refused.add(err.Error())
		s.challenge(w, false)
		return
	}
	s.mu.Lock()
	want, known := s.records[a.opaque]
	why := ""
	switch {
	case !known:
		why = "unknown opaque " + a.opaque
	case s.expire:
		s.expire = false
		delete(s.records, a.opaque)
		why = "record " + a.opaque + " expired"
	case a.ncN != want:
		why = fmt.Sprintf("nc %d for %s, want %d", a.ncN, a.opaque, want)
	default:
		s.records[a.opaque] = want + 1
		s.accepted++
		s.expire = s.accepted%3 == 0
	}
	s.mu.Unlock()
	if why != "" {
		s.refused.add(why)
		s.challenge(w, true)
		return
	}
	w.Header().Set("Authentication-Info", fmt.Sprintf(`nextnonce=%q, qop=auth, rspauth=%q, cnonce=%q, nc=%s`,
		s.nonce, a.rspauth(s.c.alg), a.cnonce, a.nc))
	fmt.Fprint(w, "ok")
}

// A stale=true challenge that carries a new opaque, and so a new client
// record whose nc starts at 1, with the same nonce value (WEBrick's
// per-second nonce) restarts the nonce count: all 10 requests end in 200.
func TestDigestStaleWithNewOpaqueRestartsNC(t *testing.T) {
	srv := newWebrickDigest(t)
	tr := diTransport(srv.URL)
	codes := make([]int, 10)
	bad := 0
	for i := range codes {
		code, err := diGet(tr, fmt.Sprintf("%s/page/%d", srv.URL, i))
		codes[i] = code
		if code != 200 {
			bad++
			if err != nil {
				t.Logf("request %d: %v", i, err)
			}
		}
	}
	t.Logf("statuses %v; %d round trips; %s", codes, srv.trips.Load(), &srv.refused)
	if bad != 0 {
		t.Errorf("%d of 10 requests did not end in 200: %v", bad, codes)
	}
}

// TestDigestUserhashNotStrippedAfterRejection (finding 6): a session that
// hides the user name (userhash=true) is cached; then the server refuses
// its preemptive answer with the same challenge stripped of userhash (no
// stale). A no-userhash answer ranks below a userhash one of the same
// algorithm, so the no-downgrade rule keeps the plain user name off the
// wire and the 401 comes back.
func TestDigestUserhashNotStrippedAfterRejection(t *testing.T) {
	const nonce = "uh-nonce"
	first := diChallenge{realm: "r", alg: "SHA-256", qop: "auth", userhash: true}
	again := first
	again.userhash = false
	var refuse atomic.Bool
	var mu sync.Mutex
	var auths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		auth := r.Header.Get("Authorization")
		mu.Lock()
		auths = append(auths, auth)
		mu.Unlock()
		if auth == "" {
			w.Header().Set("WWW-Authenticate", first.header(nonce, false))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if !refuse.Load() {
			if _, err := diVerify(r, body, first, testUser, testPass); err == nil {
				fmt.Fprint(w, "ok")
				return
			}
		}
		// From now on every answer is refused, with the challenge
		// stripped of userhash.
		w.Header().Set("WWW-Authenticate", again.header(nonce, false))
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	tr := diTransport(srv.URL)
	if code, err := diGet(tr, srv.URL+"/secret"); code != http.StatusOK {
		t.Fatalf("first request: %d %v, want 200", code, err)
	}
	refuse.Store(true)
	code, err := diGet(tr, srv.URL+"/secret")
	mu.Lock()
	defer mu.Unlock()
	t.Logf("status %d, err %v; %d round trips; Authorization headers received: %q", code, err, len(auths), auths)
	for i, a := range auths {
		cs := anyauth.ParseChallenges(a)
		if len(cs) == 1 && (cs[0].Param("username") == testUser || strings.Contains(a, `username="`+testUser+`"`)) {
			t.Errorf("round trip %d carried the plain user name: %q", i+1, a)
		}
	}
	if code != http.StatusUnauthorized {
		t.Errorf("status %d (err %v), want the server's 401", code, err)
	}
}

// digestMD5Server is a strict RFC 7616 server that hands every challenger
// the same nonce, and refuses an nc already used for it.
type digestMD5Server struct {
	*httptest.Server
	mu    sync.Mutex
	seen  map[string]bool
	trips atomic.Int32
	ok    atomic.Int32
}

func newDigestMD5Server(t *testing.T) *digestMD5Server {
	d := &digestMD5Server{seen: map[string]bool{}}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	d.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.trips.Add(1)
		cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
		if len(cs) == 1 && cs[0].Is("Digest") {
			c := &cs[0]
			ha1 := h(testUser + ":r:" + testPass)
			ha2 := h(r.Method + ":" + c.Param("uri"))
			want := h(ha1 + ":" + c.Param("nonce") + ":" + c.Param("nc") + ":" + c.Param("cnonce") + ":auth:" + ha2)
			d.mu.Lock()
			fresh := !d.seen[c.Param("nc")]
			d.seen[c.Param("nc")] = true
			d.mu.Unlock()
			if c.Param("response") == want && c.Param("nonce") == "shared" && fresh {
				d.ok.Add(1)
				return
			}
		}
		w.Header().Set("WWW-Authenticate", `Digest realm="r", nonce="shared", qop="auth"`)
		w.WriteHeader(401)
	}))
	t.Cleanup(d.Close)
	return d
}

// sessions given the same nonce share its nonce count.
func TestSameNonceForConcurrentChallengers(t *testing.T) {
	d := newDigestMD5Server(t)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}}, Credentials: anyauth.ForOrigin(d.URL, testUser, testPass)}
	const n = 16
	var wg sync.WaitGroup
	var failed atomic.Int32
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/doc/%d", d.URL, i), nil)
			resp, err := tr.RoundTrip(req)
			if err != nil || resp.StatusCode != 200 {
				failed.Add(1)
			}
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	close(start)
	wg.Wait()
	if failed.Load() != 0 || d.ok.Load() != n {
		t.Fatalf("%d of %d requests failed (%d accepted): an nc was sent twice for one nonce", failed.Load(), n, d.ok.Load())
	}
}

// one realm over several directories keeps an answer for each.
func TestOneRealmSeveralDirectories(t *testing.T) {
	srv := newBasicServer(t) // realm "private" on every path
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	for i := range 20 {
		dir := []string{"/private/a/", "/private/b/"}[i%2]
		if code, _ := get(t, tr, srv.URL+dir+"x"); code != 200 {
			t.Fatalf("%s: %d", dir, code)
		}
	}
	if got := srv.hits.Load(); got != 22 {
		t.Fatalf("%d round trips for 20 requests over 2 directories, want 22", got)
	}
}
