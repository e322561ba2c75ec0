package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anyauth/anyauth/internal/testserver"
)

// fetch -bearer and the -oauth2-* flags against Apache mod_auth_openidc,
// which validates the JWTs minted here.
func TestFetchBearerAgainstOpenIDC(t *testing.T) {
	srv := sharedOpenIDC(t)
	url := srv.URL + testserver.PathBearer + "whoami"
	valid := testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": time.Now().Add(time.Hour).Unix()})

	var out, errOut bytes.Buffer
	if code := run([]string{"-bearer", valid, "-n", "2", url}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != testserver.User {
		t.Fatalf("-bearer: exit %d, out %q\n%s", code, out.String(), errOut.String())
	}
	if strings.Contains(errOut.String(), valid) {
		t.Fatal("the token was printed")
	}

	// Client credentials: the first token is already expired for the
	// server, so it is refused with invalid_token and fetched again.
	var fetches atomic.Int64
	issuer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if id, secret, ok := r.BasicAuth(); !ok || id != "cli" || secret != "cli-secret" || r.Form.Get("scope") != "read write" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		exp := time.Now().Add(time.Hour)
		if fetches.Add(1) == 1 {
			exp = time.Now().Add(-time.Minute)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": testserver.MintHS256(map[string]any{"sub": testserver.User, "exp": exp.Unix()}),
			"token_type":   "Bearer", "expires_in": 3600,
		})
	}))
	defer issuer.Close()
	out.Reset()
	errOut.Reset()
	args := []string{"-v", "-oauth2-token-url", issuer.URL, "-oauth2-client", "cli:cli-secret", "-oauth2-scope", "read,write", url}
	if code := run(args, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != testserver.User {
		t.Fatalf("-oauth2-*: exit %d, out %q\n%s", code, out.String(), errOut.String())
	}
	trace := errOut.String()
	if fetches.Load() != 2 || strings.Count(trace, "bearer token fetch") != 2 || !strings.Contains(trace, "invalid_token") {
		t.Fatalf("%d fetches; trace:\n%s", fetches.Load(), trace)
	}
}
