package anyauth

import (
	"net"
	"net/url"
	"strings"
)

// A ProtectionSpace is where a set of credentials is valid (RFC 9110
// §11.5): the auth-scheme, the origin or proxy that challenged, the realm,
// and the path prefix that the challenge covers. Credentials and cached
// answers never leave their space.
type ProtectionSpace struct {
	// Proxy is true for a space of a proxy (a 407 challenge).
	Proxy bool
	// AuthScheme is the challenge's auth-scheme as its Scheme names it,
	// such as "Digest".
	AuthScheme string
	// URLScheme is "http" or "https": the origin's, or the proxy's.
	URLScheme string
	// Host is the lower-cased host name or IP address, without brackets.
	Host string
	// Port is the port, always explicit ("80" for http without one).
	Port string
	// Realm is the challenge's realm parameter ("" when it has none).
	Realm string
	// Path is the path prefix the space covers (RFC 7617 §2.2): the
	// directory of the request that was challenged, or "/" for a proxy.
	Path string
}

// Origin returns the space's origin as "scheme://host:port".
func (s *ProtectionSpace) Origin() string {
	return s.URLScheme + "://" + net.JoinHostPort(s.Host, s.Port)
}

// String describes the space for logs: it holds nothing secret.
func (s *ProtectionSpace) String() string {
	kind := "origin"
	if s.Proxy {
		kind = "proxy"
	}
	return kind + " " + s.Origin() + s.Path + " " + s.AuthScheme + " realm=" + quoteForLog(s.Realm)
}

// AnswerHeader returns the name of the header that answers a challenge
// of the space: Proxy-Authorization for a proxy, Authorization otherwise.
func (s *ProtectionSpace) AnswerHeader() string {
	if s.Proxy {
		return "Proxy-Authorization"
	}
	return "Authorization"
}

// ChallengeHeader returns the name of the header that carries the
// space's challenges: Proxy-Authenticate for a proxy, WWW-Authenticate
// otherwise.
func (s *ProtectionSpace) ChallengeHeader() string {
	if s.Proxy {
		return "Proxy-Authenticate"
	}
	return "Www-Authenticate"
}

// InfoHeader returns the name of the header in which the server confirms
// an answer (RFC 9110 §11.6.3, §11.7.3): Proxy-Authentication-Info for a
// proxy, Authentication-Info otherwise.
func (s *ProtectionSpace) InfoHeader() string {
	if s.Proxy {
		return "Proxy-Authentication-Info"
	}
	return "Authentication-Info"
}

// SameOrigin reports whether a and b have the same origin (RFC 6454):
// scheme and host compared without case, and a missing port taken as the
// scheme's default.
func SameOrigin(a, b *url.URL) bool {
	if a == nil || b == nil {
		return false
	}
	return originOf(a) == originOf(b)
}

// originOf returns a space holding only u's origin.
func originOf(u *url.URL) ProtectionSpace {
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		port = defaultPort(scheme)
	}
	return ProtectionSpace{URLScheme: scheme, Host: host, Port: port}
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

// pathOf returns u's path as the server will resolve it: dot segments
// removed (RFC 3986 §5.2.4), "%2e" taken as ".", and "/" when empty. So
// "/a/../b/x" is in the space of "/b/", not of "/a/".
func pathOf(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	return removeDotSegments(p)
}

// removeDotSegments resolves the "." and ".." segments of an absolute
// path, also when written "%2e".
func removeDotSegments(p string) string {
	if !strings.Contains(p, ".") && !strings.Contains(p, "%2") {
		return p
	}
	segs := strings.Split(p, "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		last := i == len(segs)-1
		switch strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".") {
		case ".":
			if last {
				out = append(out, "")
			}
		case "..":
			if len(out) > 1 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
		default:
			out = append(out, seg)
		}
	}
	if len(out) == 1 { // only the empty segment before the first "/"
		return "/"
	}
	return strings.Join(out, "/")
}

// directoryOf returns the path prefix RFC 7617 §2.2 assigns to a
// challenge for path p: everything up to and including its last "/".
func directoryOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i+1]
	}
	return "/"
}

// spaceDirectory returns the directory a challenge of a request to u
// covers: of the directory of its path as sent and of its path as a
// server that decodes "%2F" sees it, the narrower (the one with more
// segments). So a challenge of "/a%2Fx" covers "/a/", not "/", and
// "/a/../b/x" does not get its answer. The decoded directory is written
// escaped again, as request paths are compared.
func spaceDirectory(u *url.URL) string {
	raw := directoryOf(pathOf(u))
	if u.RawPath == "" {
		return raw // the path holds no escaped "/": both are one
	}
	decoded := directoryOf(removeDotSegments(u.Path))
	if strings.Count(decoded, "/") <= strings.Count(raw, "/") {
		return raw
	}
	return (&url.URL{Path: decoded}).EscapedPath()
}

// quoteForLog quotes s for a log line.
func quoteForLog(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
