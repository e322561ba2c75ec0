package schemes

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
)

// This file holds a strict Digest server for the tests: it issues
// challenges for a chosen algorithm, qop and userhash, checks every field
// of every answer, expires nonces with stale=true, sends
// Authentication-Info with rspauth and nextnonce, and counts its 401s.
// Its hashing is written apart from the package's own code, with
// hash.Hash and fmt, so that it checks the package rather than repeats it.

// verifier is the strict server's configuration and state.
type verifier struct {
	t testing.TB

	realm string
	// alg is the algorithm parameter as sent, "" to send none (MD5).
	alg string
	// qop is the qop parameter as sent ("auth", "auth-int",
	// "auth, auth-int"), "" to send none (RFC 2069).
	qop      string
	userhash bool
	user     string
	pass     string
	opaque   string
	// proxy makes the server act as a proxy: 407, Proxy-Authenticate,
	// Proxy-Authorization, Proxy-Authentication-Info, absolute-form uri.
	proxy bool

	// strictOrder requires nc to grow in arrival order (one client
	// goroutine); otherwise it must only never repeat.
	strictOrder bool
	// maxUses makes a nonce stale after that many accepted answers (0:
	// never).
	maxUses int
	// nextnonce sends a fresh nextnonce in every Authentication-Info.
	nextnonce bool
	// rspauth sends rspauth (a wrong one when badRspauth).
	rspauth, badRspauth bool
	// wrongPasswordOK makes a wrong response an expected event (401
	// again) rather than a test failure.
	wrongPasswordOK bool

	mu     sync.Mutex
	nonces map[string]*nonceRecord

	challenges atomic.Int64 // 401 (or 407) responses
	stales     atomic.Int64 // of which stale=true
	accepted   atomic.Int64 // 200 responses
	rejected   atomic.Int64 // wrong responses
	bodies     atomic.Int64 // auth-int answers whose body hash was checked
}

// nonceRecord is what the server remembers of one nonce it issued.
type nonceRecord struct {
	seen  map[uint64]bool
	max   uint64
	uses  int
	stale bool
}

func (v *verifier) server() *httptest.Server {
	v.nonces = make(map[string]*nonceRecord)
	srv := httptest.NewServer(v)
	v.t.Cleanup(srv.Close)
	return srv
}

func (v *verifier) names() (challenge, answer, info string, status int) {
	if v.proxy {
		return "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Authentication-Info", http.StatusProxyAuthRequired
	}
	return "WWW-Authenticate", "Authorization", "Authentication-Info", http.StatusUnauthorized
}

// vh returns the verifier's own hash constructor for an algorithm name.
func vh(alg string) (func() hash.Hash, bool) {
	base := strings.TrimSuffix(strings.ToUpper(alg), "-SESS")
	switch base {
	case "", "MD5":
		return md5.New, true
	case "SHA-256":
		return sha256.New, true
	case "SHA-512":
		return sha512.New, true
	case "SHA-512-256":
		return sha512.New512_256, true
	}
	return nil, false
}

// vhex returns hex(H(parts joined by ":")).
func vhex(newHash func() hash.Hash, parts ...string) string {
	h := newHash()
	io.WriteString(h, strings.Join(parts, ":"))
	return hex.EncodeToString(h.Sum(nil))
}

func (v *verifier) newNonce() string {
	var b [18]byte
	rand.Read(b[:])
	n := strings.NewReplacer("+", "-", "/", "_").Replace(fmt.Sprintf("%x", b[:]))
	v.mu.Lock()
	v.nonces[n] = &nonceRecord{seen: make(map[uint64]bool)}
	v.mu.Unlock()
	return n
}

// challenge sends a 401 (407) with a fresh nonce.
func (v *verifier) challenge(w http.ResponseWriter, stale bool) {
	chName, _, _, status := v.names()
	c := anyauth.Challenge{Scheme: "Digest"}
	add := func(name, value string) { c.Params = append(c.Params, anyauth.Param{Name: name, Value: value}) }
	add("realm", v.realm)
	if v.qop != "" {
		add("qop", v.qop)
	}
	if v.alg != "" {
		add("algorithm", v.alg)
	}
	add("nonce", v.newNonce())
	add("opaque", v.opaque)
	if v.userhash {
		add("charset", "UTF-8")
		add("userhash", "true")
	}
	if stale {
		add("stale", "true")
		v.stales.Add(1)
	}
	v.challenges.Add(1)
	w.Header().Set(chName, c.String())
	w.WriteHeader(status)
	io.WriteString(w, "authenticate")
}

// fail records a protocol violation and answers 400.
func (v *verifier) fail(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	v.t.Errorf("verifier: %s", msg)
	http.Error(w, msg, http.StatusBadRequest)
}

// requestTarget is the request-target the client put on its request line.
func (v *verifier) requestTarget(r *http.Request) string {
	return r.RequestURI
}

func (v *verifier) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, ansName, infoName, _ := v.names()
	raw := r.Header.Values(ansName)
	if len(raw) == 0 {
		v.challenge(w, false)
		return
	}
	if len(raw) != 1 {
		v.fail(w, "%d %s fields", len(raw), ansName)
		return
	}
	cs := anyauth.ParseChallenges(raw[0])
	if len(cs) != 1 || !cs[0].Is("Digest") {
		v.fail(w, "%s %q does not parse as one Digest answer", ansName, raw[0])
		return
	}
	a := &cs[0]
	p := params(a)

	newHash, ok := vh(v.alg)
	if !ok {
		v.fail(w, "verifier configured with unknown algorithm %q", v.alg)
		return
	}
	// algorithm: echoed as spelled, absent when the challenge had none.
	if alg, has := p["algorithm"]; (v.alg == "" && has) || (v.alg != "" && alg != v.alg) {
		v.fail(w, "algorithm=%q, challenge said %q", alg, v.alg)
		return
	}
	if p["realm"] != v.realm {
		v.fail(w, "realm=%q, want %q", p["realm"], v.realm)
		return
	}
	// username / userhash / username*.
	if v.userhash {
		if p["userhash"] != "true" {
			v.fail(w, "userhash=%q, want true", p["userhash"])
			return
		}
		if want := vhex(newHash, v.user, v.realm); p["username"] != want {
			v.fail(w, "hashed username %q, want %q", p["username"], want)
			return
		}
	} else {
		if _, has := p["userhash"]; has {
			v.fail(w, "userhash sent (%q) though not offered", p["userhash"])
			return
		}
		user, hasUser := p["username"]
		ext, hasExt := p["username*"]
		switch {
		case hasUser && hasExt:
			v.fail(w, "both username and username*")
			return
		case hasExt:
			rest, ok := strings.CutPrefix(ext, "UTF-8''")
			dec, err := url.PathUnescape(rest)
			if !ok || err != nil {
				v.fail(w, "username* %q is not UTF-8''pct-encoded", ext)
				return
			}
			user = dec
		case !hasUser:
			v.fail(w, "no username")
			return
		}
		if user != v.user {
			v.fail(w, "username %q, want %q", user, v.user)
			return
		}
	}
	// opaque echoed.
	if p["opaque"] != v.opaque {
		v.fail(w, "opaque=%q, want %q", p["opaque"], v.opaque)
		return
	}
	// uri: the request-target.
	if uri := p["uri"]; uri != v.requestTarget(r) {
		v.fail(w, "uri=%q, request-target %q", uri, v.requestTarget(r))
		return
	}
	// nonce known.
	nonce := p["nonce"]
	v.mu.Lock()
	rec := v.nonces[nonce]
	v.mu.Unlock()
	if rec == nil {
		v.fail(w, "unknown nonce %q", nonce)
		return
	}

	// qop, nc, cnonce.
	qop, hasQop := p["qop"]
	var nc uint64
	if v.qop == "" {
		for _, name := range []string{"qop", "nc", "cnonce"} {
			if _, has := p[name]; has {
				v.fail(w, "%s sent to a challenge without qop", name)
				return
			}
		}
	} else {
		offered := false
		for _, q := range strings.Split(v.qop, ",") {
			offered = offered || strings.TrimSpace(q) == qop
		}
		if !hasQop || !offered {
			v.fail(w, "qop=%q not among %q", qop, v.qop)
			return
		}
		if len(p["cnonce"]) < 16 {
			v.fail(w, "cnonce %q too short", p["cnonce"])
			return
		}
		ncs := p["nc"]
		n, err := strconv.ParseUint(ncs, 16, 32)
		if len(ncs) != 8 || err != nil || n == 0 {
			v.fail(w, "nc=%q is not 8 hex digits > 0", ncs)
			return
		}
		nc = n
	}

	// response.
	ha1 := vhex(newHash, v.user, v.realm, v.pass)
	if strings.HasSuffix(strings.ToUpper(v.alg), "-SESS") {
		ha1 = vhex(newHash, ha1, nonce, p["cnonce"])
	}
	a2 := []string{r.Method, p["uri"]}
	if qop == "auth-int" {
		h := newHash()
		if _, err := io.Copy(h, r.Body); err != nil {
			v.fail(w, "reading body: %v", err)
			return
		}
		a2 = append(a2, hex.EncodeToString(h.Sum(nil)))
		v.bodies.Add(1)
	}
	var want string
	if v.qop == "" {
		want = vhex(newHash, ha1, nonce, vhex(newHash, a2...))
	} else {
		want = vhex(newHash, ha1, nonce, p["nc"], p["cnonce"], qop, vhex(newHash, a2...))
	}
	if p["response"] != want {
		v.rejected.Add(1)
		if !v.wrongPasswordOK {
			v.t.Errorf("verifier: wrong response for %s %s", r.Method, p["uri"])
		}
		v.challenge(w, false)
		return
	}

	// Replay and staleness, checked after the response proves the client.
	v.mu.Lock()
	if hasQop {
		if rec.seen[nc] || (v.strictOrder && nc <= rec.max) {
			v.mu.Unlock()
			v.fail(w, "nc %08x repeated or out of order for nonce %s (max %08x)", nc, nonce, rec.max)
			return
		}
		rec.seen[nc] = true
		rec.max = max(rec.max, nc)
	}
	if rec.stale || (v.maxUses > 0 && rec.uses >= v.maxUses) {
		rec.stale = true
		v.mu.Unlock()
		v.challenge(w, true)
		return
	}
	rec.uses++
	v.mu.Unlock()

	// Authentication-Info.
	var info []string
	if v.nextnonce {
		info = append(info, `nextnonce="`+v.newNonce()+`"`)
	}
	if hasQop {
		info = append(info, "qop="+qop, `cnonce="`+p["cnonce"]+`"`, "nc="+p["nc"])
	}
	if v.rspauth {
		a2 := []string{"", p["uri"]}
		var rsp string
		if hasQop {
			rsp = vhex(newHash, ha1, nonce, p["nc"], p["cnonce"], qop, vhex(newHash, a2...))
		} else {
			rsp = vhex(newHash, ha1, nonce, vhex(newHash, a2...))
		}
		if v.badRspauth {
			rsp = vhex(newHash, "forged", rsp)
		}
		info = append(info, `rspauth="`+rsp+`"`)
	}
	if len(info) > 0 {
		w.Header().Set(infoName, strings.Join(info, ", "))
	}
	v.accepted.Add(1)
	io.WriteString(w, "hello "+r.Method)
}
