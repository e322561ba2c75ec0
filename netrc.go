package anyauth

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Netrc reads credentials from a .netrc file, as curl and the go command
// do: "machine HOST login USER password PASS" entries, matched to the
// protection space's host (netrc has no ports, so any port matches).
// Entries without a password are skipped. Proxies never get netrc
// credentials. The file is read again when it changes. Its String and
// Format print only the path.
type Netrc struct {
	// Path of the file; see NetrcFromEnv for the usual one.
	Path string
	// UseDefault lets the "default" entry answer hosts that have no
	// machine entry. Off by default: it would hand one password to every
	// server that asks.
	UseDefault bool

	mu      sync.Mutex
	modTime time.Time
	size    int64
	entries []netrcEntry
}

type netrcEntry struct {
	machine  string // "" for default
	login    string
	password string
}

// NetrcFromEnv returns a Netrc for $NETRC, or for ~/.netrc (~/_netrc on
// Windows) when NETRC is unset.
func NetrcFromEnv() *Netrc {
	if p := os.Getenv("NETRC"); p != "" {
		return &Netrc{Path: p}
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return &Netrc{}
	}
	name := ".netrc"
	if runtime.GOOS == "windows" {
		name = "_netrc"
	}
	return &Netrc{Path: filepath.Join(home, name)}
}

// Credentials returns the login and password of the entry for space.Host.
func (n *Netrc) Credentials(_ context.Context, space *ProtectionSpace) (*UserPassword, error) {
	if space.Proxy {
		return nil, fmt.Errorf("%w: netrc does not answer proxies", ErrNoCredentials)
	}
	entries, err := n.load()
	if err != nil {
		return nil, err
	}
	var fallback *netrcEntry
	for i := range entries {
		e := &entries[i]
		if e.machine == "" {
			if n.UseDefault && fallback == nil {
				fallback = e
			}
			continue
		}
		if strings.EqualFold(e.machine, space.Host) {
			return &UserPassword{Username: e.login, Password: e.password}, nil
		}
	}
	if fallback != nil {
		return &UserPassword{Username: fallback.login, Password: fallback.password}, nil
	}
	return nil, fmt.Errorf("%w: no netrc entry for %s", ErrNoCredentials, space.Host)
}

// String names the file; it never shows its contents.
func (n *Netrc) String() string { return "Netrc{" + n.Path + "}" }

// Format prints the file's path only, whatever the verb.
func (n *Netrc) Format(f fmt.State, _ rune) { fmt.Fprint(f, n.String()) }

func (n *Netrc) load() ([]netrcEntry, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Path == "" {
		return nil, fmt.Errorf("%w: no netrc file", ErrNoCredentials)
	}
	info, err := os.Stat(n.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist", ErrNoCredentials, n.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("anyauth: netrc: %w", err)
	}
	if n.entries != nil && info.ModTime().Equal(n.modTime) && info.Size() == n.size {
		return n.entries, nil
	}
	data, err := os.ReadFile(n.Path)
	if err != nil {
		return nil, fmt.Errorf("anyauth: netrc: %w", err)
	}
	n.entries = parseNetrc(string(data))
	n.modTime, n.size = info.ModTime(), info.Size()
	return n.entries, nil
}

// parseNetrc reads the entries of a netrc file. Tokens are separated by
// white space, line breaks included (a "machine" and its name may sit on
// two lines, as curl reads them), and may be double-quoted with '\'
// escapes (as curl allows); macdef bodies, up to the next empty line, are
// skipped.
func parseNetrc(data string) []netrcEntry {
	type token struct {
		s    string
		line int
	}
	lines := strings.Split(data, "\n")
	var toks []token
	for li, l := range lines {
		for _, t := range netrcTokens(l) {
			toks = append(toks, token{t, li})
		}
	}
	var out []netrcEntry
	var cur *netrcEntry
	flush := func() {
		if cur != nil && cur.password != "" {
			out = append(out, *cur)
		}
		cur = nil
	}
	for i := 0; i < len(toks); i++ {
		arg := func() string {
			if i+1 < len(toks) {
				i++
				return toks[i].s
			}
			return ""
		}
		switch toks[i].s {
		case "machine":
			flush()
			cur = &netrcEntry{machine: arg()}
		case "default":
			flush()
			cur = &netrcEntry{}
		case "login":
			if cur != nil {
				cur.login = arg()
			}
		case "password":
			if cur != nil {
				cur.password = arg()
			}
		case "account":
			arg()
		case "macdef":
			flush()
			end := toks[i].line + 1 // the body runs to the next empty line
			for end < len(lines) && strings.TrimSpace(lines[end]) != "" {
				end++
			}
			for i+1 < len(toks) && toks[i+1].line <= end {
				i++
			}
		}
	}
	flush()
	return out
}

func netrcTokens(line string) []string {
	var toks []string
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#' && len(toks) == 0:
			return toks
		case c == '"':
			var b strings.Builder
			i++
			for i < len(line) && line[i] != '"' {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
				b.WriteByte(line[i])
				i++
			}
			i++
			toks = append(toks, b.String())
		default:
			j := i
			for j < len(line) && line[j] != ' ' && line[j] != '\t' && line[j] != '\r' {
				j++
			}
			toks = append(toks, line[i:j])
			i = j
		}
	}
	return toks
}
