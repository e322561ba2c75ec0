package anyauth_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// This file sends request bodies of every kind through Digest qop=auth-int
// (RFC 7616 §3.4.3: HA2 covers H(entity-body)). Hashing a body must
// neither end nor move the attempt that sends it, and the bytes hashed
// must be the bytes sent.

// aiServer is a Digest server that checks qop=auth-int answers against
// the body it actually received.
type aiServer struct {
	*httptest.Server
	t     *testing.T
	alg   string // "MD5" or "SHA-256"
	qop   string // offered: "auth-int" or "auth,auth-int"
	nonce string

	mu         sync.Mutex
	challenges int
	accepted   []aiAccepted
	failures   []string
}

// aiAccepted is one request the server accepted.
type aiAccepted struct {
	qop  string
	body []byte // the body the server received and hashed
}

func newAIServer(t *testing.T, alg, qop string) *aiServer {
	s := &aiServer{t: t, alg: alg, qop: qop, nonce: "n-" + alg + "-4c7a91"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *aiServer) h(parts ...string) string {
	var hh hash.Hash
	if s.alg == "SHA-256" {
		hh = sha256.New()
	} else {
		hh = md5.New()
	}
	io.WriteString(hh, strings.Join(parts, ":"))
	return hex.EncodeToString(hh.Sum(nil))
}

func (s *aiServer) hBody(body []byte) string {
	var hh hash.Hash
	if s.alg == "SHA-256" {
		hh = sha256.New()
	} else {
		hh = md5.New()
	}
	hh.Write(body)
	return hex.EncodeToString(hh.Sum(nil))
}

func (s *aiServer) fail(w http.ResponseWriter, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
	http.Error(w, msg, http.StatusBadRequest)
}

func (s *aiServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.fail(w, "reading the body: %v", err)
		return
	}
	if r.ContentLength >= 0 && r.ContentLength != int64(len(body)) {
		s.fail(w, "invalid body size: Content-Length %d, received %d bytes", r.ContentLength, len(body))
		return
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		s.mu.Lock()
		s.challenges++
		s.mu.Unlock()
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Digest realm="authint", nonce=%q, qop=%q, algorithm=%s, opaque="op"`, s.nonce, s.qop, s.alg))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	p, ok := aiParams(auth)
	if !ok {
		s.fail(w, "malformed Authorization: %q", auth)
		return
	}
	switch {
	case p["username"] != testUser, p["realm"] != "authint", p["nonce"] != s.nonce, p["opaque"] != "op":
		s.fail(w, "wrong username, realm, nonce or opaque: %q", auth)
		return
	case p["uri"] != r.URL.RequestURI():
		s.fail(w, "uri %q, request-target %q", p["uri"], r.URL.RequestURI())
		return
	case !strings.EqualFold(p["algorithm"], s.alg):
		s.fail(w, "algorithm %q, want %s", p["algorithm"], s.alg)
		return
	case !strings.Contains(","+s.qop+",", ","+p["qop"]+","):
		s.fail(w, "qop %q, offered %q", p["qop"], s.qop)
		return
	}
	ha1 := s.h(p["username"], p["realm"], testPass)
	ha2 := s.h(r.Method, p["uri"])
	if p["qop"] == "auth-int" {
		ha2 = s.h(r.Method, p["uri"], s.hBody(body))
	}
	if want := s.h(ha1, p["nonce"], p["nc"], p["cnonce"], p["qop"], ha2); p["response"] != want {
		s.fail(w, "response %s, want %s for the %d-byte body received (qop=%s)", p["response"], want, len(body), p["qop"])
		return
	}
	s.mu.Lock()
	s.accepted = append(s.accepted, aiAccepted{qop: p["qop"], body: body})
	s.mu.Unlock()
	fmt.Fprintf(w, "ok %d", len(body))
}

// aiParams parses the auth-params of a Digest credentials header.
func aiParams(h string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(h, "Digest ")
	if !ok {
		return nil, false
	}
	p := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " ,")
		if rest == "" {
			return p, true
		}
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, false
		}
		name = strings.ToLower(strings.TrimSpace(name))
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			if i == len(after) {
				return nil, false
			}
			val, rest = b.String(), after[i+1:]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
		}
		p[name] = val
	}
}

// aiBody makes a request body of some kind from content, afresh for each
// request, and says how long the body is (-1: not told).
type aiBody struct {
	name string
	make func(t *testing.T, content []byte) (io.Reader, int64)
	// tee: a body the Transport can replay only from its buffer.
	tee bool
}

// aiFile writes prefix+content to a temp file and returns it opened with
// its offset at the end of prefix: only content is the body.
func aiFile(t *testing.T, prefix, content []byte) *os.File {
	t.Helper()
	name := filepath.Join(t.TempDir(), "body.bin")
	if err := os.WriteFile(name, append(append([]byte{}, prefix...), content...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Seek(int64(len(prefix)), io.SeekStart); err != nil {
		t.Fatal(err)
	}
	return f
}

// aiSeekOnly is a seekable body without ReadAt.
type aiSeekOnly struct{ r *bytes.Reader }

func (s *aiSeekOnly) Read(p []byte) (int, error)                { return s.r.Read(p) }
func (s *aiSeekOnly) Seek(off int64, whence int) (int64, error) { return s.r.Seek(off, whence) }
func (s *aiSeekOnly) Close() error                              { return nil }

// aiReadSeekCloser is a seekable body with ReadAt (as *os.File has).
type aiReadSeekCloser struct{ *bytes.Reader }

func (aiReadSeekCloser) Close() error { return nil }

var aiBodies = []aiBody{
	{name: "os.File", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return aiFile(t, nil, c), int64(len(c))
	}},
	{name: "os.File/no-length", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return aiFile(t, nil, c), -1
	}},
	{name: "os.File/offset", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return aiFile(t, bytes.Repeat([]byte("prefix!"), 1777), c), int64(len(c))
	}},
	{name: "os.File/offset/no-length", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return aiFile(t, []byte("not the body"), c), -1
	}},
	{name: "ReadSeekCloser+ReaderAt/offset", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		r := bytes.NewReader(append([]byte("skip me"), c...))
		r.Seek(7, io.SeekStart)
		return aiReadSeekCloser{r}, int64(len(c))
	}},
	{name: "ReadSeekCloser/offset", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		r := bytes.NewReader(append([]byte("skip me"), c...))
		r.Seek(7, io.SeekStart)
		return &aiSeekOnly{r}, -1
	}},
	{name: "bytes.Reader", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return bytes.NewReader(c), int64(len(c))
	}},
	{name: "strings.Reader", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return strings.NewReader(string(c)), int64(len(c))
	}},
	{name: "bytes.Buffer", make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return bytes.NewBuffer(append([]byte{}, c...)), int64(len(c))
	}},
	{name: "stream", tee: true, make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return io.NopCloser(struct{ io.Reader }{bytes.NewReader(c)}), int64(len(c))
	}},
	{name: "stream/no-length", tee: true, make: func(t *testing.T, c []byte) (io.Reader, int64) {
		return io.NopCloser(struct{ io.Reader }{bytes.NewReader(c)}), -1
	}},
}

// aiRequest makes a POST of body to u. http.NewRequest sets GetBody and
// ContentLength for *bytes.Reader, *strings.Reader and *bytes.Buffer; the
// other kinds go as the Body itself, as a caller would hand them over.
func aiRequest(t *testing.T, u string, body io.Reader, length int64) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if rc, ok := body.(io.ReadCloser); ok {
		req.Body, req.GetBody = rc, nil
		req.ContentLength = max(length, 0) // 0: unknown
	}
	return req
}

func aiContent(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

// TestAuthIntBodies: every kind of body, under MD5 and SHA-256 auth-int
// only. The first request meets the 401 and its replay is accepted; the
// second goes with the cached session at once. The server hashes what it
// received, so an accepted answer means the bytes hashed were the bytes
// sent.
func TestAuthIntBodies(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		for _, kind := range aiBodies {
			t.Run(alg+"/"+kind.name, func(t *testing.T) {
				srv := newAIServer(t, alg, "auth-int")
				base := &http.Transport{}
				t.Cleanup(base.CloseIdleConnections)
				tr := &anyauth.Transport{
					Base:        base,
					Schemes:     []anyauth.Scheme{schemes.Digest{}},
					Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass),
				}
				var sent [][]byte
				for i := range 2 {
					content := aiContent(100<<10 + i*333)
					body, length := kind.make(t, content)
					resp, err := tr.RoundTrip(aiRequest(t, srv.URL+"/upload?i=1", body, length))
					if err != nil {
						t.Fatalf("request %d: %v", i+1, err)
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("request %d: %d %q", i+1, resp.StatusCode, got)
					}
					sent = append(sent, content)
				}
				srv.mu.Lock()
				defer srv.mu.Unlock()
				if len(srv.failures) > 0 {
					t.Fatalf("server: %q", srv.failures)
				}
				if srv.challenges != 1 || len(srv.accepted) != 2 {
					t.Fatalf("%d challenges, %d accepted; want 1 and 2", srv.challenges, len(srv.accepted))
				}
				for i, a := range srv.accepted {
					if a.qop != "auth-int" {
						t.Errorf("request %d answered qop=%s", i+1, a.qop)
					}
					if !bytes.Equal(a.body, sent[i]) {
						t.Errorf("request %d: the server hashed %d bytes, %d were sent", i+1, len(a.body), len(sent[i]))
					}
				}
			})
		}
	}
}

// TestAuthIntStreamOverBuffer: a stream larger than MaxBodyBuffer cannot
// be hashed without being read past the buffer. When qop=auth is offered
// too, Digest answers with it and the whole stream goes; when auth-int is
// all there is, the request fails without sending a broken body.
func TestAuthIntStreamOverBuffer(t *testing.T) {
	const limit = 64 << 10
	for _, length := range []int64{-1, 200 << 10} {
		t.Run(fmt.Sprintf("auth,auth-int/length=%d", length), func(t *testing.T) {
			srv := newAIServer(t, "SHA-256", "auth,auth-int")
			base := &http.Transport{}
			t.Cleanup(base.CloseIdleConnections)
			tr := &anyauth.Transport{
				Base:          base,
				Schemes:       []anyauth.Scheme{schemes.Digest{}},
				Credentials:   anyauth.ForOrigin(srv.URL, testUser, testPass),
				MaxBodyBuffer: limit,
			}
			// The first request has a small body, so that the session is
			// cached and the large one is answered at once.
			for i, n := range []int{1000, 200 << 10} {
				content := aiContent(n)
				l := length
				if i == 0 {
					l = int64(n)
				}
				body := io.NopCloser(struct{ io.Reader }{bytes.NewReader(content)})
				resp, err := tr.RoundTrip(aiRequest(t, srv.URL+"/big", body, l))
				if err != nil {
					t.Fatalf("request %d: %v", i+1, err)
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("request %d: %d", i+1, resp.StatusCode)
				}
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			if len(srv.failures) > 0 || len(srv.accepted) != 2 {
				t.Fatalf("server: %q, %d accepted", srv.failures, len(srv.accepted))
			}
			if srv.accepted[0].qop != "auth-int" || srv.accepted[1].qop != "auth" {
				t.Errorf("qops %s, %s; want auth-int, then auth for the stream over the buffer", srv.accepted[0].qop, srv.accepted[1].qop)
			}
			if len(srv.accepted[1].body) != 200<<10 {
				t.Errorf("the server received %d bytes of the stream, want %d", len(srv.accepted[1].body), 200<<10)
			}
		})
	}
	t.Run("auth-int", func(t *testing.T) {
		srv := newAIServer(t, "SHA-256", "auth-int")
		base := &http.Transport{}
		t.Cleanup(base.CloseIdleConnections)
		tr := &anyauth.Transport{
			Base:          base,
			Schemes:       []anyauth.Scheme{schemes.Digest{}},
			Credentials:   anyauth.ForOrigin(srv.URL, testUser, testPass),
			MaxBodyBuffer: limit,
		}
		resp, err := tr.RoundTrip(aiRequest(t, srv.URL+"/small", bytes.NewReader(aiContent(10)), 10))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		body := io.NopCloser(struct{ io.Reader }{bytes.NewReader(aiContent(200 << 10))})
		resp, err = tr.RoundTrip(aiRequest(t, srv.URL+"/big", body, -1))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("a stream over the buffer under auth-int only: %d, want an error", resp.StatusCode)
		}
		if !errors.Is(err, schemes.ErrBodyNotReadable) {
			t.Errorf("error %v, want one wrapping schemes.ErrBodyNotReadable", err)
		}
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if len(srv.failures) > 0 {
			t.Fatalf("server: %q", srv.failures)
		}
	})
}

// aiCount counts the Closes of the caller's body, wrapped as one of
// the aiCounted types so that it keeps its Seek and ReadAt.
type aiCount struct {
	mu sync.Mutex
	n  int
}

func (c *aiCount) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

type aiCountedFile struct {
	*os.File
	c *aiCount
}

func (f aiCountedFile) Close() error { f.c.add(); return f.File.Close() }

type aiCountedSeeker struct {
	io.ReadSeeker
	c *aiCount
}

func (s aiCountedSeeker) Close() error { s.c.add(); return nil }

type aiCountedReader struct {
	io.Reader
	c *aiCount
}

func (r aiCountedReader) Close() error { r.c.add(); return nil }

// TestBodyCopyLeavesAttemptAlone: a copy made by the request's GetBody in
// the middle of the attempt's own read (as a base transport retrying, or
// a Leg hashing, may do) reads the whole body, and the attempt goes on
// where it was. An ended attempt's GetBody makes no more copies, and the
// caller's body is closed once.
func TestBodyCopyLeavesAttemptAlone(t *testing.T) {
	content := aiContent(50 << 10)
	for _, kind := range aiBodies {
		if kind.name != "os.File/offset" && kind.name != "ReadSeekCloser/offset" && !kind.tee {
			continue // the ones whose GetBody the Transport makes
		}
		t.Run(kind.name, func(t *testing.T) {
			count := &aiCount{}
			body, length := kind.make(t, content)
			var rc io.ReadCloser
			switch b := body.(type) {
			case *os.File:
				rc = aiCountedFile{b, count}
			case io.ReadSeeker:
				rc = aiCountedSeeker{b, count}
			default:
				rc = aiCountedReader{b, count}
			}
			var attempts int
			var firstGetBody func() (io.ReadCloser, error)
			base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				attempts++
				if r.GetBody == nil {
					t.Fatalf("attempt %d: no GetBody", attempts)
				}
				head := make([]byte, 10000)
				if _, err := io.ReadFull(r.Body, head); err != nil {
					t.Fatalf("attempt %d: reading its body: %v", attempts, err)
				}
				c, err := r.GetBody()
				if err != nil {
					t.Fatalf("attempt %d: GetBody: %v", attempts, err)
				}
				half := make([]byte, 20000)
				if _, err := io.ReadFull(c, half); err != nil {
					t.Fatalf("attempt %d: reading a copy: %v", attempts, err)
				}
				rest, err := io.ReadAll(r.Body) // the attempt between two reads of the copy
				if err != nil {
					t.Fatalf("attempt %d: reading its body after a copy: %v", attempts, err)
				}
				tail, err := io.ReadAll(c)
				c.Close()
				if err != nil {
					t.Fatalf("attempt %d: reading a copy: %v", attempts, err)
				}
				if got := append(head, rest...); !bytes.Equal(got, content) {
					t.Errorf("attempt %d sent %d bytes, not the %d-byte body", attempts, len(got), len(content))
				}
				if got := append(half, tail...); !bytes.Equal(got, content) {
					t.Errorf("attempt %d: a copy read %d bytes, not the %d-byte body", attempts, len(got), len(content))
				}
				r.Body.Close()
				if attempts == 1 {
					firstGetBody = r.GetBody
					return fakeResponse(r, 401, "", "WWW-Authenticate", `Basic realm="r"`), nil
				}
				if c, err := firstGetBody(); err == nil {
					c.Close()
					t.Error("the first attempt's GetBody made a copy during the second")
				}
				return fakeResponse(r, 200, ""), nil
			})
			tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyCreds()}
			req := aiRequest(t, "http://127.0.0.1:9/up", rc, length)
			resp, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || attempts != 2 {
				t.Fatalf("%d after %d attempts", resp.StatusCode, attempts)
			}
			count.mu.Lock()
			defer count.mu.Unlock()
			if count.n != 1 {
				t.Errorf("the caller's body was closed %d times, want once", count.n)
			}
		})
	}
}
