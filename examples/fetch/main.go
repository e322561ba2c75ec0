// Command fetch is a curl-like client built on anyauth: it answers the
// server's (and the proxy's) authentication challenges by itself, picking
// the strongest one it has credentials for.
//
// Usage:
//
//	fetch [flags] [URL]
//
// With no URL it starts an embedded demo server that offers Basic, Digest
// MD5 and Digest SHA-256 on the same resource, runs against it, and prints
// a trace of which challenge was chosen and why.
//
// Through a proxy (-proxy, or $HTTP_PROXY and $HTTPS_PROXY as curl reads
// them) it answers the proxy's 407 for http targets on the request, and
// for https targets on the CONNECT that opens the tunnel; -v shows each
// CONNECT with its status.
//
// -negotiate answers Negotiate with Kerberos, using the ticket kinit left
// ($KRB5CCNAME, $KRB5_CONFIG) or -u's password, as curl --negotiate does;
// -ntlm answers NTLM, under its own name and inside Negotiate, with
// -u 'DOMAIN\user:pass' (and -proxy-user for a proxy).
//
// Exit status: 0 when the final status is below 400, 1 when it is 400 or
// above (a proxy that refuses CONNECT included), 2 on a usage or transport
// error.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2/clientcredentials"
)

// options are the parsed command line.
type options struct {
	userPass      string
	count         int
	method        string
	data          string
	verbose       bool
	bearer        string
	oauth2URL     string
	oauth2Client  string
	oauth2Scope   string
	proxy         string
	proxyUser     string
	negotiate     bool
	ntlm          bool
	cacert        string
	netrc         bool
	insecureClear bool
	headers       headerList
	parallel      int
	urls          []string
}

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError is a mistake on the command line: exit status 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func parse(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.userPass, "u", "", "`USER:PASS` for the URL's origin only (a redirect to another origin gets none)")
	fs.IntVar(&o.count, "n", 1, "send the requests `N` times with one Transport (shows preemptive reuse); with several URLs, the whole list")
	fs.IntVar(&o.parallel, "P", 1, "send `P` requests at a time through the one Transport, like curl --parallel")
	fs.StringVar(&o.method, "X", "", "request `METHOD` (default GET, or POST with -d)")
	fs.StringVar(&o.data, "d", "", "request body `DATA`, or @FILE to stream a file (replayed by seeking)")
	fs.BoolVar(&o.verbose, "v", false, "trace challenges, ranking, choice and round trips to stderr (secrets redacted)")
	fs.StringVar(&o.bearer, "bearer", "", "Bearer `TOKEN` for the URL's origin only")
	fs.StringVar(&o.oauth2URL, "oauth2-token-url", "", "OAuth 2.0 token endpoint `URL`: fetch Bearer tokens with the client-credentials grant (needs -oauth2-client)")
	fs.StringVar(&o.oauth2Client, "oauth2-client", "", "`ID:SECRET` of the OAuth 2.0 client")
	fs.StringVar(&o.oauth2Scope, "oauth2-scope", "", "`SCOPES` to ask for, separated by spaces or commas")
	fs.StringVar(&o.proxy, "proxy", "", "proxy `URL` (http://[user:pass@]host:port) for http and https targets; default: $HTTP_PROXY, $HTTPS_PROXY, $NO_PROXY")
	fs.StringVar(&o.proxyUser, "proxy-user", "", "`USER:PASS` for the proxy only")
	fs.BoolVar(&o.negotiate, "negotiate", false, "answer Negotiate (Kerberos) challenges with the ticket kinit left ($KRB5CCNAME, $KRB5_CONFIG), or with -u's password, like curl --negotiate")
	fs.BoolVar(&o.ntlm, "ntlm", false, "answer NTLM challenges (also NTLM inside Negotiate) with -u 'DOMAIN\\user:pass', for the origin and, with -proxy-user, the proxy")
	fs.StringVar(&o.cacert, "cacert", "", "PEM `FILE` of CA certificates to trust for https")
	fs.BoolVar(&o.netrc, "netrc", false, "read credentials from $NETRC or ~/.netrc")
	fs.BoolVar(&o.insecureClear, "allow-cleartext", false, "allow Basic over plain http to non-loopback hosts")
	fs.Var(&o.headers, "H", "extra request `HEADER` (\"Name: value\"), repeatable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fetch [flags] [URL ...]\n\nWith no URL, fetch runs its demo against an embedded server.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	o.urls = fs.Args()
	if o.count < 1 || o.parallel < 1 {
		return nil, usageError{"-n and -P must be at least 1"}
	}
	if (o.oauth2URL == "") != (o.oauth2Client == "") {
		return nil, usageError{"-oauth2-token-url and -oauth2-client go together"}
	}
	if o.bearer != "" && o.oauth2URL != "" {
		return nil, usageError{"-bearer and -oauth2-token-url are two ways to get a token: give one"}
	}
	if o.method == "" {
		o.method = http.MethodGet
		if o.data != "" {
			o.method = http.MethodPost
		}
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) || (err != nil && strings.Contains(err.Error(), flag.ErrHelp.Error())) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return 2
	}
	if len(o.urls) == 0 {
		return runDemo(stdout, stderr)
	}
	status, err := fetch(o, stdout, stderr)
	var pe *anyauth.ProxyConnectError
	if errors.As(err, &pe) {
		// The proxy answered, and refused: an HTTP-level failure, as a
		// final 407 to a plain-http request is.
		fmt.Fprintln(stderr, "fetch:", pe)
		return 1
	}
	if err != nil {
		fmt.Fprintln(stderr, "fetch:", err)
		return 2
	}
	if status >= 400 {
		return 1
	}
	return 0
}

// newTransport builds the anyauth.Transport the options describe, for
// requests to targets. -u, -bearer and the OAuth 2.0 token go to the
// targets' origins only; a target's own user info goes to its origin.
func newTransport(o *options, targets []*url.URL, stderr io.Writer) (*anyauth.Transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone() // proxies from the environment
	t := &anyauth.Transport{
		Base:           base,
		Schemes:        []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		AllowCleartext: o.insecureClear,
		// A piped body (-d @/dev/stdin) larger than the replay buffer
		// waits behind "Expect: 100-continue" until the server has
		// challenged it, as curl does.
		ExpectContinue: true,
	}
	var creds anyauth.Chain
	var origins []string
	seen := map[string]bool{}
	for _, target := range targets {
		origin := target.Scheme + "://" + target.Host
		if target.User != nil { // http://user:pass@host/ means -u for that origin, as in curl
			pass, _ := target.User.Password()
			creds = append(creds, anyauth.ForOrigin(origin, target.User.Username(), pass))
		}
		if !seen[origin] {
			seen[origin] = true
			origins = append(origins, origin)
		}
	}
	if o.userPass != "" {
		user, pass, ok := strings.Cut(o.userPass, ":")
		if !ok {
			return nil, usageError{"-u wants USER:PASS"}
		}
		for _, origin := range origins {
			creds = append(creds, anyauth.ForOrigin(origin, user, pass))
		}
	}
	if o.netrc {
		creds = append(creds, anyauth.NetrcFromEnv())
	}
	if len(creds) > 0 {
		t.Credentials = creds
	}
	switch {
	case o.bearer != "":
		t.Schemes = append(t.Schemes, schemes.NewStaticBearer(o.bearer, origins...))
	case o.oauth2URL != "":
		id, secret, ok := strings.Cut(o.oauth2Client, ":")
		if !ok {
			return nil, usageError{"-oauth2-client wants ID:SECRET"}
		}
		cfg := &clientcredentials.Config{
			ClientID:     id,
			ClientSecret: secret,
			TokenURL:     o.oauth2URL,
			Scopes:       strings.FieldsFunc(o.oauth2Scope, func(r rune) bool { return r == ' ' || r == ',' }),
		}
		t.Schemes = append(t.Schemes, schemes.NewBearer(cfg.Token, origins...))
	}
	if o.negotiate {
		t.Schemes = append(t.Schemes, &negotiate.Kerberos{})
	}
	if o.ntlm {
		t.Schemes = append(t.Schemes, ntlm.Schemes(ntlm.Options{})...)
	}
	if o.proxy != "" {
		pu, err := url.Parse(o.proxy)
		if err != nil || pu.Host == "" {
			return nil, usageError{fmt.Sprintf("-proxy %q is not a URL", o.proxy)}
		}
		base.Proxy = http.ProxyURL(pu)
		if o.proxyUser != "" {
			user, pass, ok := strings.Cut(o.proxyUser, ":")
			if !ok {
				return nil, usageError{"-proxy-user wants USER:PASS"}
			}
			t.ProxyCredentials = anyauth.ForOrigin(pu.Scheme+"://"+pu.Host, user, pass)
		}
	}
	if o.cacert != "" {
		pem, err := os.ReadFile(o.cacert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{"-cacert: no PEM certificate in " + o.cacert}
		}
		base.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	if o.verbose {
		t.Logger = newTraceLogger(stderr)
	}
	return t, nil
}

// fetch sends the request to every URL, the whole list o.count times, up
// to o.parallel at a time through one Transport, and prints the bodies of
// the last round. It returns the worst final status.
func fetch(o *options, stdout, stderr io.Writer) (int, error) {
	var targets []*url.URL
	for _, raw := range o.urls {
		target, err := url.Parse(raw)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return 0, usageError{fmt.Sprintf("%q is not an http(s) URL", raw)}
		}
		targets = append(targets, target)
	}
	t, err := newTransport(o, targets, stderr)
	if err != nil {
		return 0, err
	}
	defer t.CloseIdleConnections()
	for _, target := range targets {
		target.User = nil // its credentials went to the Transport
	}
	client := &http.Client{Transport: t}

	type job struct {
		target *url.URL
		last   bool // of the last round: print its body
	}
	jobs := make(chan job)
	go func() {
		for i := 0; i < o.count; i++ {
			for _, target := range targets {
				jobs <- job{target, i == o.count-1}
			}
		}
		close(jobs)
	}()
	var (
		mu       sync.Mutex
		statuses = map[int]int{}
		worst    int
		firstErr error
		trips    atomic.Int64
		requests int
	)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { trips.Add(1) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	var wg sync.WaitGroup
	for range o.parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				var why anyauth.Diagnosis
				status, body, err := fetchOne(anyauth.WithDiagnosis(ctx, &why), client, o, j.target)
				mu.Lock()
				requests++
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				statuses[status]++
				worst = max(worst, status)
				fmt.Fprintf(stderr, "< %s %s: %d %s\n", o.method, j.target, status, http.StatusText(status))
				if d := why.Err(); d != nil && (status == http.StatusUnauthorized || status == http.StatusProxyAuthRequired) {
					// Why the challenge went unanswered.
					fmt.Fprintf(stderr, "fetch: not answered: %v\n", d)
				}
				if j.last {
					stdout.Write(body)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if o.verbose || requests > 1 {
		fmt.Fprintf(stderr, "fetch: %s, final statuses %s, %s\n", plural(requests, "request"), statusSummary(statuses), plural(int(trips.Load()), "round trip"))
	}
	return worst, firstErr
}

// fetchOne sends one request and reads its body.
func fetchOne(ctx context.Context, client *http.Client, o *options, target *url.URL) (int, []byte, error) {
	req, err := newRequest(ctx, o, target)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// statusSummary lists statuses as "318x200 2x401", most frequent first.
func statusSummary(statuses map[int]int) string {
	codes := make([]int, 0, len(statuses))
	for c := range statuses {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool {
		if statuses[codes[i]] != statuses[codes[j]] {
			return statuses[codes[i]] > statuses[codes[j]]
		}
		return codes[i] < codes[j]
	})
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%dx%d", statuses[c], c)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}

// newRequest builds one request; a -d @FILE body is an *os.File, which the
// Transport replays by seeking, never holding it in memory.
func newRequest(ctx context.Context, o *options, target *url.URL) (*http.Request, error) {
	var body io.Reader
	var size int64 = -1
	switch {
	case strings.HasPrefix(o.data, "@"):
		f, err := os.Open(o.data[1:])
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		body = f
	case o.data != "":
		body = bytes.NewReader([]byte(o.data))
	}
	req, err := http.NewRequestWithContext(ctx, o.method, target.String(), body)
	if err != nil {
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	for _, h := range o.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			return nil, usageError{fmt.Sprintf("-H %q wants \"Name: value\"", h)}
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	return req, nil
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
