package anyauth_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// endlessBody is a 401 body that never ends.
type endlessBody struct{ read atomic.Int64 }

func TestEndless401BodyReadOnlyALittle(t *testing.T) {
	body := &endlessBody{}
	calls := 0
	base := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		calls++
		if calls == 1 {
			resp := fakeResponse(r, 401, "", "WWW-Authenticate", `Basic realm="r"`)
			resp.Body = body
			return resp, nil
		}
		return fakeResponse(r, 200, "ok"), nil
	})
	tr := &anyauth.Transport{Base: base, Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyCreds()}
	if code, _ := get(t, tr, "http://127.0.0.1:9/"); code != 200 {
		t.Fatalf("status %d", code)
	}
	if n := body.read.Load(); n > 128<<10 {
		t.Fatalf("read %d bytes of an endless 401 body", n)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

// fakeResponse answers r with status, the given header lines
// ("Name", "value", ...) and body.
func fakeResponse(r *http.Request, status int, body string, header ...string) *http.Response {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}
}

// a 401 body that drips slowly does not hold the replay.
func TestSlowDrippingChallengeBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == testUser && p == testPass {
			fmt.Fprint(w, "in")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(401)
		for range 100 {
			if _, err := w.Write([]byte("x")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin(srv.URL, testUser, testPass)}
	start := time.Now()
	if code, body := get(t, tr, srv.URL+"/"); code != 200 || body != "in" {
		t.Fatalf("%d %q", code, body)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("took %v: the drip held the replay (it lasts 5 s)", took)
	}
}

func (e *endlessBody) Read(p []byte) (int, error) {
	e.read.Add(int64(len(p)))
	return len(p), nil
}

func (e *endlessBody) Close() error { return nil }

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
