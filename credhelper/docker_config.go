package credhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
)

// DockerConfig is a CredentialProvider that answers a registry's Basic
// (or Digest) challenges from Docker's config.json, as the docker CLI
// does: with the credential helper that credHelpers names for the
// registry, else with the credsStore helper, else, when neither is set
// (or the registry's credHelpers entry is ""), with its auths entry ("auth", the base64 of
// "user:password", or "username" and "password"). As in docker, a helper
// that has nothing for the registry answers nothing: the auths entry is
// not tried then. An auths entry with an "identitytoken" answers nothing
// either: the token is not a password.
//
// The registry is known by the server address docker login stores (see
// Docker): "registry.example.com", "localhost:5000", or
// "https://index.docker.io/v1/" for Docker Hub. A credHelpers key must
// be that address exactly, as docker looks it up; an auths key may also
// carry a scheme or a path ("https://registry.example.com/v1/"), as
// docker's ConvertToHostname drops them. DockerConfig does not guess a
// platform's default helper when the file names none (docker's
// DetectDefaultStore), nor read DOCKER_AUTH_CONFIG or ~/.dockercfg.
//
// It answers the registries listed in Registries only, never a proxy:
// a helper is never run, and no auths entry is sent, for a registry the
// user did not list, whatever the file holds.
//
// The file is read at the first question about a listed registry, and
// again when its size, modification time or inode changed; a file that
// does not exist holds no credentials, and one that does not parse is an
// error. Helpers run through a Docker per helper name, which keeps
// their answers (see Docker); they are forgotten when the file changes.
// DockerConfig is an anyauth.CredentialVerdicts with Docker's verdicts:
// once a registry refused an answer, Refused forgets it, whether a
// helper gave it (the helper runs again) or the file did (the file is
// read again), so that a new docker login is found.
//
// Errors name the file and the registry, never what the file or a helper
// holds; String and Format show only the path and the registries.
type DockerConfig struct {
	// Path is the config.json to read. "" is the docker CLI's:
	// $DOCKER_CONFIG/config.json, or ~/.docker/config.json when
	// DOCKER_CONFIG is unset, found at each read.
	Path string
	// Registries are the registries whose challenges it answers, as in
	// Docker.Registries: "registry.example.com" or "host:port" over
	// https, "http://host:port" for a registry served over plain http.
	// It is required: empty answers nothing.
	Registries []string
	// Timeout bounds each run of a helper. Zero means DefaultTimeout.
	Timeout time.Duration

	mu      sync.Mutex
	file    *dockerConfigFile // nil until read
	info    os.FileInfo       // the file's when read
	stale   bool              // read file again: what it gave was refused
	helpers map[string]*Docker
}

// DockerConfigFromEnv returns a DockerConfig for the config.json the
// docker CLI would read now ($DOCKER_CONFIG/config.json, or
// ~/.docker/config.json) that answers registries only. With neither
// DOCKER_CONFIG nor a home directory, its Path is "" (found at each
// read).
func DockerConfigFromEnv(registries ...string) *DockerConfig {
	path, _ := dockerConfigPath() // "": found again at each read
	return &DockerConfig{Path: path, Registries: registries}
}

// Credentials returns the user name and password that Docker's
// configuration gives for space's registry: an error wrapping
// anyauth.ErrNoCredentials when space is not a listed registry, the file
// does not exist, or it has nothing (but an identity token) for the
// registry, and another error when the file cannot be read or parsed,
// or a helper fails.
func (c *DockerConfig) Credentials(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	if !registryAllowed(c.Registries, space) {
		return nil, fmt.Errorf("credhelper: docker config: %w: %s is not among the registries allowed", anyauth.ErrNoCredentials, space.Origin())
	}
	server := serverAddress(space)
	helper, up, err := c.lookup(server)
	if err != nil {
		return nil, err
	}
	if helper != nil {
		return helper.Credentials(ctx, space)
	}
	return up, nil
}

// lookup returns the Docker that answers for server, or the answer of its
// auths entry.
func (c *DockerConfig) lookup(server string) (*Docker, *anyauth.UserPassword, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	path, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	if name := c.file.helper(server); name != "" {
		return c.helper(name), nil, nil
	}
	a, ok := c.file.auth(server)
	switch {
	case !ok:
		return nil, nil, fmt.Errorf("credhelper: docker config %s: %w: no auths entry for %s", path, anyauth.ErrNoCredentials, server)
	case a.identityToken:
		return nil, nil, fmt.Errorf("credhelper: docker config %s: %w: %s has an identity token, not a password", path, anyauth.ErrNoCredentials, server)
	case a.up.Password == "":
		return nil, nil, fmt.Errorf("credhelper: docker config %s: %w: no password for %s", path, anyauth.ErrNoCredentials, server)
	}
	up := a.up
	return nil, &up, nil
}

// load reads the file into c.file unless it is unchanged since it was
// read, and returns its path. c.mu is held.
func (c *DockerConfig) load() (string, error) {
	path := c.Path
	if path == "" {
		p, err := dockerConfigPath()
		if err != nil {
			return "", fmt.Errorf("credhelper: docker config: %w: no DOCKER_CONFIG and no home directory", anyauth.ErrNoCredentials)
		}
		path = p
	}
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		c.forgetFile()
		return "", fmt.Errorf("credhelper: docker config: %w: %s does not exist", anyauth.ErrNoCredentials, path)
	}
	if err != nil {
		return "", fmt.Errorf("credhelper: docker config: %w", err)
	}
	if c.file != nil && !c.stale && sameFileState(c.info, info) {
		return path, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("credhelper: docker config: %w", err)
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return "", fmt.Errorf("credhelper: docker config: %w", err)
	}
	file, err := readDockerConfig(f, path)
	if err != nil {
		c.forgetFile()
		return "", err
	}
	if c.info == nil || !sameFileState(c.info, info) {
		c.helpers = nil // a new docker login, maybe: ask the helpers again
	}
	c.file, c.info, c.stale = file, info, false
	return path, nil
}

// sameFileState reports whether two FileInfos of one path describe the
// same file, unchanged.
func sameFileState(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// forgetFile drops what was read from the file and the helpers' answers.
// c.mu is held.
func (c *DockerConfig) forgetFile() {
	c.file, c.info, c.helpers = nil, nil, nil
}

// helper returns the Docker that runs docker-credential-name. c.mu is
// held.
func (c *DockerConfig) helper(name string) *Docker {
	d := c.helpers[name]
	if d == nil {
		d = &Docker{Helper: name, Registries: c.Registries, Timeout: c.Timeout}
		if c.helpers == nil {
			c.helpers = map[string]*Docker{}
		}
		c.helpers[name] = d
	}
	return d
}

// Accepted does nothing: docker login keeps the credentials. It makes
// DockerConfig an anyauth.CredentialVerdicts, with Refused.
func (c *DockerConfig) Accepted(context.Context, *anyauth.ProtectionSpace, anyauth.UserPassword) {}

// Refused forgets up when it is what Docker's configuration gave for
// space: a helper's answer, so that the next question runs the helper
// again, or the file's, so that the next question reads the file again.
// It changes neither the file nor the helper's store, as docker does
// not. The Transport calls it (anyauth.CredentialVerdicts) once a
// registry refused a fresh answer made with up.
func (c *DockerConfig) Refused(ctx context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	c.mu.Lock()
	if c.file != nil {
		if a, ok := c.file.auth(serverAddress(space)); ok && a.up == up {
			c.stale = true
		}
	}
	helpers := make([]*Docker, 0, len(c.helpers))
	for _, d := range c.helpers {
		helpers = append(helpers, d)
	}
	c.mu.Unlock()
	for _, d := range helpers {
		d.Refused(ctx, space, up)
	}
}

// Forget drops what was read from the file and every answer a helper
// gave: the next question reads the file again.
func (c *DockerConfig) Forget() {
	c.mu.Lock()
	c.forgetFile()
	c.mu.Unlock()
}

// String describes c's configuration: its path and registries, never a
// credential.
func (c *DockerConfig) String() string {
	return fmt.Sprintf("credhelper.DockerConfig{Path:%q Registries:%v}", c.Path, c.Registries)
}

// Format prints String whatever the verb.
func (c *DockerConfig) Format(f fmt.State, _ rune) { io.WriteString(f, c.String()) }
