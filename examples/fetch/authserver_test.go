package main

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
)

// The credentials the test servers of this file accept.
const (
	tUser  = "alice"
	tPass  = "s3cret pass"
	tRealm = "fetch tests"
	tCreds = tUser + ":" + tPass
)

// authServer is a strict Digest MD5 server (and Basic, with basic set) for
// the tests of fetch's curl habits. It records every request it gets.
//
// With sessionNonce it behaves as Flask-HTTPAuth does: the nonce and
// opaque of a 401 are kept in a signed session cookie set on that 401, and
// an answer is accepted only when its nonce and opaque are the cookie's.
// Otherwise it remembers the nonces it gave out.
type authServer struct {
	qop          string // "auth" or "auth-int"
	basic        bool   // offer Basic too
	sessionNonce bool
	// ok answers an accepted request; nil writes "ok METHOD N bytes".
	ok func(w http.ResponseWriter, r *http.Request)

	key    []byte
	mu     sync.Mutex
	nonces map[string]bool
	seen   []seenRequest
}

type seenRequest struct {
	method, path, auth, cookie string
	body                       []byte
	status                     int
}

func newAuthServer(qop string) *authServer {
	key := make([]byte, 32)
	rand.Read(key)
	return &authServer{qop: qop, key: key, nonces: map[string]bool{}}
}

// requests returns what the server saw so far.
func (s *authServer) requests() []seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenRequest(nil), s.seen...)
}

// reset forgets the requests seen so far.
func (s *authServer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen = nil
}

// statusWriter records the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

func (s *authServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	sw := &statusWriter{ResponseWriter: w}
	if s.verify(r, body) {
		if s.ok != nil {
			s.ok(sw, r)
		} else {
			fmt.Fprintf(sw, "ok %s %d bytes\n", r.Method, len(body))
		}
	} else {
		s.challenge(sw)
	}
	s.mu.Lock()
	s.seen = append(s.seen, seenRequest{r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Cookie"), body, sw.status})
	s.mu.Unlock()
}

func (s *authServer) challenge(w http.ResponseWriter) {
	nonce, opaque := randomToken(), randomToken()
	if s.sessionNonce {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: s.sign(nonce + "|" + opaque), Path: "/", HttpOnly: true})
	} else {
		s.mu.Lock()
		s.nonces[nonce] = true
		s.mu.Unlock()
	}
	w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest realm=%q, nonce=%q, opaque=%q, qop=%q, algorithm=MD5`, tRealm, nonce, opaque, s.qop))
	if s.basic {
		w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q`, tRealm))
	}
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, "401: who are you?")
}

// sign returns payload in a session cookie value: base64, a dot, an HMAC.
func (s *authServer) sign(payload string) string {
	m := hmac.New(sha256.New, s.key)
	io.WriteString(m, payload)
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + hex.EncodeToString(m.Sum(nil))
}

// session returns the nonce and opaque of r's session cookie, if its
// signature holds.
func (s *authServer) session(r *http.Request) (nonce, opaque string, ok bool) {
	c, err := r.Cookie("session")
	if err != nil {
		return "", "", false
	}
	enc, _, _ := strings.Cut(c.Value, ".")
	payload, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !hmac.Equal([]byte(s.sign(string(payload))), []byte(c.Value)) {
		return "", "", false
	}
	nonce, opaque, ok = strings.Cut(string(payload), "|")
	return nonce, opaque, ok
}

func (s *authServer) verify(r *http.Request, body []byte) bool {
	if s.basic {
		if u, p, ok := r.BasicAuth(); ok {
			return u == tUser && p == tPass
		}
	}
	cs := anyauth.ParseChallenges(r.Header.Get("Authorization"))
	if len(cs) != 1 || !cs[0].Is("Digest") {
		return false
	}
	c := cs[0]
	nonce := c.Param("nonce")
	if s.sessionNonce {
		sn, so, ok := s.session(r)
		if !ok || sn != nonce || so != c.Param("opaque") {
			return false
		}
	} else {
		s.mu.Lock()
		known := s.nonces[nonce]
		s.mu.Unlock()
		if !known {
			return false
		}
	}
	if c.Param("username") != tUser || c.Param("realm") != tRealm || c.Param("uri") != r.URL.RequestURI() || c.Param("qop") != s.qop {
		return false
	}
	ha1 := md5hex(tUser + ":" + tRealm + ":" + tPass)
	a2 := r.Method + ":" + c.Param("uri")
	if s.qop == "auth-int" {
		a2 += ":" + md5hex(string(body))
	}
	want := md5hex(strings.Join([]string{ha1, nonce, c.Param("nc"), c.Param("cnonce"), s.qop, md5hex(a2)}, ":"))
	return subtle.ConstantTimeCompare([]byte(want), []byte(c.Param("response"))) == 1
}

func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
