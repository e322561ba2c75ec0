package credhelper_test

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// A GOAUTH command prints URL prefixes and the headers for them; the
// scheme of GoAuth.Schemes sends those headers to https requests under
// the prefixes, from the first request.
func ExampleParseGoAuth() {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "X-Token: %s", r.Header.Get("X-Token"))
	}))
	defer srv.Close()

	// GOAUTH="sh -c '...'": one block, one prefix, one header.
	goauth := fmt.Sprintf(`sh -c 'printf "%%s\n\nX-Token: example\n\n" %s/api/'`, srv.URL)
	g, err := credhelper.ParseGoAuth(goauth, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	client := &http.Client{Transport: &anyauth.Transport{
		Base:        srv.Client().Transport,
		Schemes:     append([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}, g.Schemes()...),
		Credentials: g, // GOAUTH's netrc and git entries: none here
	}}
	for _, path := range []string{"/api/items", "/elsewhere"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			fmt.Println(err)
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s: %s\n", path, body)
	}
	// Output:
	// /api/items: X-Token: example
	// /elsewhere: X-Token:
}

// Git's credential helpers answer the challenges of the origins named,
// and learn whether their credentials worked: the Transport tells Git,
// which runs "git credential approve" after a success and "git credential
// reject" after a refusal.
func ExampleGit() {
	git := &credhelper.Git{Origins: anyauth.Origins{"https://git.example.com"}}
	client := &http.Client{Transport: &anyauth.Transport{
		// WithChallenges is optional: it hands git the whole challenge
		// as a wwwauth[] line, rather than its scheme and realm.
		Schemes:     credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}),
		Credentials: git,
	}}
	_ = client // client.Get("https://git.example.com/org/repo.git/info/refs?service=git-upload-pack")
}

// A registry's credentials, from the helper docker login stored them
// with.
func ExampleDocker() {
	docker := &credhelper.Docker{Helper: "pass", Registries: []string{"registry.example.com"}}
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes: []anyauth.Scheme{schemes.Basic{}},
		// A refusal makes docker ask the helper again (the Chain passes
		// the Transport's verdicts on).
		Credentials: anyauth.Chain{docker, anyauth.NetrcFromEnv()},
	}}
	_ = client // client.Get("https://registry.example.com/v2/")
}

// Docker's config.json answers a registry's challenge as the docker CLI
// would: here with its auths entry, as docker login leaves it when no
// credential helper is configured.
func ExampleDockerConfig() {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); ok && user == "alice" && pass == "s3cret" {
			fmt.Fprintf(w, "hello %s", user)
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	registry := strings.TrimPrefix(srv.URL, "https://") // 127.0.0.1:PORT

	dir, err := os.MkdirTemp("", "docker-config")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.json")
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	config := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, "https://"+registry, auth)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		fmt.Println(err)
		return
	}

	// credhelper.DockerConfigFromEnv("registry.example.com") reads the
	// docker CLI's own file, $DOCKER_CONFIG/config.json or
	// ~/.docker/config.json.
	docker := &credhelper.DockerConfig{Path: path, Registries: []string{registry}}
	client := &http.Client{Transport: &anyauth.Transport{
		Base:        srv.Client().Transport,
		Schemes:     []anyauth.Scheme{schemes.Basic{}},
		Credentials: docker, // Refused: the file is read again
	}}
	resp, err := client.Get(srv.URL + "/v2/")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.Status, string(body))
	// Output: 200 OK hello alice
}
