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
// It has curl's habits: -L follows redirects (-u goes to the URLs' origins
// only, unless -location-trusted), -o writes to a file, -i and -I print
// the response head, -s is silent, -f fails on an HTTP error, -T uploads a
// file with PUT, cookies are kept for the run (-b and -c read and write
// a Netscape cookie file), and a progress meter shows on stderr for
// transfers longer than 2 s.
//
// Exit status: 0 when the final status is below 400, 1 when it is 400 or
// above (a proxy that refuses CONNECT included), 22 instead with -f or
// -fail-with-body, as curl, 2 on a usage or transport error.
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
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
)

// options are the parsed command line.
type options struct {
	userPass     string
	count        int
	method       string
	data         string
	verbose      bool
	bearer       string
	oauth2URL    string
	oauth2Client string
	oauth2Scope  string
	oauth1       oauth1Options // -oauth1 and -oauth1-*: see oauth1.go
	sigv4        string        // -aws-sigv4: see sigv4.go
	// -token-cache: share -oauth2-* tokens through Redis.
	tokenCache      string
	tokenCacheKey   string
	tokenCachePlain bool
	// -dpop, -dpop-key, -oauth2-issuer-allow (dpop.go).
	dpop          bool
	dpopKey       string
	issuers       issuerList
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

	// curl's habits.
	location        bool   // -L
	locationTrusted bool   // -location-trusted
	output          string // -o ("" for stdout)
	include         bool   // -i
	head            bool   // -I
	silent          bool   // -s
	fail            bool   // -f
	failWithBody    bool   // -fail-with-body
	upload          string // -T
	progress        bool   // -progress
	cookieIn        string // -b FILE
	cookieHeader    string // -b 'NAME=VALUE; ...'
	cookieOut       string // -c
	proxyAnyauth    bool   // -proxy-anyauth (what fetch always does)

	credhelper credhelperOptions // -goauth, -git-credential, -docker-config (credhelper.go)
	registry   registryOptions   // -registry, -registry-realm (registry.go)

	// closers release what newTransport opened (the token cache's
	// client), when the run ends.
	closers []func()
}

// maxRedirects is how many redirects -L follows, curl's default.
const maxRedirects = 50

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
	fs := newFlagSet(o, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	o.urls = fs.Args()
	if err := o.finish(); err != nil {
		return nil, err
	}
	return o, nil
}

// newFlagSet defines fetch's flags, to be parsed into o.
func newFlagSet(o *options, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.userPass, "u", "", "`USER:PASS` for the URLs' origins only (a redirect to another origin gets none, unless -location-trusted)")
	fs.IntVar(&o.count, "n", 1, "send the requests `N` times with one Transport (shows preemptive reuse); with several URLs, the whole list")
	fs.IntVar(&o.parallel, "P", 1, "send `P` requests at a time through the one Transport, like curl --parallel")
	fs.StringVar(&o.method, "X", "", "request `METHOD` (default GET; POST with -d, PUT with -T, HEAD with -I)")
	fs.StringVar(&o.data, "d", "", "request body `DATA`, or @FILE to stream a file (replayed by seeking)")
	fs.BoolVar(&o.verbose, "v", false, "trace challenges, ranking, choice and round trips to stderr (secrets redacted)")
	fs.StringVar(&o.bearer, "bearer", "", "Bearer `TOKEN` for the URL's origin only")
	fs.StringVar(&o.oauth2URL, "oauth2-token-url", "", "OAuth 2.0 token endpoint `URL`: fetch Bearer tokens with the client-credentials grant (needs -oauth2-client)")
	fs.StringVar(&o.oauth2Client, "oauth2-client", "", "`ID:SECRET` of the OAuth 2.0 client")
	fs.StringVar(&o.oauth2Scope, "oauth2-scope", "", "`SCOPES` to ask for, separated by spaces or commas")
	fs.BoolVar(&o.dpop, "dpop", false, "bind the -oauth2-* tokens to a key (DPoP, RFC 9449): a new P-256 key for this run, or -dpop-key's")
	fs.StringVar(&o.dpopKey, "dpop-key", "", "PEM `FILE` of the DPoP private key (PKCS#8, EC or RSA); implies -dpop")
	fs.Var(&o.issuers, "oauth2-issuer-allow", "an authorization server `URL` that may get -oauth2-client's secret: discover the token endpoint from the server's challenge (RFC 9728 resource_metadata); repeatable, instead of -oauth2-token-url")
	o.oauth1.addFlags(fs) // -oauth1 and -oauth1-*: see oauth1.go
	fs.StringVar(&o.sigv4, "aws-sigv4", "", sigv4Usage)
	fs.StringVar(&o.tokenCache, "token-cache", "", "share the -oauth2-* tokens through Redis at `URL` (redis://HOST:PORT/DB): fetch processes with the same client fetch one token between them, encrypted at rest")
	fs.StringVar(&o.tokenCacheKey, "token-cache-key", "", "`FILE` holding the -token-cache encryption key (32 bytes, 64 hex digits or base64; one a line, the first encrypts); default $"+tokenCacheKeyEnv)
	fs.BoolVar(&o.tokenCachePlain, "token-cache-plaintext", false, "store -token-cache tokens unencrypted (no key)")
	fs.StringVar(&o.proxy, "proxy", "", "proxy `URL` (http://[user:pass@]host:port) for http and https targets; default: $HTTP_PROXY, $HTTPS_PROXY, $NO_PROXY")
	fs.StringVar(&o.proxyUser, "proxy-user", "", "`USER:PASS` for the proxy only")
	fs.BoolVar(&o.negotiate, "negotiate", false, "answer Negotiate (Kerberos) challenges with the ticket kinit left ($KRB5CCNAME, $KRB5_CONFIG), or with -u's password, like curl --negotiate")
	fs.BoolVar(&o.ntlm, "ntlm", false, "answer NTLM challenges (also NTLM inside Negotiate) with -u 'DOMAIN\\user:pass', for the origin and, with -proxy-user, the proxy")
	fs.StringVar(&o.cacert, "cacert", "", "PEM `FILE` of CA certificates to trust for https")
	fs.BoolVar(&o.netrc, "netrc", false, "read credentials from $NETRC or ~/.netrc")
	fs.BoolVar(&o.insecureClear, "allow-cleartext", false, "allow Basic over plain http to non-loopback hosts")
	fs.Var(&o.headers, "H", "extra request `HEADER` (\"Name: value\"), repeatable")
	fs.BoolVar(&o.location, "L", false, fmt.Sprintf("follow redirects, up to %d as curl; -u still goes to the URLs' origins only", maxRedirects))
	fs.BoolVar(&o.locationTrusted, "location-trusted", false, "like -L, and answer the challenges of every host the redirects reach with -u's credentials (curl --location-trusted)")
	fs.StringVar(&o.output, "o", "", "write the body (and with -i the head) to `FILE` instead of stdout; created once a response is written, so -f leaves none (\"-\": stdout)")
	fs.BoolVar(&o.include, "i", false, "print each response's status line and headers (redirects' too) before the body")
	fs.BoolVar(&o.head, "I", false, "send HEAD (unless -X) and print the status line and headers only")
	fs.BoolVar(&o.silent, "s", false, "silent: no progress meter, status lines or summary on stderr; errors still")
	fs.BoolVar(&o.fail, "f", false, "fail: exit 22 when a final status is 400 or more, and print no body for it")
	fs.BoolVar(&o.failWithBody, "fail-with-body", false, "like -f, but print the body")
	fs.StringVar(&o.upload, "T", "", "upload `FILE` with PUT (unless -X), streamed and replayed after a challenge by seeking; a URL ending in / gets the file's name")
	fs.BoolVar(&o.progress, "progress", false, "show the progress meter on stderr from the start (otherwise only for transfers over 2 s); never with -s, nor when stdout is the terminal being written")
	fs.StringVar(&o.cookieIn, "b", "", "read cookies from the Netscape cookie `FILE` (ignored if missing), or send them as given when the argument holds a = (\"NAME=VALUE; NAME2=VALUE2\")")
	fs.StringVar(&o.cookieOut, "c", "", "write the run's cookies to the Netscape cookie `FILE` at the end (cookies are kept in memory for the run in any case)")
	fs.BoolVar(&o.proxyAnyauth, "proxy-anyauth", false, "accepted for curl's sake: answering the proxy's strongest challenge is what fetch always does")
	addCredhelperFlags(fs, &o.credhelper)
	addRegistryFlags(fs, &o.registry)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fetch [flags] [URL ...]\n\nWith no URL, fetch runs its demo against an embedded server.\n\nflags:")
		fs.PrintDefaults()
	}
	return fs
}

// finish checks the parsed options and fills in what follows from them.
func (o *options) finish() error {
	if o.count < 1 || o.parallel < 1 {
		return usageError{"-n and -P must be at least 1"}
	}
	if strings.Contains(o.cookieIn, "=") { // curl's rule: a = makes it cookies, not a file
		o.cookieHeader, o.cookieIn = o.cookieIn, ""
	}
	if o.output == "-" {
		o.output = ""
	}
	if o.locationTrusted {
		o.location = true
	}
	if o.fail && o.failWithBody {
		return usageError{"-f and -fail-with-body: give one"}
	}
	if o.data != "" && o.upload != "" {
		return usageError{"-d and -T are two request bodies: give one"}
	}
	if o.head && (o.data != "" || o.upload != "") {
		return usageError{"-I sends HEAD, without the body of -d or -T"}
	}
	if o.dpopKey != "" {
		o.dpop = true
	}
	if (o.oauth2URL != "" || len(o.issuers) > 0) != (o.oauth2Client != "") {
		return usageError{"-oauth2-client goes with -oauth2-token-url or -oauth2-issuer-allow"}
	}
	if o.oauth2URL != "" && len(o.issuers) > 0 {
		return usageError{"-oauth2-token-url and -oauth2-issuer-allow are two ways to find the token endpoint: give one"}
	}
	if o.dpop && o.oauth2Client == "" {
		return usageError{"-dpop binds the tokens of -oauth2-client: give it too"}
	}
	if o.tokenCache != "" && o.oauth2Client == "" {
		return usageError{"-token-cache shares the tokens of -oauth2-client: give it too"}
	}
	if (o.tokenCacheKey != "" || o.tokenCachePlain) && o.tokenCache == "" {
		return usageError{"-token-cache-key and -token-cache-plaintext need -token-cache"}
	}
	if o.tokenCacheKey != "" && o.tokenCachePlain {
		return usageError{"-token-cache-key and -token-cache-plaintext: give one"}
	}
	if o.bearer != "" && o.oauth2URL != "" {
		return usageError{"-bearer and -oauth2-token-url are two ways to get a token: give one"}
	}
	if o.method == "" {
		switch {
		case o.head:
			o.method = http.MethodHead
		case o.upload != "":
			o.method = http.MethodPut
		case o.data != "":
			o.method = http.MethodPost
		default:
			o.method = http.MethodGet
		}
	}
	return nil
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
	errw := &stderrWriter{w: stderr}
	defer func() {
		for _, c := range o.closers {
			c()
		}
	}()
	status, err := fetch(o, stdout, errw)
	var pe *anyauth.ProxyConnectError
	switch {
	case errors.As(err, &pe):
		// The proxy answered, and refused: an HTTP-level failure, as a
		// final 407 to a plain-http request is.
		fmt.Fprintln(errw, "fetch:", pe)
		return 1
	case err != nil:
		fmt.Fprintln(errw, "fetch:", err)
		return 2
	case status >= 400 && (o.fail || o.failWithBody):
		fmt.Fprintf(errw, "fetch: (22) The requested URL returned error: %d\n", status)
		return 22
	case status >= 400:
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
	signed, err := addSigV4(o, t, origins) // -aws-sigv4: -u is the AWS key (sigv4.go)
	if err != nil {
		return nil, err
	}
	if o.userPass != "" && !signed {
		user, pass, ok := strings.Cut(o.userPass, ":")
		if !ok {
			return nil, usageError{"-u wants USER:PASS"}
		}
		if o.locationTrusted {
			// Every origin the redirects reach, as curl
			// --location-trusted: any host, over http or https (Basic
			// still goes in the clear only where the Transport allows).
			up := anyauth.UserPassword{Username: user, Password: pass}
			creds = append(creds, anyauth.CredentialTable{{Host: "https://*", UserPassword: up}, {Host: "http://*", UserPassword: up}})
		} else {
			for _, origin := range origins {
				creds = append(creds, anyauth.ForOrigin(origin, user, pass))
			}
		}
	}
	if o.netrc {
		creds = append(creds, anyauth.NetrcFromEnv())
	}
	if err := o.credhelper.apply(t, &creds, origins); err != nil { // credhelper.go
		return nil, err
	}
	if len(creds) > 0 {
		t.Credentials = creds
	}
	switch {
	case o.bearer != "":
		t.Schemes = append(t.Schemes, schemes.NewStaticBearer(o.bearer, origins...))
	case o.oauth2Client != "":
		sc, b, err := oauth2Scheme(o, origins)
		if err != nil {
			return nil, err
		}
		if o.tokenCache != "" {
			store, closeStore, err := tokenCache(o, stderr)
			if err != nil {
				return nil, err
			}
			o.closers = append(o.closers, closeStore)
			if b != nil {
				b.Store = store
			} else {
				sc.(*schemes.Discovery).Store = store
			}
		}
		t.Schemes = append(t.Schemes, sc)
	}
	if err := o.oauth1.addScheme(t, origins); err != nil { // -oauth1 and -oauth1-*: see oauth1.go
		return nil, err
	}
	if err := o.registry.addScheme(t); err != nil { // -registry: see registry.go
		return nil, err
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
// the last round (to the -o file, if any). It returns the worst final
// status.
func fetch(o *options, stdout io.Writer, stderr *stderrWriter) (int, error) {
	var targets []*url.URL
	for _, raw := range o.urls {
		target, err := url.Parse(raw)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return 0, usageError{fmt.Sprintf("%q is not an http(s) URL", raw)}
		}
		if o.upload != "" && (target.Path == "" || strings.HasSuffix(target.Path, "/")) {
			// curl -T FILE http://host/dir/ puts to /dir/FILE.
			target = target.JoinPath(url.PathEscape(filepath.Base(o.upload)))
		}
		targets = append(targets, target)
	}
	jar := newCookieJar()
	if o.cookieIn != "" {
		if err := jar.load(o.cookieIn); err != nil {
			return 0, err
		}
	}
	t, err := newTransport(o, targets, stderr)
	if err != nil {
		return 0, err
	}
	defer t.CloseIdleConnections()
	for _, target := range targets {
		target.User = nil // its credentials went to the Transport
	}
	// The jar keeps the cookies of every response for the whole run: the
	// Transport's of the 401s and 407s it answers (a server may bind its
	// Digest nonce to a session cookie), the Client's of the others.
	t.Jar = jar
	client := &http.Client{Transport: t, Jar: jar, CheckRedirect: o.checkRedirect}
	out := &output{path: o.output, w: stdout}
	m := startMeter(stderr, !o.silent && (o.output != "" || !isTerminal(stdout)), o.progress)

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
				// One request at a time streams its response to the
				// output; several keep theirs until they are done, so
				// that responses are not interleaved.
				var sink func() io.Writer
				var buf *bytes.Buffer
				if j.last {
					if o.parallel == 1 {
						sink = out.open
					} else {
						sink = func() io.Writer {
							if buf == nil {
								buf = new(bytes.Buffer)
							}
							return buf
						}
					}
				}
				var why anyauth.Diagnosis
				status, final, err := fetchOne(anyauth.WithDiagnosis(ctx, &why), client, o, j.target, sink, m)
				mu.Lock()
				requests++
				if err == nil && buf != nil {
					_, err = out.open().Write(buf.Bytes())
				}
				if err != nil {
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				statuses[status]++
				worst = max(worst, status)
				if !o.silent {
					at := ""
					if final.String() != j.target.String() {
						at = " at " + final.String()
					}
					fmt.Fprintf(stderr, "< %s %s: %d %s%s\n", o.method, j.target, status, http.StatusText(status), at)
					if d := why.Err(); d != nil && (status == http.StatusUnauthorized || status == http.StatusProxyAuthRequired) {
						// Why the challenge went unanswered.
						fmt.Fprintf(stderr, "fetch: not answered: %v\n", d)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	m.stop()
	if err := out.close(); err != nil && firstErr == nil {
		firstErr = err
	}
	if o.cookieOut != "" {
		if err := jar.save(o.cookieOut); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if o.verbose || (requests > 1 && !o.silent) {
		fmt.Fprintf(stderr, "fetch: %s, final statuses %s, %s\n", plural(requests, "request"), statusSummary(statuses), plural(int(trips.Load()), "round trip"))
	}
	return worst, firstErr
}

// sinkKey is the context key of a request's sink: the func that returns
// where its response is printed, for the heads of redirects under -i.
type sinkKey struct{}

// checkRedirect is the Client's: without -L the redirect is the response;
// with -L it is followed, up to maxRedirects, and its head printed with -i.
// The Transport answers each hop's challenges with the credentials of that
// hop's origin: -u's go to the URLs' origins only, unless -location-trusted.
func (o *options) checkRedirect(req *http.Request, via []*http.Request) error {
	if !o.location {
		return http.ErrUseLastResponse
	}
	if len(via) > maxRedirects {
		return fmt.Errorf("maximum (%d) redirects followed", maxRedirects)
	}
	if sink, ok := req.Context().Value(sinkKey{}).(func() io.Writer); ok && (o.include || o.head) && req.Response != nil {
		return writeHead(sink(), req.Response)
	}
	return nil
}

// fetchOne sends one request and reads its response. When sink is not
// nil, the response is printed to what it returns: the head with -i or
// -I, the body unless -I, nothing with -f when the status is 400 or more.
// It returns the final status and URL (after -L's redirects).
func fetchOne(ctx context.Context, client *http.Client, o *options, target *url.URL, sink func() io.Writer, m *meter) (int, *url.URL, error) {
	if sink != nil {
		ctx = context.WithValue(ctx, sinkKey{}, sink)
	}
	req, err := newRequest(ctx, o, target, m)
	if err != nil {
		return 0, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var dst io.Writer = io.Discard
	if sink != nil && !(o.fail && resp.StatusCode >= 400) {
		w := sink()
		if o.include || o.head {
			if err := writeHead(w, resp); err != nil {
				return 0, nil, err
			}
		}
		if !o.head {
			dst = w
		}
	}
	if _, err := io.Copy(dst, m.counted(resp.Body)); err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, resp.Request.URL, nil
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

// newRequest builds one request; a -d @FILE or -T FILE body is an
// *os.File (counted for the meter), which the Transport replays by
// seeking, never holding it in memory.
func newRequest(ctx context.Context, o *options, target *url.URL, m *meter) (*http.Request, error) {
	for _, h := range o.headers {
		if !strings.Contains(h, ":") {
			return nil, usageError{fmt.Sprintf("-H %q wants \"Name: value\"", h)}
		}
	}
	var body io.Reader
	var size int64 = -1
	file := o.upload
	if strings.HasPrefix(o.data, "@") {
		file = o.data[1:]
	}
	switch {
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		body = m.countedFile(f)
	case o.data != "":
		body = bytes.NewReader([]byte(o.data))
	}
	req, err := http.NewRequestWithContext(ctx, o.method, target.String(), body)
	if err != nil {
		if c, ok := body.(io.Closer); ok {
			c.Close()
		}
		return nil, err
	}
	if size >= 0 {
		req.ContentLength = size
	}
	for _, h := range o.headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	if o.cookieHeader != "" {
		req.Header.Add("Cookie", o.cookieHeader)
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
