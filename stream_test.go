package anyauth_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// a body with neither GetBody nor Seek is streamed at once and
// teed into the replay buffer, never read ahead of the request.

func streamTransport(srv *httptest.Server) *anyauth.Transport {
	return &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
}

// A slow producer does not delay the request headers.
func TestSlowStreamHeadersGoAtOnce(t *testing.T) {
	arrived := make(chan time.Time, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- time.Now()
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	go func() {
		for range 20 {
			time.Sleep(100 * time.Millisecond)
			pw.Write([]byte("x"))
		}
		pw.Close()
	}()
	start := time.Now()
	req, _ := http.NewRequest("POST", srv.URL+"/upload", pr)
	resp, err := streamTransport(srv).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := (<-arrived).Sub(start); d > 500*time.Millisecond {
		t.Fatalf("headers arrived after %v; the producer takes 2 s", d)
	}
}

// A server that answers before reading the body gets its answer to the
// caller at once, though the body still blocks.
func TestEarlyResponseWhileBodyBlocks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Connection: close, so that the server answers without draining
		// the body first.
		w.Header().Set("Connection", "close")
		io.WriteString(w, "early")
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	pw2 := make(chan struct{})
	go func() { pw.Write([]byte("first bytes")); close(pw2) }()
	req, _ := http.NewRequest("POST", srv.URL+"/x", pr)
	start := time.Now()
	resp, err := streamTransport(srv).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "early" || time.Since(start) > time.Second {
		t.Fatalf("%q after %v", b, time.Since(start))
	}
}

// A deadline is honoured while the body has not produced a byte.
func TestStalledStreamHonoursDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/x", pr)
	start := time.Now()
	_, err := streamTransport(srv).RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err = %v after %v", err, time.Since(start))
	}
}

// A full-duplex exchange: the server answers each line as it comes.
func TestFullDuplexStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			io.WriteString(w, "echo "+sc.Text()+"\n")
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/chat", pr)
	go pw.Write([]byte("ping\n"))
	resp, err := streamTransport(srv).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for _, msg := range []string{"ping", "pong"} {
		if msg == "pong" {
			go pw.Write([]byte("pong\n"))
		}
		line, err := rd.ReadString('\n')
		if err != nil || line != "echo "+msg+"\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	}
	pw.Close()
}

// headerScheme volunteers a fixed header from the first request, on a
// leg that is a RetryingLeg and never asks to retry.
type headerScheme struct{}

func (headerScheme) Name() string                                         { return "X-Test" }
func (headerScheme) Traits() anyauth.Traits                               { return anyauth.Traits{} }
func (headerScheme) Strength(*anyauth.Challenge) (anyauth.Strength, bool) { return 1, true }
func (headerScheme) Volunteers(*url.URL) bool                             { return true }
func (headerScheme) Begin(context.Context, *anyauth.Challenge, *anyauth.Attempt) (anyauth.Session, error) {
	return headerSession{}, nil
}

type headerSession struct{}

func (headerSession) Start(context.Context, *http.Request) (anyauth.Leg, error) {
	return headerLeg{}, nil
}

type headerLeg struct{}

func (headerLeg) Apply(req *http.Request) error { req.Header.Set("X-Test", "1"); return nil }
func (headerLeg) Continue(context.Context, *http.Response, *anyauth.Challenge) (bool, error) {
	return false, nil
}
func (headerLeg) Finish(*http.Response) error { return nil }
func (headerLeg) RetryAfterResponse(context.Context, *http.Response, func(int) ([]byte, error)) (bool, error) {
	return false, nil
}

// TestFullDuplexStreamWithRetryingLeg: a full-duplex stream answered by a
// RetryingLeg that does not want the request again goes on after the
// response's headers: the Transport asks the Leg before it asks the body
// whether it can be replayed (which would end the stream's attempt).
func TestFullDuplexStreamWithRetryingLeg(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		sc := bufio.NewScanner(r.Body)
		for sc.Scan() {
			io.WriteString(w, "echo "+sc.Text()+" "+r.Header.Get("X-Test")+"\n")
			w.(http.Flusher).Flush()
		}
	}))
	defer srv.Close()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/chat", pr)
	go pw.Write([]byte("ping\n"))
	resp, err := (&anyauth.Transport{Schemes: []anyauth.Scheme{headerScheme{}}}).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	for _, msg := range []string{"ping", "pong"} {
		if msg == "pong" {
			go pw.Write([]byte("pong\n"))
		}
		line, err := rd.ReadString('\n')
		if err != nil || line != "echo "+msg+" 1\n" {
			t.Fatalf("got %q, %v", line, err)
		}
	}
	pw.Close()
}
