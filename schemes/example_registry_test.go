package schemes_test

import (
	"fmt"
	"net/http"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
	"github.com/anyauth/anyauth/schemes"
)

// A client for Docker Hub with the user's docker login: the registry's
// Bearer challenge names the token server auth.docker.io, which Realms
// allows to receive the credentials that credhelper.DockerConfig reads
// from config.json (a credential helper or auths). Without a login, public
// repositories are pulled with anonymous tokens.
func ExampleRegistry() {
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes:     []anyauth.Scheme{&schemes.Registry{Realms: anyauth.Origins{"https://auth.docker.io"}}},
		Credentials: credhelper.DockerConfigFromEnv("registry-1.docker.io"),
	}}
	req, _ := http.NewRequest("GET", "https://registry-1.docker.io/v2/library/alpine/manifests/latest", nil)
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json")
	resp, err := client.Do(req)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	fmt.Println(resp.Status, resp.Header.Get("Docker-Content-Digest"))
}
