package anyauth_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// TestNoSecretInLogsErrorsOrValues runs Basic and Digest flows, a
// rejection and the error paths with a Debug logger, then scans every log
// line, every error string and every rendering of the values involved for
// the password and what is derived from it.
func TestNoSecretInLogsErrorsOrValues(t *testing.T) {
	const user, pass = "alice", "Pa55-w0rd-XYZZY"
	srv := httptest.NewServer(httpbin.New())
	defer srv.Close()
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	creds := anyauth.ForOrigin(srv.URL, user, pass)
	tr := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, Credentials: creds, Logger: logger, MaxBodyBuffer: 16}
	var errs []error
	do := func(method, path string, body io.Reader) {
		req, _ := http.NewRequest(method, srv.URL+path, body)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			errs = append(errs, err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	do("GET", "/basic-auth/alice/"+pass, nil)
	do("GET", "/basic-auth/alice/"+pass, nil)
	do("GET", "/digest-auth/auth/alice/"+pass+"/SHA-256", nil)
	do("GET", "/digest-auth/auth/alice/"+pass+"/MD5", nil)
	do("GET", "/digest-auth/auth/alice/other-password/MD5", nil)                                // rejected
	do("POST", "/basic-auth/bob/x", io.MultiReader(strings.NewReader(strings.Repeat("z", 64)))) // not replayable
	// Cleartext refusal: a non-loopback name.
	remote := &anyauth.Transport{Schemes: []anyauth.Scheme{schemes.Basic{}}, Credentials: anyauth.ForOrigin("http://remote.example", user, pass), Logger: logger,
		Base: rewriteHost{to: srv.Listener.Addr().String()}}
	req, _ := http.NewRequest("GET", "http://remote.example/basic-auth/alice/x", nil)
	if _, err := remote.RoundTrip(req); err != nil {
		errs = append(errs, err)
	}
	if len(errs) < 2 {
		t.Fatalf("expected the body and cleartext errors, got %v", errs)
	}

	secrets := map[string]string{
		"password":         pass,
		"Basic credential": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		"MD5 HA1":          hexOf(md5.Sum([]byte(user + ":go-httpbin:" + pass))),
		"SHA-256 HA1":      hexOf(sha256.Sum256([]byte(user + ":go-httpbin:" + pass))),
	}
	// The password is in the URL path of go-httpbin's endpoints; the logs
	// carry paths, so scan them for the derived secrets and the
	// credential renderings for all.
	for _, line := range strings.Split(logs.String(), "\n") {
		for name, s := range secrets {
			if name != "password" && strings.Contains(line, s) {
				t.Errorf("log line holds the %s: %s", name, line)
			}
		}
	}
	if !strings.Contains(logs.String(), "chosen") || !strings.Contains(logs.String(), "ranking") {
		t.Fatalf("the trace is missing records:\n%s", logs.String())
	}
	var rendered []string
	for _, e := range errs {
		rendered = append(rendered, e.Error(), fmt.Sprintf("%+v", e))
	}
	for _, v := range []any{tr, creds, *creds, creds.UserPassword, remote} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			rendered = append(rendered, fmt.Sprintf(verb, v))
		}
	}
	for _, r := range rendered {
		for name, s := range secrets {
			if strings.Contains(r, s) {
				t.Errorf("rendering holds the %s: %s", name, r)
			}
		}
	}
}

func hexOf[T [16]byte | [32]byte](b T) string {
	switch x := any(b).(type) {
	case [16]byte:
		return hex.EncodeToString(x[:])
	case [32]byte:
		return hex.EncodeToString(x[:])
	}
	return ""
}

// rewriteHost sends every request to one address, keeping its Host.
type rewriteHost struct{ to string }

func (r rewriteHost) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req.Clone(req.Context())
	out.URL.Host = r.to
	return http.DefaultTransport.RoundTrip(out)
}
