package credhelper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
)

// Docker is a CredentialProvider that asks a Docker credential helper
// (docker-credential-pass, -secretservice, -osxkeychain, -wincred,
// -desktop, or any program speaking that protocol) for a registry's user
// name and password: it runs "docker-credential-<Helper> get" with the
// registry's server address on stdin, through
// github.com/docker/docker-credential-helpers/client.
//
// The server address is the registry's host, with its port unless it is
// 443 ("registry.example.com", "localhost:5000"), as docker login stores
// it; Docker Hub (docker.io, index.docker.io, registry-1.docker.io) is
// "https://index.docker.io/v1/". It answers the Basic (or Digest)
// challenges of the registries listed in Registries only, never a proxy.
// An identity token (user name "<token>", a refresh token for the
// registry's token service) is not a password: it answers nothing.
//
// Answers are kept until the registry refuses them (Docker is an
// anyauth.CredentialVerdicts: the Transport calls Refused) or Forget,
// since the Transport asks on every request that meets a known space and
// a helper may be slow (pass runs gpg); concurrent questions about one
// registry run the helper once. Each run is bounded by Timeout and the request's context: when either ends, the
// helper and every process it started are killed. Errors name the helper,
// the registry and the exit status, never what the helper printed.
type Docker struct {
	// Helper names the helper: "pass" runs docker-credential-pass from
	// PATH.
	Helper string
	// Registries are the registries whose challenges it answers:
	// "registry.example.com" or "host:port" over https, or
	// "http://host:port" for a registry served over plain http. It is
	// required: empty answers nothing.
	Registries []string
	// Timeout bounds each run of the helper. Zero means DefaultTimeout.
	Timeout time.Duration

	mu      sync.Mutex
	cache   map[string]anyauth.UserPassword
	flights flights[string, *anyauth.UserPassword]
}

// Credentials returns the helper's user name and secret for space's
// registry: an error wrapping anyauth.ErrNoCredentials when space is not
// a listed registry, or the helper has none.
func (d *Docker) Credentials(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	if !d.allows(space) {
		return nil, fmt.Errorf("credhelper: docker: %w: %s is not among the registries allowed", anyauth.ErrNoCredentials, space.Origin())
	}
	server := serverAddress(space)
	d.mu.Lock()
	if up, ok := d.cache[server]; ok {
		d.mu.Unlock()
		return &up, nil
	}
	d.mu.Unlock()
	up, err := d.flights.do(ctx, server, func() (*anyauth.UserPassword, error) {
		up, err := d.Get(ctx, server)
		if err == nil {
			d.mu.Lock()
			if d.cache == nil || len(d.cache) >= maxGitEntries {
				d.cache = map[string]anyauth.UserPassword{}
			}
			d.cache[server] = *up
			d.mu.Unlock()
		}
		return up, err
	})
	if err != nil {
		if ctx.Err() != nil && !strings.HasPrefix(err.Error(), "credhelper: ") {
			return nil, fmt.Errorf("credhelper: docker-credential-%s get for %s: %w", d.Helper, server, err)
		}
		return nil, err
	}
	c := *up
	return &c, nil
}

// Get runs the helper for serverAddress and returns its user name and
// secret, whether or not serverAddress is among Registries. It returns an
// error wrapping anyauth.ErrNoCredentials when the helper has none, or
// only an identity token.
func (d *Docker) Get(ctx context.Context, serverAddress string) (*anyauth.UserPassword, error) {
	if d.Helper == "" || strings.ContainsAny(d.Helper, `/\`) {
		return nil, fmt.Errorf("credhelper: docker: Helper %q is not the name of a docker-credential-NAME helper", d.Helper)
	}
	name := "docker-credential-" + d.Helper
	var p *dockerProgram
	program := func(args ...string) client.Program {
		p = &dockerProgram{ctx: ctx, job: job{name: name + " " + strings.Join(args, " ") + " for " + serverAddress, path: name, args: args, timeout: d.Timeout}}
		return p
	}
	creds, err := client.Get(program, serverAddress)
	switch {
	case credentials.IsErrCredentialsNotFound(err):
		return nil, fmt.Errorf("credhelper: %s get: %w: none for %s", name, anyauth.ErrNoCredentials, serverAddress)
	case err != nil && p != nil && p.err != nil:
		return nil, p.err // ours: it holds nothing the helper printed
	case err != nil:
		return nil, fmt.Errorf("credhelper: %s get for %s: %w", name, serverAddress, errors.New("unreadable answer"))
	case creds.Username == "<token>":
		return nil, fmt.Errorf("credhelper: %s get: %w: %s has an identity token, not a password", name, anyauth.ErrNoCredentials, serverAddress)
	case creds.Secret == "":
		return nil, fmt.Errorf("credhelper: %s get: %w: no secret for %s", name, anyauth.ErrNoCredentials, serverAddress)
	}
	return &anyauth.UserPassword{Username: creds.Username, Password: creds.Secret}, nil
}

// allows reports whether space is a registry of d.Registries.
func (d *Docker) allows(space *anyauth.ProtectionSpace) bool {
	return registryAllowed(d.Registries, space)
}

// registryAllowed reports whether space is the space of one of
// registries ("host[:port]" over https, or "http(s)://host[:port]"),
// never a proxy's.
func registryAllowed(registries []string, space *anyauth.ProtectionSpace) bool {
	for _, r := range registries {
		if !strings.Contains(r, "://") {
			r = "https://" + r
		}
		if (anyauth.Origins{r}).Allows(space) {
			return true
		}
	}
	return false
}

// serverAddress returns the address docker login stores space's registry
// under.
func serverAddress(space *anyauth.ProtectionSpace) string {
	switch space.Host {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		if space.URLScheme == "https" && space.Port == "443" {
			return "https://index.docker.io/v1/"
		}
	}
	if space.URLScheme == "https" && space.Port == "443" {
		if strings.Contains(space.Host, ":") {
			return "[" + space.Host + "]"
		}
		return space.Host
	}
	return net.JoinHostPort(space.Host, space.Port)
}

// Accepted does nothing: the helper keeps what docker login stored. It
// makes Docker an anyauth.CredentialVerdicts, with Refused.
func (d *Docker) Accepted(context.Context, *anyauth.ProtectionSpace, anyauth.UserPassword) {}

// Refused forgets what the helper gave for space when it is up, so that
// the next question runs the helper again (after a docker login, say). It
// does not erase it from the helper's store, as docker does not. The
// Transport calls it (anyauth.CredentialVerdicts) once a registry refused
// a fresh answer made with up.
func (d *Docker) Refused(_ context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	server := serverAddress(space)
	d.mu.Lock()
	if got, ok := d.cache[server]; ok && got == up {
		delete(d.cache, server)
	}
	d.mu.Unlock()
}

// Forget drops every credential the Docker keeps.
func (d *Docker) Forget() {
	d.mu.Lock()
	d.cache = nil
	d.mu.Unlock()
}

// String describes d's configuration; it never shows a credential.
func (d *Docker) String() string {
	return fmt.Sprintf("credhelper.Docker{Helper:%q Registries:%v}", d.Helper, d.Registries)
}

// Format prints String whatever the verb.
func (d *Docker) Format(f fmt.State, _ rune) { io.WriteString(f, d.String()) }

// dockerProgram is a client.Program run within a context.
type dockerProgram struct {
	ctx context.Context
	job job
	err error
}

// Input sets what the helper reads.
func (p *dockerProgram) Input(in io.Reader) {
	b, err := io.ReadAll(in)
	if err != nil {
		p.err = err
	}
	p.job.stdin = b
}

// Output runs the helper and returns what it printed on stdout.
func (p *dockerProgram) Output() ([]byte, error) {
	if p.err != nil {
		return nil, p.err
	}
	out, _, err := p.job.run(p.ctx)
	p.err = err
	return out, err
}
