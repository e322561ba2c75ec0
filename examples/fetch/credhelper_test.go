package main

import (
	"bytes"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// -git-credential answers the URL's origin with git's credential helpers
// (credential-store in a temporary HOME), which forget a refused
// password, and -goauth with GOAUTH's command, whose headers go to https
// only.
func TestFetchCredentialHelpers(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, ".gitconfig"))
	t.Setenv("GIT_ASKPASS", "")
	t.Setenv("NETRC", filepath.Join(home, "no-netrc"))
	if out, err := exec.Command("git", "config", "--global", "credential.helper", "store").CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.Header.Get("X-Token"); tok != "" {
			fmt.Fprintf(w, "token %s", tok)
			return
		}
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "git-pw" {
			fmt.Fprint(w, "hello alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="r"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	ca := filepath.Join(home, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	os.WriteFile(filepath.Join(home, ".git-credentials"), []byte(strings.Replace(srv.URL, "https://", "https://alice:git-pw@", 1)+"\n"), 0o600)

	run1 := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-cacert", ca}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	if code, out, errOut := run1("-git-credential", srv.URL+"/repo"); code != 0 || out != "hello alice" {
		t.Errorf("-git-credential: exit %d, %q\n%s", code, out, errOut)
	}
	if code, out, _ := run1(srv.URL + "/repo"); code != 1 || out == "hello alice" {
		t.Errorf("without -git-credential: exit %d, %q", code, out)
	}

	script := filepath.Join(home, "goauth-cmd")
	os.WriteFile(script, []byte(fmt.Sprintf("#!/bin/sh\nprintf '%%s/api/\\n\\nX-Token: from-goauth\\n\\n' %q\n", srv.URL)), 0o755)
	t.Setenv("GOAUTH", script+";git "+home)
	if code, out, errOut := run1("-goauth", srv.URL+"/api/x"); code != 0 || out != "token from-goauth" {
		t.Errorf("-goauth command: exit %d, %q\n%s", code, out, errOut)
	}
	if code, out, errOut := run1("-goauth", srv.URL+"/repo"); code != 0 || out != "hello alice" {
		t.Errorf("-goauth git: exit %d, %q\n%s", code, out, errOut)
	}

	// A refused password: the Transport tells git through fetch's Chain,
	// and git credential reject erases it from credential-store.
	store := filepath.Join(home, ".git-credentials")
	os.WriteFile(store, []byte(strings.Replace(srv.URL, "https://", "https://alice:wrong-pw@", 1)+"\n"), 0o600)
	if code, out, _ := run1("-git-credential", srv.URL+"/repo"); code != 1 || out == "hello alice" {
		t.Errorf("-git-credential, wrong password: exit %d, %q", code, out)
	}
	if b, _ := os.ReadFile(store); strings.Contains(string(b), "wrong-pw") {
		t.Errorf("-git-credential: credential-store still holds the refused password: %q", b)
	}

	t.Setenv("GOAUTH", "off;netrc")
	if code, _, errOut := run1("-goauth", srv.URL+"/repo"); code != 2 || !strings.Contains(errOut, "-goauth: credhelper: GOAUTH=off cannot be combined") {
		t.Errorf("bad GOAUTH: exit %d\n%s", code, errOut)
	}
}

// -docker-config answers the URL's registry from $DOCKER_CONFIG/config.json
// as the docker CLI does: its auths entry, or, when credsStore names a
// helper, the helper and not the auths entry.
func TestFetchDockerConfig(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("NETRC", filepath.Join(home, "no-netrc"))
	t.Setenv("DOCKER_CONFIG", home)
	helpers, err := filepath.Abs(filepath.Join("..", "..", "credhelper", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", helpers+string(os.PathListSeparator)+os.Getenv("PATH"))
	log := filepath.Join(home, "helper.log")
	t.Setenv("DOCKER_HELPER_LOG", log)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret-docker" { // docker-credential-test's
			fmt.Fprint(w, "hello alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	ca := filepath.Join(home, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	run1 := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(append([]string{"-cacert", ca}, args...), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	config := func(credsStore, pass string) {
		auth := base64.StdEncoding.EncodeToString([]byte("alice:" + pass))
		os.WriteFile(filepath.Join(home, "config.json"), fmt.Appendf(nil, `{"credsStore": %q, "auths": {%q: {"auth": %q}}}`, credsStore, srv.URL, auth), 0o600)
	}

	config("", "s3cret-docker")
	if code, out, errOut := run1("-docker-config", srv.URL+"/v2/"); code != 0 || out != "hello alice" {
		t.Errorf("-docker-config, auths: exit %d, %q\n%s", code, out, errOut)
	}
	if code, out, _ := run1(srv.URL + "/v2/"); code != 1 || out == "hello alice" {
		t.Errorf("without -docker-config: exit %d, %q", code, out)
	}
	config("test", "wrong-pw")
	if code, out, errOut := run1("-docker-config", srv.URL+"/v2/"); code != 0 || out != "hello alice" {
		t.Errorf("-docker-config, credsStore: exit %d, %q\n%s", code, out, errOut)
	}
	if b, _ := os.ReadFile(log); string(b) != "get "+strings.TrimPrefix(srv.URL, "https://")+"\n" {
		t.Errorf("helper runs: %q, want one for the URL's registry", b)
	}
}
