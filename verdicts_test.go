package anyauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// verdictRecorder is a CredentialVerdicts that gives alice's password and
// records what became of it.
type verdictRecorder struct {
	password string
	mu       sync.Mutex
	log      []string
}

func (v *verdictRecorder) Credentials(context.Context, *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	return &anyauth.UserPassword{Username: "alice", Password: v.password}, nil
}

func (v *verdictRecorder) Accepted(_ context.Context, s *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.log = append(v.log, "accepted "+up.Username+" "+s.Realm)
}

func (v *verdictRecorder) Refused(_ context.Context, s *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.log = append(v.log, "refused "+up.Username+" "+s.Realm)
}

// TestCredentialVerdicts: a provider that is a CredentialVerdicts hears
// once that a fresh answer was accepted (not again for answers from the
// cache), and that a wrong password was refused; through a Chain too.
func TestCredentialVerdicts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "right" {
			w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
			w.WriteHeader(401)
		}
	}))
	defer srv.Close()
	for _, tc := range []struct {
		password string
		want     string
	}{{"right", "accepted alice r"}, {"wrong", "refused alice r"}} {
		v := &verdictRecorder{password: tc.password}
		for _, provider := range []anyauth.CredentialProvider{v, anyauth.Chain{v}} {
			v.log = nil
			tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: provider}
			for range 3 {
				resp, err := tr.RoundTrip(mustRequest(t, srv.URL+"/x"))
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			v.mu.Lock()
			got := v.log
			v.mu.Unlock()
			want := 1
			if tc.password == "wrong" {
				want = 3 // each request is challenged and refused anew
			}
			if len(got) != want || got[0] != tc.want {
				t.Errorf("%T, password %s: verdicts %q, want %d x %q", provider, tc.password, got, want, tc.want)
			}
		}
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
