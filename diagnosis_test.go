package anyauth_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
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
