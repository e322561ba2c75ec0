package schemes

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestDigestGoHTTPBin answers the Digest endpoints of go-httpbin (an
// independent server implementation, in process): MD5 and SHA-256 with
// qop=auth, five requests each for one 401, and a wrong password
// refused. (This go-httpbin has no SHA-512 endpoint.)
func TestDigestGoHTTPBin(t *testing.T) {
	var challenges atomic.Int64
	hb := httpbin.New()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &statusRecorder{ResponseWriter: w}
		hb.ServeHTTP(cw, r)
		if cw.status == http.StatusUnauthorized {
			challenges.Add(1)
		}
	}))
	defer srv.Close()
	for _, alg := range []string{"MD5", "SHA-256"} {
		challenges.Store(0)
		base := &http.Transport{}
		defer base.CloseIdleConnections()
		c := &http.Client{Transport: &anyauth.Transport{
			Base:        base,
			Schemes:     []anyauth.Scheme{Digest{}},
			Credentials: anyauth.ForOrigin(srv.URL, "Mufasa", "Circle of Life"),
		}}
		for i := 0; i < 5; i++ {
			resp, err := c.Get(srv.URL + "/digest-auth/auth/Mufasa/Circle%20of%20Life/" + alg)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				Authenticated bool   `json:"authenticated"`
				User          string `json:"user"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 200 || !body.Authenticated || body.User != "Mufasa" {
				t.Fatalf("%s request %d: %d %+v %v", alg, i, resp.StatusCode, body, err)
			}
		}
		if n := challenges.Load(); n != 1 {
			t.Errorf("%s: %d challenges for 5 requests, want 1", alg, n)
		}
		// The server does check: a wrong password ends with its 401.
		wrong := &http.Client{Transport: &anyauth.Transport{
			Base:        base,
			Schemes:     []anyauth.Scheme{Digest{}},
			Credentials: anyauth.ForOrigin(srv.URL, "Mufasa", "circle of life"),
		}}
		resp, err := wrong.Get(srv.URL + "/digest-auth/auth/Mufasa/Circle%20of%20Life/" + alg)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: wrong password got %d", alg, resp.StatusCode)
		}
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}
