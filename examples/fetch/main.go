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
// Exit status: 0 when the final status is below 400, 1 when it is 400 or
// above (a proxy that refuses CONNECT included), 2 on a usage or transport
// error.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/anyauth/anyauth"
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
	cacert        string
	netrc         bool
	insecureClear bool
	headers       headerList
	url           string
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
	fs.IntVar(&o.count, "n", 1, "send the request `N` times with one Transport (shows preemptive reuse)")
	fs.StringVar(&o.method, "X", "", "request `METHOD` (default GET, or POST with -d)")
	fs.StringVar(&o.data, "d", "", "request body `DATA`, or @FILE to stream a file (replayed by seeking)")
	fs.BoolVar(&o.verbose, "v", false, "trace challenges, ranking, choice and round trips to stderr (secrets redacted)")
	fs.StringVar(&o.bearer, "bearer", "", "Bearer `TOKEN` for the URL's origin only")
	fs.StringVar(&o.oauth2URL, "oauth2-token-url", "", "OAuth 2.0 token endpoint `URL`: fetch Bearer tokens with the client-credentials grant (needs -oauth2-client)")
	fs.StringVar(&o.oauth2Client, "oauth2-client", "", "`ID:SECRET` of the OAuth 2.0 client")
	fs.StringVar(&o.oauth2Scope, "oauth2-scope", "", "`SCOPES` to ask for, separated by spaces or commas")
	fs.StringVar(&o.proxy, "proxy", "", "proxy `URL` (http://[user:pass@]host:port) for http and https targets; default: $HTTP_PROXY, $HTTPS_PROXY, $NO_PROXY")
	fs.StringVar(&o.proxyUser, "proxy-user", "", "`USER:PASS` for the proxy only")
	fs.BoolVar(&o.negotiate, "negotiate", false, "answer Negotiate (Kerberos) challenges (not yet supported)")
	fs.StringVar(&o.cacert, "cacert", "", "PEM `FILE` of CA certificates to trust for https")
	fs.BoolVar(&o.netrc, "netrc", false, "read credentials from $NETRC or ~/.netrc")
	fs.BoolVar(&o.insecureClear, "allow-cleartext", false, "allow Basic over plain http to non-loopback hosts")
	fs.Var(&o.headers, "H", "extra request `HEADER` (\"Name: value\"), repeatable")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fetch [flags] [URL]\n\nWith no URL, fetch runs its demo against an embedded server.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, usageError{err.Error()}
	}
	switch fs.NArg() {
	case 0:
	case 1:
		o.url = fs.Arg(0)
	default:
		return nil, usageError{"fetch takes one URL"}
	}
	if o.count < 1 {
		return nil, usageError{"-n must be at least 1"}
	}
	if (o.oauth2URL == "") != (o.oauth2Client == "") {
		return nil, usageError{"-oauth2-token-url and -oauth2-client go together"}
	}
	if o.bearer != "" && o.oauth2URL != "" {
		return nil, usageError{"-bearer and -oauth2-token-url are two ways to get a token: give one"}
	}
	if o.negotiate {
		return nil, usageError{"-negotiate: not yet supported"}
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
	if o.url == "" {
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

// newTransport builds the anyauth.Transport the options describe.
func newTransport(o *options, target *url.URL, stderr io.Writer) (*anyauth.Transport, error) {
	base := http.DefaultTransport.(*http.Transport).Clone() // proxies from the environment
	t := &anyauth.Transport{
		Base:           base,
		Schemes:        []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		AllowCleartext: o.insecureClear,
	}
	var creds anyauth.Chain
	if o.userPass != "" {
		user, pass, ok := strings.Cut(o.userPass, ":")
		if !ok {
			return nil, usageError{"-u wants USER:PASS"}
		}
		creds = append(creds, anyauth.ForOrigin(target.Scheme+"://"+target.Host, user, pass))
	}
	if o.netrc {
		creds = append(creds, anyauth.NetrcFromEnv())
	}
	if len(creds) > 0 {
		t.Credentials = creds
	}
	origin := target.Scheme + "://" + target.Host
	switch {
	case o.bearer != "":
		t.Schemes = append(t.Schemes, schemes.NewStaticBearer(o.bearer, origin))
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
		t.Schemes = append(t.Schemes, schemes.NewBearer(cfg.Token, origin))
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

// fetch sends the request o.count times and prints the last body. It
// returns the last status.
func fetch(o *options, stdout, stderr io.Writer) (int, error) {
	target, err := url.Parse(o.url)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return 0, usageError{fmt.Sprintf("%q is not an http(s) URL", o.url)}
	}
	t, err := newTransport(o, target, stderr)
	if err != nil {
		return 0, err
	}
	defer t.CloseIdleConnections()
	client := &http.Client{Transport: t}
	status := 0
	for i := 0; i < o.count; i++ {
		req, err := newRequest(o)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		status = resp.StatusCode
		fmt.Fprintf(stderr, "< %s %s: %s\n", req.Method, safe(req.URL), resp.Status)
		if i == o.count-1 {
			_, err = io.Copy(stdout, resp.Body)
		} else {
			_, err = io.Copy(io.Discard, resp.Body)
		}
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
	}
	return status, nil
}

func safe(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

// newRequest builds one request; a -d @FILE body is an *os.File, which the
// Transport replays by seeking, never holding it in memory.
func newRequest(o *options) (*http.Request, error) {
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
	req, err := http.NewRequest(o.method, o.url, body)
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
