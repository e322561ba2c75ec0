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

// Two more misconfigurations that used to look like any 401: a Bearer
// with no origins fails saying so, and a CredentialTable given as
// ProxyCredentials whose entries forgot Proxy: true is named in the Warn
// log.
func TestMisconfigurationsSpeak(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Bearer realm="api"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.NewStaticBearer("tok")}}
	_, err := tr.RoundTrip(httptestGet(srv.URL))
	if err == nil || !strings.Contains(err.Error(), "Bearer.Origins is empty") {
		t.Fatalf("Bearer without origins: %v, want an error saying so", err)
	}

	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="corp"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	defer proxy.Close()
	var buf bytes.Buffer
	proxyURL := mustURL(proxy.URL)
	tr = &anyauth.Transport{
		Base:             &http.Transport{Proxy: http.ProxyURL(proxyURL)},
		Schemes:          []anyauth.Scheme{schemes.Basic{}},
		ProxyCredentials: anyauth.CredentialTable{{Host: proxyURL.Host, UserPassword: anyauth.UserPassword{Username: "u", Password: "p"}}},
		Logger:           slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	resp, err := tr.RoundTrip(httptestGet("http://example.invalid/x"))
	if err != nil || resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("%v %v, want the proxy's 407", resp, err)
	}
	resp.Body.Close()
	if !strings.Contains(buf.String(), "set Proxy: true") {
		t.Fatalf("log:\n%s\nwant the Warn to say the entries are for origins", buf.String())
	}
}
