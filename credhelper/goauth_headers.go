package credhelper

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/anyauth/anyauth"
)

// goauthStrength ranks the GOAUTH headers below every scheme, so that
// when a server refuses them (and challenges for something else), the
// floor they leave (no downgrade) stops nothing.
const goauthStrength anyauth.Strength = 1

// GoAuthScheme is the name under which the scheme of GoAuth.Schemes
// appears in the Transport's logs and protection spaces. No server
// challenges it: it volunteers.
const GoAuthScheme = "GOAUTH"

// headerSource is the Scheme of a GoAuth's commands: it volunteers the
// headers they gave to https origins, and runs them again on a 4xx.
type headerSource struct {
	g *GoAuth

	mu     sync.RWMutex
	table  map[string]http.Header // by prefix: host[:port] and path, no trailing slash
	inited bool
	initCh chan struct{} // closed when the first run under way ends; nil when none is
}

// Name returns GoAuthScheme.
func (*headerSource) Name() string { return GoAuthScheme }

// Traits reports that the headers may carry a reusable secret.
func (*headerSource) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

// Strength ranks GOAUTH below everything.
func (*headerSource) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	return goauthStrength, true
}

// Scope returns "/": the headers are looked up for every request.
func (*headerSource) Scope(*anyauth.Challenge, *url.URL) []string { return []string{"/"} }

// Volunteers reports whether u is https, and among the Origins when set.
func (h *headerSource) Volunteers(u *url.URL) bool {
	if u == nil || u.Scheme != "https" {
		return false
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	return h.g.allows(&anyauth.ProtectionSpace{URLScheme: "https", Host: strings.ToLower(u.Hostname()), Port: port})
}

// Begin runs the commands once for the process (the Transport's, that
// is: the first request to an https origin waits for them), and returns
// the origin's session.
func (h *headerSource) Begin(ctx context.Context, _ *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	if !h.g.allows(&a.Space) {
		return nil, fmt.Errorf("credhelper: GOAUTH: %w: %s gets no GOAUTH headers (https origins only, among Origins when set)", anyauth.ErrNoCredentials, a.Space.Origin())
	}
	log := a.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := h.init(ctx, log); err != nil {
		return nil, err
	}
	return &headerSession{h: h, log: log}, nil
}

// init runs the commands without arguments, once; concurrent callers wait
// for it within their own contexts. A run cut short by its caller's
// context is done again by the next caller.
func (h *headerSource) init(ctx context.Context, log *slog.Logger) error {
	for {
		h.mu.Lock()
		if h.inited {
			h.mu.Unlock()
			return nil
		}
		if ch := h.initCh; ch != nil {
			h.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return fmt.Errorf("credhelper: GOAUTH: %w", ctx.Err())
			}
		}
		ch := make(chan struct{})
		h.initCh = ch
		h.mu.Unlock()
		h.run(ctx, "", nil, log)
		h.mu.Lock()
		h.initCh = nil
		if ctx.Err() == nil {
			h.inited = true
		}
		h.mu.Unlock()
		close(ch)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("credhelper: GOAUTH: %w", err)
		}
		return nil
	}
}

// run runs every command, last first as the go command does, so that the
// first to name a prefix sets its headers. With rawURL, each gets it as
// its last argument and resp's head on stdin. A command that fails is
// logged at Warn and changes nothing.
func (h *headerSource) run(ctx context.Context, rawURL string, resp *http.Response, log *slog.Logger) {
	var stdin []byte
	if resp != nil {
		stdin = responseHead(resp)
	}
	cmds := h.g.commands()
	for i := len(cmds) - 1; i >= 0; i-- {
		args := slices.Clone(cmds[i][1:])
		if rawURL != "" {
			args = append(args, rawURL)
		}
		j := &job{name: "GOAUTH command " + cmds[i][0], path: cmds[i][0], args: args, stdin: stdin, timeout: h.g.Timeout}
		out, _, err := j.run(ctx)
		if err == nil {
			var blocks map[string]http.Header
			blocks, err = parseCommandOutput(out)
			if err == nil {
				h.store(blocks)
			} else {
				err = fmt.Errorf("credhelper: GOAUTH command %s: %w", cmds[i][0], err)
			}
		}
		if err != nil {
			log.Warn("credhelper: GOAUTH command failed", slog.String("command", cmds[i][0]), slog.String("error", err.Error()))
			continue
		}
		log.Debug("credhelper: GOAUTH command run", slog.String("command", cmds[i][0]), slog.Bool("with_url", rawURL != ""))
	}
}

// store sets the headers of each prefix; an empty set removes it.
func (h *headerSource) store(blocks map[string]http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.table == nil {
		h.table = map[string]http.Header{}
	}
	for prefix, header := range blocks {
		if len(header) == 0 {
			delete(h.table, prefix)
		} else {
			h.table[prefix] = header
		}
	}
}

// lookup returns the headers of u's longest prefix, nil for none. The
// caller must not modify them.
func (h *headerSource) lookup(u *url.URL) http.Header {
	if u == nil || u.Scheme != "https" {
		return nil
	}
	key := hostKey(u.Host) + strings.TrimSuffix(u.EscapedPath(), "/")
	h.mu.RLock()
	defer h.mu.RUnlock()
	for {
		if header, ok := h.table[key]; ok {
			return header
		}
		i := strings.LastIndexByte(key, '/')
		if i < 0 {
			return nil
		}
		key = key[:i]
	}
}

// hostKey lower-cases host and drops the default port 443.
func hostKey(host string) string {
	return strings.TrimSuffix(strings.ToLower(host), ":443")
}

// parseCommandOutput reads a command's blocks: URL lines, a blank line,
// header lines, a blank line, as the go command does. Its errors never
// quote a line: a header line holds a secret.
func parseCommandOutput(out []byte) (map[string]http.Header, error) {
	blocks := map[string]http.Header{}
	data := string(out)
	line := 0
	next := func() (string, bool) {
		l, rest, ok := strings.Cut(data, "\n")
		data = rest
		line++
		return l, ok
	}
	for data != "" {
		var prefixes []string
		for {
			l, ok := next()
			if !ok {
				return nil, errors.New("invalid format: missing empty line after URLs")
			}
			if l == "" {
				break
			}
			u, err := url.ParseRequestURI(l)
			if err != nil || u.Host == "" {
				return nil, fmt.Errorf("invalid format: line %d is not a URL", line)
			}
			if u.Scheme != "https" {
				continue // the go command never sends them elsewhere
			}
			prefixes = append(prefixes, hostKey(u.Host)+strings.TrimSuffix(u.EscapedPath(), "/"))
		}
		header := http.Header{}
		for {
			l, ok := next()
			if !ok {
				return nil, errors.New("invalid format: missing empty line after headers")
			}
			if l == "" {
				break
			}
			name, value, ok := strings.Cut(l, ": ")
			value = strings.TrimSpace(value)
			if !ok || !validFieldName(name) || !validFieldValue(value) {
				return nil, fmt.Errorf("invalid format: line %d is not a header line", line)
			}
			header.Add(name, value)
		}
		for _, p := range prefixes {
			blocks[p] = header.Clone()
		}
	}
	return blocks, nil
}

// responseHead is what a command reads on stdin after a 4xx: the status
// line, the header lines (sorted), and a blank line.
func responseHead(resp *http.Response) []byte {
	var b strings.Builder
	b.WriteString(resp.Proto + " " + resp.Status + "\n")
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range resp.Header {
			if !yield(k) {
				return
			}
		}
	}) {
		b.WriteString(k + ": " + strings.Join(resp.Header[k], ", ") + "\n")
	}
	b.WriteString("\n")
	return []byte(b.String())
}

// commandURL is the URL a command gets after a 4xx: the request's, with
// no user info or fragment.
func commandURL(u *url.URL) string {
	c := *u
	c.User, c.Fragment, c.RawFragment = nil, "", ""
	return c.String()
}

// String describes the scheme without a header.
func (h *headerSource) String() string { return "GOAUTH headers of " + h.g.String() }

// Format prints String whatever the verb.
func (h *headerSource) Format(f fmt.State, _ rune) { io.WriteString(f, h.String()) }

// headerSession is the GOAUTH session of an origin.
type headerSession struct {
	h   *headerSource
	log *slog.Logger
}

// Start starts a request's leg.
func (s *headerSession) Start(_ context.Context, req *http.Request) (anyauth.Leg, error) {
	return &headerLeg{s: s, url: req.URL}, nil
}

// String describes the session without a header.
func (s *headerSession) String() string { return "GOAUTH session (headers REDACTED)" }

// Format prints String whatever the verb.
func (s *headerSession) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// headerLeg is one request's GOAUTH headers.
type headerLeg struct {
	s     *headerSession
	url   *url.URL
	sent  [sha256.Size]byte // digest of the headers applied last
	rerun bool
}

// Apply sets the headers of the request URL's longest prefix, leaving
// alone a header the caller set.
func (l *headerLeg) Apply(req *http.Request) error {
	header := l.s.h.lookup(req.URL)
	for name, values := range header {
		if _, set := req.Header[name]; set {
			continue
		}
		req.Header[name] = slices.Clone(values)
	}
	l.sent = digestOf(header)
	return nil
}

// digestOf names a set of headers without keeping it.
func digestOf(header http.Header) [sha256.Size]byte {
	hash := sha256.New()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range header {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range header[k] {
			fmt.Fprintf(hash, "%s: %s\n", k, v)
		}
	}
	var d [sha256.Size]byte
	hash.Sum(d[:0])
	return d
}

// Continue runs the commands again with the URL and the 4xx, once per
// request, and replays the request when they gave its URL other headers
// than the ones it carried.
func (l *headerLeg) Continue(ctx context.Context, resp *http.Response, _ *anyauth.Challenge) (bool, error) {
	if l.rerun || resp.StatusCode < 400 || resp.StatusCode > 499 {
		return false, nil
	}
	l.rerun = true
	l.s.h.run(ctx, commandURL(l.url), resp, l.s.log)
	header := l.s.h.lookup(l.url)
	return len(header) > 0 && digestOf(header) != l.sent, nil
}

// RetryAfterResponse runs the commands again with the URL and a final
// 4xx (a 403, or the 404 of a private repository: a 401 went to
// Continue), once per request, and sends the request again when they gave
// its URL other headers, as the go command does (anyauth.RetryingLeg).
func (l *headerLeg) RetryAfterResponse(ctx context.Context, resp *http.Response, _ func(int) ([]byte, error)) (bool, error) {
	return l.Continue(ctx, resp, nil)
}

// Finish runs the commands again with the URL and the response when it is
// a 4xx the request was not sent again for (its body could not be
// replayed, or the answer budget was spent), once per request: what the
// commands give serves the next requests.
func (l *headerLeg) Finish(resp *http.Response) error {
	if l.rerun || resp.StatusCode < 400 || resp.StatusCode > 499 {
		return nil
	}
	l.rerun = true
	ctx := context.Background()
	if resp.Request != nil {
		ctx = resp.Request.Context()
	}
	l.s.h.run(ctx, commandURL(l.url), resp, l.s.log)
	return nil
}

var _ anyauth.RetryingLeg = (*headerLeg)(nil)

// String describes the leg without a header.
func (l *headerLeg) String() string { return "GOAUTH leg (headers REDACTED)" }

// Format prints String whatever the verb.
func (l *headerLeg) Format(f fmt.State, _ rune) { io.WriteString(f, l.String()) }

// validFieldName reports whether name is an RFC 9110 token.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// validFieldValue reports whether value holds no control character but
// tab.
func validFieldValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
