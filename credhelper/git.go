package credhelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/anyauth/anyauth"
)

// Git is a CredentialProvider that asks git's credential helpers, as git
// does over https: it runs "git credential fill" with the protection
// space's protocol, host, path and the challenge being answered (as
// wwwauth[] lines), and returns the user name and password the helpers
// gave. It is an anyauth.CredentialVerdicts: the Transport tells it how
// its credentials fared, and it runs "git credential approve" once they
// were accepted, so that helpers which cache or store (credential-cache,
// credential-store, a keychain) keep them, and "git credential reject"
// once the server refused them, so that the helpers forget them.
//
// It answers only origins listed in Origins, never a proxy: a helper is
// never run for a host the user did not name, and never prompts. git runs
// with GIT_TERMINAL_PROMPT=0 (no terminal prompt), with
// credential.interactive=false and GCM_INTERACTIVE=never (no dialog of
// git-credential-manager); an askpass program the user configured
// (GIT_ASKPASS, core.askPass, SSH_ASKPASS) still runs, as git would run
// it, within Timeout. Set GIT_ASKPASS to an empty value to rule it out.
//
// The path sent is the space's directory without its outer slashes
// ("org/repo.git" for a challenge at /org/repo.git/x); git drops it
// unless credential.useHttpPath is set. The wwwauth[] line is the
// challenge answered when the schemes are wrapped with WithChallenges,
// else the space's scheme and realm; git 2.41 and later pass it to the
// helpers, earlier ones ignore it.
//
// What the helpers gave is kept, per protocol, host and path, until the
// server refuses it (Refused) or Forget: the Transport asks its provider on
// every request that meets a known space, and a helper may be slow (a
// keychain, gpg). Concurrent questions about one space run one fill.
//
// Each git run is bounded by Timeout and the request's context: when
// either ends, git and every process it started are killed. Errors name
// the origin and git's exit status, never what git printed; String and
// Format show neither user names nor passwords.
type Git struct {
	// Origins are the origins ("https://git.example.com") whose
	// challenges may be answered with git's credentials. It is required:
	// empty answers nothing.
	Origins anyauth.Origins
	// Dir is the directory git runs in, whose repository configuration
	// (credential.helper, credential.useHttpPath) then applies. "" is
	// the current directory.
	Dir string
	// Program is the git executable; "" is "git" from PATH.
	Program string
	// Timeout bounds each run of git. Zero means DefaultTimeout.
	Timeout time.Duration

	goauth *GoAuth // whose Timeout applies, for a GOAUTH entry

	mu      sync.Mutex
	cache   map[gitKey]*gitEntry
	flights flights[gitKey, *gitEntry]
}

// maxGitEntries bounds what a Git keeps.
const maxGitEntries = 64

// gitKey is what git was asked about.
type gitKey struct{ protocol, host, path string }

// gitEntry is git's answer for a gitKey.
type gitEntry struct {
	up       anyauth.UserPassword
	raw      []byte // what fill printed, handed back to approve and reject
	approved bool
}

// Credentials returns what git's credential helpers have for space: an
// error wrapping anyauth.ErrNoCredentials when space is a proxy, an
// origin not in Origins, or when no helper had credentials.
func (g *Git) Credentials(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	if !g.Origins.Allows(space) {
		return nil, fmt.Errorf("credhelper: git: %w: %s is not among the origins allowed to use git credentials", anyauth.ErrNoCredentials, space.Origin())
	}
	key := keyOf(space)
	g.mu.Lock()
	if e := g.cache[key]; e != nil {
		up := e.up
		g.mu.Unlock()
		return &up, nil
	}
	g.mu.Unlock()
	e, err := g.flights.do(ctx, key, func() (*gitEntry, error) {
		e, err := g.fill(ctx, key, challengeFrom(ctx), space)
		if err == nil {
			g.mu.Lock()
			if g.cache == nil || len(g.cache) >= maxGitEntries {
				g.cache = map[gitKey]*gitEntry{} // a new start rather than an LRU: it seldom fills
			}
			g.cache[key] = e
			g.mu.Unlock()
		}
		return e, err
	})
	if err != nil {
		if ctx.Err() != nil && !strings.HasPrefix(err.Error(), "credhelper: ") {
			return nil, fmt.Errorf("credhelper: git credential fill for %s: %w", space.Origin(), err)
		}
		return nil, err
	}
	up := e.up
	return &up, nil
}

// keyOf returns what git is asked about for space.
func keyOf(space *anyauth.ProtectionSpace) gitKey {
	host := space.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if space.Port != defaultPort(space.URLScheme) {
		host = net.JoinHostPort(space.Host, space.Port)
	}
	return gitKey{protocol: space.URLScheme, host: host, path: strings.Trim(space.Path, "/")}
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// fill runs "git credential fill" for key.
func (g *Git) fill(ctx context.Context, key gitKey, c *anyauth.Challenge, space *anyauth.ProtectionSpace) (*gitEntry, error) {
	var in bytes.Buffer
	writeField(&in, "protocol", key.protocol)
	writeField(&in, "host", key.host)
	if key.path != "" {
		writeField(&in, "path", key.path)
	}
	switch {
	case c != nil:
		writeField(&in, "wwwauth[]", c.String())
	case space.AuthScheme != "":
		writeField(&in, "wwwauth[]", (&anyauth.Challenge{Scheme: space.AuthScheme, Params: []anyauth.Param{{Name: "realm", Value: space.Realm}}}).String())
	}
	in.WriteByte('\n')
	j := g.git("fill").withStdin(in.Bytes())
	j.name += " for " + space.Origin()
	out, stderr, err := j.run(ctx)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		why := "no helper had credentials"
		if bytes.Contains(stderr, []byte("terminal prompts disabled")) {
			why += ", and prompts are disabled"
		}
		return nil, fmt.Errorf("credhelper: %s: %w: %s (%v)", j.name, anyauth.ErrNoCredentials, why, exit)
	}
	if err != nil {
		return nil, err
	}
	fields := parseFields(out)
	if p := fields["protocol"]; p != "" && p != key.protocol {
		return nil, fmt.Errorf("credhelper: git credential fill for %s: %w: git answered for protocol %q", space.Origin(), anyauth.ErrNoCredentials, p)
	}
	if h := fields["host"]; h != "" && !strings.EqualFold(h, key.host) {
		return nil, fmt.Errorf("credhelper: git credential fill for %s: %w: git answered for host %q", space.Origin(), anyauth.ErrNoCredentials, h)
	}
	if fields["password"] == "" {
		return nil, fmt.Errorf("credhelper: git credential fill for %s: %w: git gave no password", space.Origin(), anyauth.ErrNoCredentials)
	}
	return &gitEntry{up: anyauth.UserPassword{Username: fields["username"], Password: fields["password"]}, raw: out}, nil
}

// writeField writes "key=value\n", leaving out a value git would refuse
// (a newline or NUL in it).
func writeField(b *bytes.Buffer, key, value string) {
	if strings.ContainsAny(value, "\n\x00") {
		return
	}
	b.WriteString(key)
	b.WriteByte('=')
	b.WriteString(value)
	b.WriteByte('\n')
}

// parseFields reads git's "key=value" lines; a key given twice keeps its
// last value, as git does.
func parseFields(out []byte) map[string]string {
	fields := map[string]string{}
	for line := range strings.SplitSeq(string(out), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\r"), "="); ok {
			fields[k] = v
		}
	}
	return fields
}

// git returns the run of "git credential action".
func (g *Git) git(action string) *job {
	program := g.Program
	if program == "" {
		program = "git"
	}
	timeout := g.Timeout
	if g.goauth != nil {
		timeout = g.goauth.Timeout
	}
	return &job{
		name:    "git credential " + action,
		path:    program,
		args:    []string{"-c", "credential.interactive=false", "credential", action},
		dir:     g.Dir,
		env:     []string{"GIT_TERMINAL_PROMPT=0", "GCM_INTERACTIVE=never"},
		timeout: timeout,
	}
}

func (j *job) withStdin(b []byte) *job { j.stdin = b; return j }

// Accepted runs "git credential approve" with what fill printed, once
// per credential, when up is what git gave for space's origin; otherwise
// it does nothing. The Transport calls it (anyauth.CredentialVerdicts)
// once a server accepted a fresh answer made with up. An error running
// git is ignored, as git ignores a helper that fails to store.
func (g *Git) Accepted(ctx context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	g.mu.Lock()
	var raw []byte
	for k, e := range g.cache {
		if g.matches(k, e, space, up) && !e.approved {
			e.approved, raw = true, e.raw
			break
		}
	}
	g.mu.Unlock()
	if raw != nil {
		g.git("approve").withStdin(raw).run(ctx)
	}
}

// Refused runs "git credential reject" with what fill printed, when up is
// what git gave for space's origin, and forgets it, so that the next
// question runs fill again; otherwise it does nothing. The Transport
// calls it (anyauth.CredentialVerdicts) once a server refused a fresh
// answer made with up. An error running git is ignored, as git ignores a
// helper that fails to erase.
func (g *Git) Refused(ctx context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	g.mu.Lock()
	var raws [][]byte
	for k, e := range g.cache {
		if g.matches(k, e, space, up) {
			raws = append(raws, e.raw)
			delete(g.cache, k)
		}
	}
	g.mu.Unlock()
	for _, raw := range raws {
		g.git("reject").withStdin(raw).run(ctx)
	}
}

// matches reports whether entry e, kept under k, gave up for space (on
// any of its paths: a realm's credentials are the same in every
// directory).
func (g *Git) matches(k gitKey, e *gitEntry, space *anyauth.ProtectionSpace, up anyauth.UserPassword) bool {
	want := keyOf(space)
	return k.protocol == want.protocol && k.host == want.host && e.up == up
}

// Forget drops every credential the Git keeps; the next question runs
// "git credential fill" again.
func (g *Git) Forget() {
	g.mu.Lock()
	g.cache = nil
	g.mu.Unlock()
}

// String describes g's configuration; it never shows a credential.
func (g *Git) String() string {
	return fmt.Sprintf("credhelper.Git{Origins:%v Dir:%q}", []string(g.Origins), g.Dir)
}

// Format prints String whatever the verb.
func (g *Git) Format(f fmt.State, _ rune) { io.WriteString(f, g.String()) }
