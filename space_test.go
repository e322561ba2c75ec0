package anyauth_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// scope compares resolved paths: /a/../b/x is in /b/.
func TestPathScopeIsResolved(t *testing.T) {
	var mu sync.Mutex
	sentToB := []string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean(r.URL.Path) // as a server resolves it
		realm := "A"
		if strings.HasPrefix(p, "/b/") {
			realm = "B"
			mu.Lock()
			sentToB = append(sentToB, r.Header.Get("Authorization"))
			mu.Unlock()
		}
		if u, _, ok := r.BasicAuth(); ok && u == "user-"+realm {
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="`+realm+`"`)
		w.WriteHeader(401)
	}))
	defer srv.Close()
	perRealm := anyauth.CredentialFunc(func(_ context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		return &anyauth.UserPassword{Username: "user-" + s.Realm, Password: "pw-" + s.Realm}, nil
	})
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: perRealm}
	get(t, tr, srv.URL+"/a/x") // caches realm A at /a/
	req, _ := http.NewRequest("GET", srv.URL+"/a/../b/x", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mu.Lock()
	defer mu.Unlock()
	if resp.StatusCode != 200 || len(sentToB) == 0 || sentToB[0] != "" {
		t.Fatalf("status %d; /b/ received %q first: realm A's credentials followed a textual prefix", resp.StatusCode, sentToB)
	}
}
