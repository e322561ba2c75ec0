package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"
)

// cookieJar is the run's cookie jar. net/http/cookiejar keeps the cookies
// and picks those of each request; cookieJar keeps a copy of every cookie
// it stores, with its attributes, since cookiejar cannot list them and -c
// must write them out.
type cookieJar struct {
	jar *cookiejar.Jar

	mu   sync.Mutex
	kept map[cookieKey]*keptCookie
	seq  int
}

// cookieKey names a cookie as RFC 6265 §5.3 does: a cookie replaces the
// one of the same name, domain and path.
type cookieKey struct{ domain, path, name string }

type keptCookie struct {
	cookieKey
	hostOnly bool // no Domain attribute: this host only, not its subdomains
	secure   bool
	httpOnly bool
	expires  time.Time // zero for a session cookie
	value    string
	seq      int // order of arrival, for a stable file
}

func newCookieJar() *cookieJar {
	jar, _ := cookiejar.New(&cookiejar.Options{PublicSuffixList: publicsuffix.List}) // never fails
	return &cookieJar{jar: jar, kept: map[cookieKey]*keptCookie{}}
}

func (j *cookieJar) Cookies(u *url.URL) []*http.Cookie { return j.jar.Cookies(u) }

// SetCookies stores the cookies a response to u set, as cookiejar does;
// it drops those whose Domain u's host may not set.
func (j *cookieJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return
	}
	host := strings.ToLower(u.Hostname())
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	taken := make([]*http.Cookie, 0, len(cookies))
	for _, c := range cookies {
		domain, hostOnly, ok := cookieDomain(host, c.Domain)
		if !ok {
			continue
		}
		taken = append(taken, c)
		path := c.Path
		if path == "" || path[0] != '/' {
			path = defaultCookiePath(u.Path)
		}
		k := cookieKey{domain, path, c.Name}
		var expires time.Time
		switch {
		case c.MaxAge < 0: // Max-Age=0 or less: delete it
			delete(j.kept, k)
			continue
		case c.MaxAge > 0:
			expires = now.Add(time.Duration(c.MaxAge) * time.Second)
		case !c.Expires.IsZero():
			if !c.Expires.After(now) {
				delete(j.kept, k)
				continue
			}
			expires = c.Expires
		}
		kc := j.kept[k]
		if kc == nil {
			j.seq++
			kc = &keptCookie{cookieKey: k, seq: j.seq}
			j.kept[k] = kc
		}
		kc.hostOnly, kc.secure, kc.httpOnly, kc.expires, kc.value = hostOnly, c.Secure, c.HttpOnly, expires, c.Value
	}
	j.jar.SetCookies(u, taken)
}

// cookieDomain returns the domain a cookie with the Domain attribute attr
// set by host belongs to, and whether it is for host only. A Domain must
// be host or a parent of it, and not a public suffix ("com", "co.uk"), as
// browsers and curl have it.
func cookieDomain(host, attr string) (string, bool, bool) {
	if attr == "" {
		return host, true, true
	}
	d := strings.ToLower(strings.TrimPrefix(attr, "."))
	switch {
	case d == host:
		// A domain cookie of host; on an IP address, host only (as
		// cookiejar, browsers and curl have it).
		return d, net.ParseIP(host) != nil, true
	case net.ParseIP(host) != nil, !strings.HasSuffix(host, "."+d), !strings.Contains(d, "."):
		return "", false, false
	}
	if ps, icann := publicsuffix.PublicSuffix(d); ps == d && icann {
		return "", false, false // a cookie for every site under co.uk
	}
	return d, false, true
}

// defaultCookiePath is RFC 6265 §5.1.4's default-path of a request path.
func defaultCookiePath(p string) string {
	i := strings.LastIndex(p, "/")
	if p == "" || p[0] != '/' || i == 0 {
		return "/"
	}
	return p[:i]
}

// The Netscape cookie file (curl's -b and -c, wget's, browsers' exports):
// one cookie a line, seven fields separated by tabs:
//
//	domain  include-subdomains  path  secure  expiry  name  value
//
// include-subdomains and secure are TRUE or FALSE; expiry is a Unix time,
// 0 for a session cookie. Lines starting with # are comments, except
// "#HttpOnly_", which marks an HttpOnly cookie before its domain.
const (
	cookieFileHeader = "# Netscape HTTP Cookie File\n# Written by fetch -c (anyauth). Fields: domain, include subdomains, path, secure, expiry, name, value.\n\n"
	httpOnlyPrefix   = "#HttpOnly_"
)

// load reads the Netscape cookie file at path into the jar. A missing file
// is no cookies, as in curl (-b FILE -c FILE on the first run); so are its
// malformed lines. Expired cookies are skipped; session cookies are kept.
func (j *cookieJar) load(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	cookies, err := readCookieFile(f)
	if err != nil {
		return fmt.Errorf("-b %s: %w", path, err)
	}
	now := time.Now()
	for _, kc := range cookies {
		if !kc.expires.IsZero() && !kc.expires.After(now) {
			continue
		}
		u := &url.URL{Scheme: "http", Host: kc.domain, Path: kc.path}
		if strings.Contains(kc.domain, ":") {
			u.Host = "[" + kc.domain + "]"
		}
		if kc.secure {
			u.Scheme = "https"
		}
		c := &http.Cookie{Name: kc.name, Value: kc.value, Path: kc.path, Secure: kc.secure, HttpOnly: kc.httpOnly, Expires: kc.expires}
		if !kc.hostOnly {
			c.Domain = kc.domain
		}
		j.SetCookies(u, []*http.Cookie{c})
	}
	return nil
}

// readCookieFile parses a Netscape cookie file. The domains come back
// without their leading dot.
func readCookieFile(r io.Reader) ([]*keptCookie, error) {
	var cookies []*keptCookie
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		httpOnly := strings.HasPrefix(line, httpOnlyPrefix)
		if httpOnly {
			line = line[len(httpOnlyPrefix):]
		} else if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) == 6 { // an empty value, its tab trimmed by an editor
			f = append(f, "")
		}
		if len(f) != 7 || f[0] == "" || f[5] == "" {
			continue
		}
		exp, err := strconv.ParseInt(f[4], 10, 64)
		if err != nil {
			continue
		}
		kc := &keptCookie{
			cookieKey: cookieKey{domain: strings.ToLower(strings.TrimPrefix(f[0], ".")), path: f[2], name: f[5]},
			hostOnly:  !strings.EqualFold(f[1], "TRUE"),
			secure:    strings.EqualFold(f[3], "TRUE"),
			httpOnly:  httpOnly,
			value:     f[6],
		}
		if kc.path == "" {
			kc.path = "/"
		}
		if exp > 0 {
			kc.expires = time.Unix(exp, 0)
		}
		cookies = append(cookies, kc)
	}
	return cookies, sc.Err()
}

// save writes the jar's live cookies to path in the Netscape format,
// readable by -b and by curl, mode 0600: cookies are credentials.
func (j *cookieJar) save(path string) error {
	j.mu.Lock()
	now := time.Now()
	cookies := make([]*keptCookie, 0, len(j.kept))
	for _, kc := range j.kept {
		if kc.expires.IsZero() || kc.expires.After(now) {
			cookies = append(cookies, kc)
		}
	}
	sort.Slice(cookies, func(a, b int) bool { return cookies[a].seq < cookies[b].seq })
	var b strings.Builder
	b.WriteString(cookieFileHeader)
	for _, kc := range cookies {
		writeCookieLine(&b, kc)
	}
	j.mu.Unlock()
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("-c: %w", err)
	}
	return nil
}

// writeCookieLine writes one cookie as a Netscape cookie file line.
func writeCookieLine(b *strings.Builder, kc *keptCookie) {
	if kc.httpOnly {
		b.WriteString(httpOnlyPrefix)
	}
	domain, sub := kc.domain, "FALSE"
	if !kc.hostOnly {
		domain, sub = "."+domain, "TRUE"
	}
	var exp int64
	if !kc.expires.IsZero() {
		exp = kc.expires.Unix()
	}
	fmt.Fprintf(b, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", domain, sub, kc.path, strings.ToUpper(strconv.FormatBool(kc.secure)), exp, kc.name, kc.value)
}
