package sigv4

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
)

// recorder is an origin that records the requests it gets and answers
// 200.
type recorder struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func newRecorder(t *testing.T, tls bool) *recorder {
	r := &recorder{}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.body = append(r.body, b)
		r.mu.Unlock()
	})
	if tls {
		r.Server = httptest.NewTLSServer(h)
	} else {
		r.Server = httptest.NewServer(h)
	}
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("no request arrived")
	}
	return r.reqs[len(r.reqs)-1]
}

func transportFor(r *recorder, s *Signer) *anyauth.Transport {
	return &anyauth.Transport{Base: r.Client().Transport, Schemes: []anyauth.Scheme{s}}
}

func testSigner(origins ...string) *Signer {
	return New("eu-west-1", "execute-api", StaticCredentials("AKIDTEST", "secret-key-never-shown", ""), origins...)
}

func signedHeaders(auth string) string {
	_, rest, _ := strings.Cut(auth, "SignedHeaders=")
	h, _, _ := strings.Cut(rest, ",")
	return h
}

// TestOnlyListedOrigins: a request to an origin not listed goes unsigned,
// and so does a redirect from a listed origin to another; a proxy's space
// is never begun.
func TestOnlyListedOrigins(t *testing.T) {
	listed, other := newRecorder(t, false), newRecorder(t, false)
	s := testSigner(listed.URL)
	tr := transportFor(listed, s)
	c := &http.Client{Transport: tr}
	for _, u := range []string{listed.URL + "/a", other.URL + "/b"} {
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if a := listed.last(t).Header.Get("Authorization"); !strings.HasPrefix(a, Name+" Credential=AKIDTEST/") {
		t.Fatalf("listed origin got Authorization %q", a)
	}
	if a := other.last(t).Header.Get("Authorization"); a != "" || other.last(t).Header.Get("X-Amz-Date") != "" {
		t.Fatalf("an origin not listed got Authorization %q", a)
	}

	redirect := httptest.NewServer(http.RedirectHandler(other.URL+"/elsewhere", http.StatusFound))
	defer redirect.Close()
	s2 := testSigner(redirect.URL)
	resp, err := (&http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{s2}}}).Get(redirect.URL + "/r")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := other.last(t); got.URL.Path != "/elsewhere" || got.Header.Get("Authorization") != "" {
		t.Fatalf("the redirect's target got %s with Authorization %q", got.URL.Path, got.Header.Get("Authorization"))
	}

	u, _ := url.Parse(listed.URL)
	if s.Volunteers(&url.URL{Scheme: "https", Host: u.Host}) || !s.Volunteers(u) {
		t.Fatal("Volunteers must be true for the listed origin only (scheme and port included)")
	}
	space := anyauth.ProtectionSpace{Proxy: true, URLScheme: "http", Host: u.Hostname(), Port: u.Port(), AuthScheme: Name}
	if _, err := s.Begin(context.Background(), &anyauth.Challenge{Scheme: Name}, &anyauth.Attempt{Space: space, Logger: slog.New(slog.DiscardHandler)}); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Fatalf("Begin for a proxy: %v, want ErrNoCredentials", err)
	}
}

// TestWhatIsSigned: hop-by-hop headers and the headers the SDK never signs
// are left out; end-to-end ones are signed; the query is sent as signed;
// a session token is sent and signed.
func TestWhatIsSigned(t *testing.T) {
	r := newRecorder(t, false)
	s := New("eu-west-1", "execute-api", StaticCredentials("ASIATEST", "secret-key-never-shown", "session-token"), r.URL)
	req, _ := http.NewRequest(http.MethodPost, r.URL+"/p/a%20b?b=2&a=1&c=%7e&d=x+y", strings.NewReader(`{"a":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Amz-Meta-Thing", "v")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("User-Agent", "test")
	req.Header.Set("X-Amz-Date", "19700101T000000Z") // replaced
	resp, err := transportFor(r, s).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := r.last(t)
	if h, want := signedHeaders(got.Header.Get("Authorization")), "content-length;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-thing;x-amz-security-token"; h != want {
		t.Fatalf("SignedHeaders=%s, want %s", h, want)
	}
	if got.Header.Get("X-Amz-Security-Token") != "session-token" || got.Header.Get("X-Amz-Date") == "19700101T000000Z" {
		t.Fatalf("X-Amz-Security-Token %q, X-Amz-Date %q", got.Header.Get("X-Amz-Security-Token"), got.Header.Get("X-Amz-Date"))
	}
	if got.URL.RawQuery != "a=1&b=2&c=~&d=x%20y" {
		t.Fatalf("query sent as %q, want the canonical form it was signed in", got.URL.RawQuery)
	}

	// A query Go cannot parse whole is refused rather than signed in
	// part.
	req, _ = http.NewRequest(http.MethodGet, r.URL+"/?a=1;b=2", nil)
	if _, err := transportFor(r, s).RoundTrip(req); err == nil || !strings.Contains(err.Error(), "sigv4:") {
		t.Fatalf("a query with ';': %v, want a sigv4 error", err)
	}
}

// TestPayloadModes: the hash of a body with GetBody; UNSIGNED-PAYLOAD for
// a stream with PayloadUnsigned, and with PayloadAuto over https only;
// PayloadSigned refuses a stream it cannot read first; a caller's
// X-Amz-Content-Sha256 is kept and the body not read for it.
func TestPayloadModes(t *testing.T) {
	plain, tls := newRecorder(t, false), newRecorder(t, true)
	large := bytes.Repeat([]byte("x"), 128<<10)
	stream := func() io.Reader { return io.MultiReader(bytes.NewReader(large)) }
	for _, c := range []struct {
		name    string
		srv     *recorder
		payload Payload
		body    func() io.Reader
		header  string
		want    string // X-Amz-Content-Sha256, or "error"
	}{
		{"GetBody", plain, PayloadAuto, func() io.Reader { return bytes.NewReader([]byte("hello")) }, "", "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"},
		{"no body", plain, PayloadUnsigned, nil, "", EmptyPayloadHash},
		{"stream unsigned", plain, PayloadUnsigned, stream, "", UnsignedPayload},
		{"stream auto http", plain, PayloadAuto, stream, "", "error"},
		{"stream auto https", tls, PayloadAuto, stream, "", UnsignedPayload},
		{"stream signed https", tls, PayloadSigned, stream, "", "error"},
		{"caller's hash", plain, PayloadSigned, stream, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := testSigner(c.srv.URL)
			s.Payload = c.payload
			tr := transportFor(c.srv, s)
			tr.MaxBodyBuffer = 64 << 10
			var body io.Reader
			if c.body != nil {
				body = c.body()
			}
			req, _ := http.NewRequest(http.MethodPut, c.srv.URL+"/o", body)
			if c.header != "" {
				req.Header.Set("X-Amz-Content-Sha256", c.header)
			}
			resp, err := tr.RoundTrip(req)
			if c.want == "error" {
				if err == nil {
					resp.Body.Close()
					t.Fatal("no error")
				}
				if !errors.Is(err, anyauth.ErrBodyNotReplayable) || !strings.Contains(err.Error(), "sigv4:") {
					t.Fatalf("error %v, want a sigv4 error wrapping ErrBodyNotReplayable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := c.srv.last(t).Header.Get("X-Amz-Content-Sha256"); got != c.want {
				t.Fatalf("X-Amz-Content-Sha256 %q, want %q", got, c.want)
			}
		})
	}
}

// TestConfigErrors: a Signer that cannot sign fails its requests with an
// error wrapping ErrInvalidConfig; nothing goes unsigned.
func TestConfigErrors(t *testing.T) {
	r := newRecorder(t, false)
	for name, s := range map[string]*Signer{
		"no region":      New("", "s3", StaticCredentials("A", "B", ""), r.URL),
		"no service":     New("us-east-1", "", StaticCredentials("A", "B", ""), r.URL),
		"no credentials": New("us-east-1", "s3", nil, r.URL),
		"bad payload":    {Origins: anyauth.Origins{r.URL}, Region: "us-east-1", Service: "s3", Credentials: StaticCredentials("A", "B", ""), Payload: 7},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.URL, nil)
		_, err := transportFor(r, s).RoundTrip(req)
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v, want ErrInvalidConfig", name, err)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, r.URL, nil)
	if _, err := transportFor(r, New("us-east-1", "s3", StaticCredentials("", "", ""), r.URL)).RoundTrip(req); !errors.Is(err, anyauth.ErrNoCredentials) {
		t.Errorf("empty keys: %v, want ErrNoCredentials", err)
	}
	if len(r.reqs) != 0 {
		t.Fatalf("%d requests went out", len(r.reqs))
	}
}

// TestRedaction: the secret key and session token appear in no printed
// form of the Signer, its credentials, sessions or legs.
func TestRedaction(t *testing.T) {
	const secret, token = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "SESSIONTOKEN123"
	s := New("us-east-1", "s3", StaticCredentials("AKID", secret, token), "https://s3.us-east-1.amazonaws.com")
	sess, err := s.Begin(context.Background(), &anyauth.Challenge{Scheme: Name}, &anyauth.Attempt{
		Space:  anyauth.ProtectionSpace{URLScheme: "https", Host: "s3.us-east-1.amazonaws.com", Port: "443", AuthScheme: Name, Path: "/"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := sess.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{s, s.Credentials, sess, l, struct{ S *Signer }{s}, []any{s.Credentials}} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(out, secret) || strings.Contains(out, token) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
				t.Fatalf("%s of %T shows a secret: %s", verb, v, out)
			}
		}
	}
}

func TestParseCurl(t *testing.T) {
	for spec, want := range map[string]string{
		"aws:amz:us-east-1:s3":          "us-east-1/s3",
		"AWS:AMZ:eu-west-1:execute-api": "eu-west-1/execute-api",
		"aws:amz:us-east-1":             "",
		"osc:osc:eu-west-2:api":         "",
		"aws:amz::s3":                   "",
		"aws:amz:us east:s3":            "",
	} {
		region, service, err := ParseCurl(spec)
		got := region + "/" + service
		if err != nil {
			got = ""
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("ParseCurl(%q): %v does not wrap ErrInvalidConfig", spec, err)
			}
		}
		if got != want {
			t.Errorf("ParseCurl(%q) = %q (%v), want %q", spec, got, err, want)
		}
	}
}
