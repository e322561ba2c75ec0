package anyauth

import (
	"net"
	"net/url"
	"strings"
)

// This file is the cleartext policy: a scheme whose answer reveals a
// reusable secret (Basic, Bearer) goes over plain http only to loopback
// hosts, Transport.CleartextHosts, or anywhere with AllowCleartext; and
// to a proxy the user configured with an http:// URL, whose own
// credentials the user thereby agreed to send in the clear.

// cleartextRefused reports whether answering with sc in space would send
// a reusable secret in the clear where the user did not allow it. For an
// origin reached through a plain-http proxy, the hop to the proxy counts
// too: a loopback origin behind a remote proxy is not loopback traffic.
// It returns the host whose hop refused.
func (t *Transport) cleartextRefused(sc Scheme, space *ProtectionSpace, proxy *url.URL) (string, bool) {
	if !sc.Traits().RevealsSecret || space.URLScheme == "https" {
		return "", false
	}
	if space.Proxy {
		// The proxy is the one the user configured (Transport.Proxy,
		// Base's Proxy, HTTP_PROXY/HTTPS_PROXY): naming it with an
		// http:// URL is the consent to answer it in the clear, as curl
		// -x does. Only the proxy's own credentials go there; an
		// origin's secret crossing that hop is still refused below.
		return "", false
	}
	if !t.hopAllowsCleartext(space.Host) {
		return space.Host, true
	}
	if !space.Proxy && proxy != nil && proxy.Scheme == "http" {
		if h := strings.ToLower(proxy.Hostname()); !t.hopAllowsCleartext(h) {
			return h, true
		}
	}
	return "", false
}

// isLoopback reports whether host is a loopback address or "localhost"
// itself. A name under .localhost is not: Go resolves it through DNS.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hopAllowsCleartext reports whether a secret may cross the hop to host
// in the clear: a loopback host, one of CleartextHosts, or anywhere with
// AllowCleartext.
func (t *Transport) hopAllowsCleartext(host string) bool {
	if t.AllowCleartext || isLoopback(host) {
		return true
	}
	for _, h := range t.CleartextHosts {
		if strings.EqualFold(strings.Trim(h, "[]"), host) {
			return true
		}
	}
	return false
}
