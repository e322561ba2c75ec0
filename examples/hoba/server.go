package hoba

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
)

// Server is a small in-process HOBA server (an http.Handler), for tests
// and examples: it challenges every request that has no valid answer,
// verifies answers against the keys registered with it, remembers each
// challenge for MaxAge, and refuses a (challenge, nonce) pair it has
// accepted before.
//
// Registration is simplified from RFC 7486 §6.1.1. There, a client POSTs
// to /.well-known/hoba/register a form with pub (its public key, PEM),
// kidtype, kid, didtype and did, signed with a HOBA answer, and the
// server binds the key to an account by means of its own (a login, an
// email loop), answering with a Hobareg header. Here the form has kid
// and pub only, pub being the PKIX DER of the key in base64url; the POST
// must carry a HOBA answer signed by that very key (proof of possession,
// checked against the pub of the form since the kid is not known yet);
// and the key is bound to no account: any key that proves possession is
// registered, and is then accepted on every path, with its kid handed to
// Handler (see KeyIDFrom). A kid already bound to another key is refused
// (409). The answer is 200 with "Hobareg: regok".
//
// Create one with NewServer; change its fields before it serves.
type Server struct {
	// Realm, when not empty, is sent as the challenges' realm.
	Realm string

	// MaxAge is how long an answer to a challenge is accepted, sent as
	// max-age in whole seconds. NewServer sets 180 s.
	MaxAge time.Duration

	// Origin is the server's origin, as the signatures must name it
	// ("https://example.com"). Empty means the one the request was sent
	// to (its Host, and https when it came over TLS): fine for tests on
	// a random port, but a real server should say.
	Origin string

	// Handler serves authenticated requests. Nil means one that writes
	// "hello <kid>".
	Handler http.Handler

	mu         sync.Mutex
	keys       map[string]crypto.PublicKey
	challenges map[string]time.Time // challenge → when it expires
	used       map[string]time.Time // challenge "." nonce → when it may be forgotten
	now        func() time.Time
}

// NewServer returns a Server with no key and a max-age of 180 s.
func NewServer() *Server {
	return &Server{
		MaxAge:     180 * time.Second,
		keys:       make(map[string]crypto.PublicKey),
		challenges: make(map[string]time.Time),
		used:       make(map[string]time.Time),
	}
}

// Bounds on what a Server remembers.
const (
	maxChallenges = 1 << 16
	maxFormBody   = 16 << 10
)

// Reasons for refusing an answer; the 401's body names them.
var (
	errNoAnswer         = errors.New("no HOBA answer")
	errMalformed        = errors.New("malformed HOBA result")
	errUnknownKey       = errors.New("unknown kid")
	errUnknownChallenge = errors.New("unknown or expired challenge")
	errReplay           = errors.New("nonce already used with this challenge")
	errBadSignature     = errors.New("bad signature")
)

// RegisterKey registers pub under kid directly, as an out-of-band
// registration would.
func (s *Server) RegisterKey(kid string, pub crypto.PublicKey) error {
	if !isB64URL(kid) {
		return ErrBadKeyID
	}
	if _, err := algOf(pub); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.keys[kid]; ok && !samePublicKey(old, pub) {
		return fmt.Errorf("hoba: kid %q is bound to another key", kid)
	}
	s.keys[kid] = pub
	return nil
}

type kidKey struct{}

// KeyIDFrom returns the kid that authenticated the request whose context
// ctx is, within a Server's Handler, or "".
func KeyIDFrom(ctx context.Context) string {
	kid, _ := ctx.Value(kidKey{}).(string)
	return kid
}

// ServeHTTP registers keys at RegisterPath, and serves Handler to
// requests with a valid answer; any other request gets a 401 and a new
// challenge.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == RegisterPath {
		s.register(w, r)
		return
	}
	kid, err := s.verify(r, s.lookup)
	if err != nil {
		s.challenge(w, err)
		return
	}
	h := s.Handler
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello %s\n", KeyIDFrom(r.Context()))
		})
	}
	h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), kidKey{}, kid)))
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "hoba: bad form", http.StatusBadRequest)
		return
	}
	kid := r.PostForm.Get("kid")
	der, err := b64.DecodeString(r.PostForm.Get("pub"))
	if err != nil || !isB64URL(kid) {
		http.Error(w, "hoba: the form needs kid and pub (PKIX DER, base64url)", http.StatusBadRequest)
		return
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err == nil {
		_, err = algOf(pub)
	}
	if err != nil {
		http.Error(w, "hoba: unsupported public key", http.StatusBadRequest)
		return
	}
	// Proof of possession: the answer must be signed by the key being
	// registered, under the kid being registered.
	_, err = s.verify(r, func(k string) crypto.PublicKey {
		if k != kid {
			return nil
		}
		return pub
	})
	if err != nil {
		s.challenge(w, err)
		return
	}
	if err := s.RegisterKey(kid, pub); err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	w.Header().Set("Hobareg", "regok")
	fmt.Fprintf(w, "registered %s\n", kid)
}

func (s *Server) lookup(kid string) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[kid]
}

// verify checks the request's HOBA answer and returns its kid.
func (s *Server) verify(r *http.Request, lookup func(kid string) crypto.PublicKey) (string, error) {
	var result string
	for _, c := range anyauth.ParseChallenges(r.Header.Values("Authorization")...) {
		if c.Is("HOBA") {
			result = c.Param("result")
			break
		}
	}
	if result == "" {
		return "", errNoAnswer
	}
	parts := strings.Split(result, ".")
	if len(parts) != 4 {
		return "", errMalformed
	}
	for _, p := range parts {
		if !isB64URL(p) {
			return "", errMalformed
		}
	}
	kid, challenge, nonce := parts[0], parts[1], parts[2]
	sig, err := b64.DecodeString(parts[3])
	if err != nil {
		return "", errMalformed
	}
	pub := lookup(kid)
	if pub == nil {
		return "", errUnknownKey
	}
	now := s.clock()()
	s.mu.Lock()
	expires, ok := s.challenges[challenge]
	s.mu.Unlock()
	if !ok || !now.Before(expires) {
		return "", errUnknownChallenge
	}
	alg, err := algOf(pub)
	if err != nil {
		return "", errUnknownKey
	}
	origin, err := s.origin(r)
	if err != nil {
		return "", err
	}
	if !verify(pub, ToBeSigned(nonce, alg, origin, s.Realm, kid, challenge), sig) {
		return "", errBadSignature
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	key := challenge + "." + nonce
	if _, seen := s.used[key]; seen {
		return "", errReplay
	}
	s.used[key] = expires
	return kid, nil
}

// challenge answers 401 with a new challenge.
func (s *Server) challenge(w http.ResponseWriter, why error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		http.Error(w, "hoba: no randomness", http.StatusInternalServerError)
		return
	}
	c := b64.EncodeToString(b[:])
	now := s.clock()()
	s.mu.Lock()
	s.sweep(now)
	s.challenges[c] = now.Add(s.MaxAge)
	s.mu.Unlock()
	h := `HOBA max-age="` + strconv.Itoa(int(s.MaxAge/time.Second)) + `", challenge="` + c + `"`
	if s.Realm != "" {
		h += `, realm="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s.Realm) + `"`
	}
	w.Header().Set("WWW-Authenticate", h)
	http.Error(w, "hoba: "+why.Error(), http.StatusUnauthorized)
}

// sweep forgets expired challenges and nonces; s.mu is held.
func (s *Server) sweep(now time.Time) {
	for c, exp := range s.challenges {
		if !now.Before(exp) || len(s.challenges) >= maxChallenges {
			delete(s.challenges, c)
		}
	}
	for k, exp := range s.used {
		if !now.Before(exp) {
			delete(s.used, k)
		}
	}
}

func (s *Server) origin(r *http.Request) (string, error) {
	if s.Origin != "" {
		return Origin(s.Origin)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return Origin(scheme + "://" + r.Host)
}

func (s *Server) clock() func() time.Time {
	if s.now != nil {
		return s.now
	}
	return time.Now
}

func samePublicKey(a, b crypto.PublicKey) bool {
	da, errA := x509.MarshalPKIXPublicKey(a)
	db, errB := x509.MarshalPKIXPublicKey(b)
	return errA == nil && errB == nil && subtle.ConstantTimeCompare(da, db) == 1
}
