package schemes

import (
	"net/url"
	"strings"

	"github.com/anyauth/anyauth"
)

// maxDomainURIs bounds how many domain URIs of one challenge are kept.
const maxDomainURIs = 32

// Scope returns the path prefixes that c's domain parameter puts in its
// protection space on the origin of u, the challenged request's URL
// (RFC 7616 §3.3): a space-separated list of absolute URIs and absolute
// paths, each standing for every URI it is a prefix of. Relative
// references are resolved against u; URIs on another origin are left out,
// so credentials never cross an origin; at most 32 are kept.
//
// Without a domain parameter (or when none of its URIs is on u's origin)
// Scope returns nil and the space covers the directory of the challenged
// request, as for Basic. RFC 7616 would let the client assume the whole
// origin, but then one realm's answer would be sent, and rejected, all
// over an origin that has several realms.
func (Digest) Scope(c *anyauth.Challenge, u *url.URL) []string {
	domain := c.Param("domain")
	if domain == "" || u == nil {
		return nil
	}
	var out []string
	for _, f := range strings.Fields(domain) {
		if len(out) == maxDomainURIs {
			break
		}
		ref, err := url.Parse(f)
		if err != nil {
			continue
		}
		abs := u.ResolveReference(ref)
		if !anyauth.SameOrigin(abs, u) {
			continue
		}
		p := abs.EscapedPath()
		if p == "" {
			p = "/"
		}
		out = append(out, p)
	}
	return out
}
