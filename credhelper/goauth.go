package credhelper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/anyauth/anyauth"
)

// GoAuth is a GOAUTH value (Go 1.24 and later; see "go help goauth"): a
// semicolon-separated list of
//
//   - off: no authentication (alone only);
//   - netrc: the user names and passwords of $NETRC or ~/.netrc;
//   - git DIR: what "git credential fill", run in the absolute directory
//     DIR, gives (approved and rejected after use, as the go command
//     does);
//   - a command (words separated by spaces, '…' or "…" quoting one),
//     which prints blocks of https URL prefixes, a blank line, request
//     headers and a blank line; a request gets the headers of the
//     longest prefix of its URL (host and path, compared by path
//     segment). On a 4xx it is run again with the URL as an argument and
//     the response's status line and headers on stdin, at most once per
//     request, and what it prints then replaces what it gave for those
//     prefixes.
//
// A GoAuth is used in two parts, because the two kinds of entries give
// two kinds of things. The commands give request headers, not a user
// name and password, so they cannot be a CredentialProvider: Schemes
// returns a scheme that volunteers their headers (anyauth.Volunteer) to
// every https origin from the first request, as the go command sends
// them, and handles the 4xx rerun. netrc and git give user names and
// passwords, so they stay what they are in anyauth, providers: the
// GoAuth itself is a CredentialProvider answering the Basic and Digest
// challenges of https origins with them, in GOAUTH's order (the first
// entry that has credentials wins, as in the go command). They are sent
// when the server asks for them rather than on every request, so a
// password never goes to a server that did not challenge and Digest
// servers are answered too. GoAuth is an anyauth.CredentialVerdicts:
// the Transport tells it whether they worked, and its git entries approve
// or reject what they gave.
//
//	g, err := credhelper.GoAuthFromEnv(anyauth.Origins{"https://git.example.com"})
//	t := &anyauth.Transport{
//		Schemes:     append(credhelper.WithChallenges([]anyauth.Scheme{schemes.Digest{}, schemes.Basic{}}), g.Schemes()...),
//		Credentials: g,
//	}
//
// A request that carries its own Authorization gets no GOAUTH headers
// (the Transport answers nothing for it), and a header the caller set is
// never replaced. Only https requests get anything, as with the go command: the headers
// and credentials of GOAUTH never go over plain http, not even to
// loopback hosts (tests use httptest.NewTLSServer). When Origins is set,
// only its origins get anything; it is required when a git entry is
// present, since a git credential helper would answer any host it is
// asked about (prompting, or reaching a keychain), while commands and
// netrc name their own hosts.
//
// Each command and git run is bounded by Timeout and the request's
// context: when either ends, the program and every process it started are
// killed. Errors name the entry (a command by its program only: its
// arguments may hold a secret) and the exit status, never what it
// printed; String and Format show no header value and no password.
type GoAuth struct {
	// Origins, when set, are the only origins that get GOAUTH's headers
	// and credentials. Required when GOAUTH has a git entry.
	Origins anyauth.Origins
	// Timeout bounds each run of a command or of git. Zero means
	// DefaultTimeout.
	Timeout time.Duration

	entries []goauthEntry
	headers headerSource
}

// goauthEntry is one entry of a GOAUTH value: a command, or a provider.
type goauthEntry struct {
	command  []string                   // a command's words
	provider anyauth.CredentialProvider // netrc or git
	git      *Git
	desc     string // for String: no argument of a command
}

// ParseGoAuth parses a GOAUTH value, as the go command does; "" means
// "netrc", its default. origins become the GoAuth's Origins.
func ParseGoAuth(value string, origins anyauth.Origins) (*GoAuth, error) {
	if err := origins.Check(); err != nil {
		return nil, fmt.Errorf("credhelper: GOAUTH: %w", err)
	}
	g := &GoAuth{Origins: origins}
	g.headers.g = g
	if strings.TrimSpace(value) == "" {
		value = "netrc"
	}
	list := strings.Split(value, ";")
	for _, command := range list {
		command = strings.TrimSpace(command)
		words := strings.Fields(command)
		if len(words) == 0 {
			return nil, fmt.Errorf("credhelper: GOAUTH has an empty command (GOAUTH=%s)", value)
		}
		switch words[0] {
		case "off":
			if len(list) != 1 {
				return nil, fmt.Errorf("credhelper: GOAUTH=off cannot be combined with other authentication commands (GOAUTH=%s)", value)
			}
			return g, nil
		case "netrc":
			g.entries = append(g.entries, goauthEntry{provider: anyauth.NetrcFromEnv(), desc: "netrc"})
		case "git":
			if len(words) != 2 || !filepath.IsAbs(words[1]) {
				return nil, errors.New("credhelper: GOAUTH=git dir method requires an absolute path to the git working directory")
			}
			if fi, err := os.Stat(words[1]); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("credhelper: GOAUTH=git %s: not a directory: %w", words[1], errNotDir(err))
			}
			if len(origins) == 0 {
				return nil, fmt.Errorf("credhelper: GOAUTH=git %s: git credential helpers are run only for the origins named: give the origins", words[1])
			}
			git := &Git{Origins: origins, Dir: words[1], goauth: g}
			g.entries = append(g.entries, goauthEntry{provider: git, git: git, desc: "git " + words[1]})
		default:
			args, err := splitQuoted(command)
			if err != nil {
				return nil, fmt.Errorf("credhelper: GOAUTH command %s: %w", words[0], err)
			}
			g.entries = append(g.entries, goauthEntry{command: args, desc: "command " + args[0]})
		}
	}
	return g, nil
}

func errNotDir(err error) error {
	if err != nil {
		return err
	}
	return errors.New("it is a file")
}

// GoAuthFromEnv parses the GOAUTH the go command would use: $GOAUTH, or
// else the GOAUTH set with "go env -w" (in $GOENV, or go/env under the
// user's configuration directory), or else "netrc".
func GoAuthFromEnv(origins anyauth.Origins) (*GoAuth, error) {
	return ParseGoAuth(goEnv("GOAUTH"), origins)
}

// goEnv returns the environment variable key, or else its value in the
// go command's environment file, as cmd/go reads it.
func goEnv(key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	file := os.Getenv("GOENV")
	if file == "off" {
		return ""
	}
	if file == "" {
		dir, err := os.UserConfigDir()
		if err != nil || dir == "" {
			return ""
		}
		file = filepath.Join(dir, "go", "env")
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	var val string
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		if k, v, ok := bytes.Cut(line, []byte("=")); ok && string(k) == key {
			val = string(v)
		}
	}
	return val
}

// splitQuoted splits a command into words as the go command does: at
// spaces, with '…' or "…" around a word (nothing is unescaped inside).
func splitQuoted(s string) ([]string, error) {
	var f []string
	for {
		s = strings.TrimLeft(s, " \t\n\r")
		if s == "" {
			return f, nil
		}
		if q := s[0]; q == '"' || q == '\'' {
			i := strings.IndexByte(s[1:], q)
			if i < 0 {
				return nil, fmt.Errorf("unterminated %c string", q)
			}
			f = append(f, s[1:1+i])
			s = s[2+i:]
			continue
		}
		i := strings.IndexAny(s, " \t\n\r")
		if i < 0 {
			i = len(s)
		}
		f = append(f, s[:i])
		s = s[i:]
	}
}

// Schemes returns the scheme that sends the commands' headers, or none
// when GOAUTH has no command. Append them to Transport.Schemes after any
// other Volunteer (a Bearer with Preemptive): the Transport volunteers
// the first that answers an origin.
func (g *GoAuth) Schemes() []anyauth.Scheme {
	if len(g.commands()) == 0 {
		return nil
	}
	return []anyauth.Scheme{&g.headers}
}

func (g *GoAuth) commands() [][]string {
	var out [][]string
	for _, e := range g.entries {
		if e.command != nil {
			out = append(out, e.command)
		}
	}
	return out
}

// allows reports whether GOAUTH answers space: an https origin, among
// Origins when they are set.
func (g *GoAuth) allows(space *anyauth.ProtectionSpace) bool {
	if space.Proxy || space.URLScheme != "https" {
		return false
	}
	return len(g.Origins) == 0 || g.Origins.Allows(space)
}

// Credentials returns the first netrc or git entry's credentials for an
// https origin (among Origins, when set), in GOAUTH's order. It returns
// an error wrapping anyauth.ErrNoCredentials for a proxy, plain http, or
// when no entry has any.
func (g *GoAuth) Credentials(ctx context.Context, space *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
	if !g.allows(space) {
		return nil, fmt.Errorf("credhelper: GOAUTH: %w: %s gets no GOAUTH credentials (https origins only, among Origins when set)", anyauth.ErrNoCredentials, space.Origin())
	}
	for _, e := range g.entries {
		if e.provider == nil {
			continue
		}
		up, err := e.provider.Credentials(ctx, space)
		if err == nil && up != nil {
			return up, nil
		}
		if err != nil && !errors.Is(err, anyauth.ErrNoCredentials) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("credhelper: GOAUTH: %w: no netrc or git entry has credentials for %s", anyauth.ErrNoCredentials, space.Origin())
}

// Accepted passes the verdict to the git entries, each of which
// approves up when it gave it (see Git.Accepted). The Transport calls it
// (anyauth.CredentialVerdicts); netrc entries have nothing to learn.
func (g *GoAuth) Accepted(ctx context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	for _, e := range g.entries {
		if e.git != nil {
			e.git.Accepted(ctx, space, up)
		}
	}
}

// Refused passes the verdict to the git entries, each of which rejects
// and forgets up when it gave it (see Git.Refused).
func (g *GoAuth) Refused(ctx context.Context, space *anyauth.ProtectionSpace, up anyauth.UserPassword) {
	for _, e := range g.entries {
		if e.git != nil {
			e.git.Refused(ctx, space, up)
		}
	}
}

// String lists the entries, commands by their program only; it never
// shows a header or a password.
func (g *GoAuth) String() string {
	if len(g.entries) == 0 {
		return "credhelper.GoAuth{off}"
	}
	descs := make([]string, len(g.entries))
	for i, e := range g.entries {
		descs[i] = e.desc
	}
	return "credhelper.GoAuth{" + strings.Join(descs, "; ") + "}"
}

// Format prints String whatever the verb.
func (g *GoAuth) Format(f fmt.State, _ rune) { io.WriteString(f, g.String()) }
