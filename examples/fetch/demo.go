package main

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
)

const (
	demoUser     = "demo"
	demoPassword = "correct horse"
	demoRealm    = "anyauth demo"
)

// demoServer offers Basic, Digest MD5 and Digest SHA-256 on /protected/,
// Basic alone on /basic/, and checks every answer as a strict server would.
type demoServer struct {
	mu     sync.Mutex
	nonces map[string]bool
	hits   int
}

func (d *demoServer) newNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	n := base64.RawURLEncoding.EncodeToString(b)
	d.mu.Lock()
	d.nonces[n] = true
	d.mu.Unlock()
	return n
}

func (d *demoServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.hits++
	d.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	var offer []string
	switch {
	case strings.HasPrefix(r.URL.Path, "/protected/"):
		offer = []string{"Basic", "MD5", "SHA-256"}
	case strings.HasPrefix(r.URL.Path, "/basic/"):
		offer = []string{"Basic"}
	default:
		fmt.Fprintln(w, "public page: try /protected/ or /basic/")
		return
	}
	if how, ok := d.check(r); ok {
		fmt.Fprintf(w, "hello %s: you answered with %s", demoUser, how)
		if len(body) > 0 {
			fmt.Fprintf(w, " and sent %d bytes: %q", len(body), body)
		}
		fmt.Fprintln(w)
		return
	}
	nonce := d.newNonce()
	for _, o := range offer {
		if o == "Basic" {
			w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, demoRealm))
			continue
		}
		w.Header().Add("WWW-Authenticate", fmt.Sprintf(`Digest realm=%q, qop="auth", algorithm=%s, nonce=%q, opaque="demo-opaque"`, demoRealm, o, nonce))
	}
	w.WriteHeader(http.StatusUnauthorized)
	fmt.Fprintln(w, "401: who are you?")
}

// check verifies the request's Authorization and says how it answered.
func (d *demoServer) check(r *http.Request) (string, bool) {
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return "", false
	}
	cs := anyauth.ParseChallenges(auth)
	if len(cs) != 1 {
		return "", false
	}
	c := cs[0]
	switch {
	case c.Is("Basic"):
		u, p, ok := r.BasicAuth()
		return "Basic", ok && u == demoUser && p == demoPassword
	case c.Is("Digest"):
		var h func() hash.Hash
		switch strings.ToUpper(c.Param("algorithm")) {
		case "", "MD5":
			h = md5.New
		case "SHA-256":
			h = sha256.New
		default:
			return "", false
		}
		d.mu.Lock()
		known := d.nonces[c.Param("nonce")]
		d.mu.Unlock()
		if !known || c.Param("username") != demoUser || c.Param("realm") != demoRealm || c.Param("uri") != r.URL.RequestURI() {
			return "", false
		}
		hx := func(parts ...string) string {
			x := h()
			io.WriteString(x, strings.Join(parts, ":"))
			return hex.EncodeToString(x.Sum(nil))
		}
		ha1 := hx(demoUser, demoRealm, demoPassword)
		ha2 := hx(r.Method, c.Param("uri"))
		want := hx(ha1, c.Param("nonce"), c.Param("nc"), c.Param("cnonce"), c.Param("qop"), ha2)
		ok := subtle.ConstantTimeCompare([]byte(want), []byte(c.Param("response"))) == 1
		return "Digest " + c.Param("algorithm") + " nc=" + c.Param("nc"), ok
	}
	return "", false
}

// runDemo starts the demo server on a free loopback port and runs fetch
// against it three ways, printing the trace to stderr.
func runDemo(stdout, stderr io.Writer) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(stderr, "fetch: demo:", err)
		return 2
	}
	srv := &http.Server{Handler: &demoServer{nonces: map[string]bool{}}}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String()
	cred := demoUser + ":" + demoPassword

	fmt.Fprintf(stderr, "anyauth demo: a server at %s offers Basic, Digest MD5 and Digest SHA-256\n", base)
	fmt.Fprintf(stderr, "on /protected/, and Basic alone on /basic/ (user %q, password %q).\n", demoUser, demoPassword)
	steps := []struct {
		title string
		args  []string
		want  int
	}{
		{"1. Three GETs with one Transport: the first meets a 401 with three challenges,\n   anyauth ranks them and answers Digest SHA-256; the next two are answered\n   preemptively (no 401, the nonce count goes up).",
			[]string{"-v", "-u", cred, "-n", "3", base + "/protected/"}, 0},
		{"2. A POST whose body is replayed after the 401 (Basic is all /basic/ offers).",
			[]string{"-v", "-u", cred, "-d", "hello, body", base + "/basic/upload"}, 0},
		{"3. A wrong password: one answer, rejected; the server's 401 comes back as it\n   came and fetch exits 1.",
			[]string{"-v", "-u", demoUser + ":wrong", base + "/protected/"}, 1},
	}
	for _, s := range steps {
		fmt.Fprintf(stderr, "\n%s\n$ fetch %s\n", s.title, strings.Join(quoteArgs(s.args), " "))
		if got := run(s.args, stdout, stderr); got != s.want {
			fmt.Fprintf(stderr, "demo: exit status %d, want %d\n", got, s.want)
			return 1
		}
	}
	fmt.Fprintln(stderr, "\nDemo done. Try: go run ./examples/fetch -v -u USER:PASS http://host/path")
	return 0
}

func quoteArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " ,") {
			a = "'" + a + "'"
		}
		out[i] = a
	}
	return out
}
