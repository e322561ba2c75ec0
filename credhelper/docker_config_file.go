package credhelper

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/anyauth/anyauth"
)

// This file reads Docker's config.json as the docker CLI does
// (github.com/docker/cli, cli/config/configfile and
// cli/config/credentials): the helper named for a registry in
// credHelpers, else credsStore, else the registry's auths entry.

// maxDockerConfigSize bounds what is read of a config.json.
const maxDockerConfigSize = 4 << 20

// dockerConfigPath returns $DOCKER_CONFIG/config.json, or
// ~/.docker/config.json when DOCKER_CONFIG is unset, as the docker CLI
// finds it.
func dockerConfigPath() (string, error) {
	if dir := os.Getenv("DOCKER_CONFIG"); dir != "" {
		return filepath.Join(dir, "config.json"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".docker", "config.json"), nil
}

// dockerConfigFile is what a config.json says about credentials.
type dockerConfigFile struct {
	credsStore  string
	credHelpers map[string]string
	auths       map[string]dockerAuth
	authKeys    []string // the keys of auths, sorted
}

// dockerAuth is one auths entry, its "auth" decoded.
type dockerAuth struct {
	up            anyauth.UserPassword
	identityToken bool
}

// dockerConfigJSON is the part of config.json read.
type dockerConfigJSON struct {
	CredsStore  string                    `json:"credsStore"`
	CredHelpers map[string]string         `json:"credHelpers"`
	Auths       map[string]dockerAuthJSON `json:"auths"`
}

// dockerAuthJSON is an auths entry as written.
type dockerAuthJSON struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// readDockerConfig reads and parses f, the config.json at path. Its
// errors name the path and never hold what the file holds.
func readDockerConfig(f *os.File, path string) (*dockerConfigFile, error) {
	data, err := io.ReadAll(io.LimitReader(f, maxDockerConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("credhelper: docker config: %w", err)
	}
	if len(data) > maxDockerConfigSize {
		return nil, fmt.Errorf("credhelper: docker config %s: larger than %d bytes", path, maxDockerConfigSize)
	}
	cfg, err := parseDockerConfig(data)
	if err != nil {
		return nil, fmt.Errorf("credhelper: docker config %s: %w", path, err)
	}
	return cfg, nil
}

// parseDockerConfig parses a config.json as the docker CLI does: an
// empty file is an empty configuration, and an "auth" that is not the
// base64 of "user:password" makes the whole file invalid.
func parseDockerConfig(data []byte) (*dockerConfigFile, error) {
	var raw dockerConfigJSON
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, jsonProblem(err)
	}
	cfg := &dockerConfigFile{credsStore: raw.CredsStore, credHelpers: raw.CredHelpers, auths: map[string]dockerAuth{}}
	for key, a := range raw.Auths {
		up := anyauth.UserPassword{Username: a.Username, Password: a.Password}
		if a.Auth != "" {
			var err error
			if up, err = decodeDockerAuth(a.Auth); err != nil {
				return nil, fmt.Errorf("auths entry %q: %w", key, err)
			}
		}
		cfg.auths[key] = dockerAuth{up: up, identityToken: a.IdentityToken != ""}
		cfg.authKeys = append(cfg.authKeys, key)
	}
	slices.Sort(cfg.authKeys)
	return cfg, nil
}

// jsonProblem describes a decoding error without the JSON text it met:
// json's own messages quote it, and it may be a secret.
func jsonProblem(err error) error {
	var syntax *json.SyntaxError
	var wrongType *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Errorf("not valid JSON (at byte %d)", syntax.Offset)
	case errors.As(err, &wrongType):
		return fmt.Errorf("field %q has a value of the wrong type", wrongType.Field)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("not valid JSON (it ends early)")
	}
	return errors.New("not valid JSON")
}

// decodeDockerAuth decodes an "auth" value, base64("user:password"), as
// docker's decodeAuth does.
func decodeDockerAuth(auth string) (anyauth.UserPassword, error) {
	b, err := base64.StdEncoding.DecodeString(auth)
	if err != nil {
		return anyauth.UserPassword{}, errors.New(`"auth" is not base64`)
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok || user == "" {
		return anyauth.UserPassword{}, errors.New(`"auth" is not the base64 of user:password`)
	}
	return anyauth.UserPassword{Username: user, Password: strings.Trim(pass, "\x00")}, nil
}

// helper returns the name of the credential helper for server, as
// docker's getConfiguredCredentialStore chooses it: its credHelpers
// entry (exactly server, as docker looks it up), else credsStore. ""
// means none: the auths entry answers.
func (c *dockerConfigFile) helper(server string) string {
	if name, ok := c.credHelpers[server]; ok {
		return name
	}
	return c.credsStore
}

// auth returns server's auths entry as docker's file store finds it: the
// entry whose key is server, else the first (in key order) whose key
// names server's host once its scheme and path are dropped
// (dockerHostname). Host names compare without case.
func (c *dockerConfigFile) auth(server string) (dockerAuth, bool) {
	if a, ok := c.auths[server]; ok {
		return a, true
	}
	for _, key := range c.authKeys {
		if strings.EqualFold(dockerHostname(key), server) {
			return c.auths[key], true
		}
	}
	return dockerAuth{}, false
}

// dockerHostname reduces an auths key to a server address, as docker's
// ConvertToHostname does: "https://registry.example.com/v1/" is
// "registry.example.com", "http://host:5000" is "host:5000", and
// "host:5000/path" is "host:5000".
func dockerHostname(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil && u.Hostname() != "" {
			if u.Port() == "" {
				return u.Hostname()
			}
			return net.JoinHostPort(u.Hostname(), u.Port())
		}
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}
