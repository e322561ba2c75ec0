package awsdefault_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/sigv4/awsdefault"
)

// The default chain takes the keys and region from the environment (no
// shared files, no instance metadata), and the Signer signs with them.
func TestSignerFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENV")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-from-env")
	t.Setenv("AWS_SESSION_TOKEN", "token-from-env")
	t.Setenv("AWS_REGION", "eu-central-1")

	var auth, token string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth, token = r.Header.Get("Authorization"), r.Header.Get("X-Amz-Security-Token")
	}))
	defer srv.Close()
	s, err := awsdefault.Signer(context.Background(), "", "s3", srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{s}}}).Get(srv.URL + "/b/k")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDFROMENV/") || !strings.Contains(auth, "/eu-central-1/s3/aws4_request") || token != "token-from-env" {
		t.Fatalf("Authorization %q, X-Amz-Security-Token %q", auth, token)
	}

	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	if _, err := awsdefault.Signer(context.Background(), "", "s3", srv.URL); err == nil {
		t.Fatal("no region: no error")
	}
}
