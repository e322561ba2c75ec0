package anyauth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// A challenge that goes unanswered comes back untouched, and a Diagnosis
// in the request's context says which scheme skipped it and why.
func TestDiagnosisSaysWhyAChallengeWentUnanswered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin("https://elsewhere.example", "u", "p")}
	var d anyauth.Diagnosis
	req, _ := http.NewRequestWithContext(anyauth.WithDiagnosis(context.Background(), &d), "GET", srv.URL, nil)
	resp, err := tr.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%v %v, want the 401", resp, err)
	}
	resp.Body.Close()
	skips := d.Skipped()
	if len(skips) != 1 || skips[0].Scheme != "Basic" || skips[0].Space.Realm != "r" || !errors.Is(d.Err(), anyauth.ErrNoCredentials) {
		t.Fatalf("skipped %+v, err %v; want Basic realm r without credentials", skips, d.Err())
	}
	// Without a Diagnosis nothing is recorded anywhere, and nothing fails.
	resp, err = tr.RoundTrip(httptestGet(srv.URL))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("%v %v", resp, err)
	}
	resp.Body.Close()
}

func httptestGet(url string) *http.Request {
	req, _ := http.NewRequest("GET", url, nil)
	return req
}

// Misconfiguration speaks: a challenge that goes back unanswered is
// logged at Warn with the reason, once per origin, challenge and reason.
// Here ForOrigin names localhost and the request goes to 127.0.0.1.
func TestUnansweredChallengeIsLoggedAtWarnOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	var buf bytes.Buffer
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	tr := &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Basic{}},
		Credentials: anyauth.ForOrigin("http://localhost:"+port, "u", "p"),
		Logger:      slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for range 3 {
		resp, err := tr.RoundTrip(httptestGet(srv.URL + "/x"))
		if err != nil || resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%v %v", resp, err)
		}
		resp.Body.Close()
	}
	log := buf.String()
	if strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "no credentials for the protection space") ||
		!strings.Contains(log, "is not http://localhost:"+port) || strings.Contains(log, "p\"") {
		t.Fatalf("log:\n%s\nwant one Warn naming the reason and the origin mismatch", log)
	}
	t.Logf("%s", log)
}
