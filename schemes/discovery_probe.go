package schemes

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/anyauth/anyauth"
)

// This file finds a resource's metadata when its challenge does not say
// where it is: at the well-known URLs of RFC 9728 §3.1 on the requested
// URL's origin, as the Model Context Protocol's clients must.

// wellKnownResource is RFC 9728's well-known URI suffix.
const wellKnownResource = "/.well-known/oauth-protected-resource"

// absentFor is how long a well-known URL that answered 404 is not asked
// again; maxAbsent bounds how many are remembered.
const (
	absentFor = 5 * time.Minute
	maxAbsent = 256
)

// wellKnownCandidates returns the metadata URLs to try for target: with
// the well-known suffix inserted before its path (without a terminating
// slash), then at the root of its origin.
func wellKnownCandidates(target *url.URL) []string {
	origin := target.Scheme + "://" + target.Host
	root := origin + wellKnownResource
	p := strings.TrimSuffix(target.EscapedPath(), "/")
	if p == "" {
		return []string{root}
	}
	return []string{origin + wellKnownResource + p, root}
}

// probe looks for the metadata of target's resource at the well-known
// URLs, and discovers from the first that has it. Finding none is an
// error wrapping anyauth.ErrNoCredentials: the challenge is left
// unanswered.
func (d *Discovery) probe(ctx context.Context, target *url.URL, asked []string) (*discoveredResource, error) {
	candidates := wellKnownCandidates(target)
	if _, err := d.followable(candidates[0]); err != nil {
		return nil, fmt.Errorf("discovery: %w: no resource_metadata in the challenge, and %v", anyauth.ErrNoCredentials, err)
	}
	for _, metaURL := range candidates {
		if d.knownAbsent(metaURL) {
			continue
		}
		r, err := d.discover(ctx, metaURL, target, asked)
		var other *otherResourceError
		switch {
		case errors.Is(err, errNotFound):
			d.noteAbsent(metaURL)
			continue
		case errors.As(err, &other):
			// Another resource's metadata (the root one of an origin
			// that serves several): not this one's, not an attack.
			continue
		}
		return r, err
	}
	return nil, fmt.Errorf("discovery: %w: no resource_metadata in the challenge, and no metadata at %s", anyauth.ErrNoCredentials, strings.Join(candidates, " nor "))
}

// knownAbsent reports whether metaURL answered 404 less than absentFor
// ago.
func (d *Discovery) knownAbsent(metaURL string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	until, ok := d.absent[metaURL]
	if ok && time.Now().After(until) {
		delete(d.absent, metaURL)
		return false
	}
	return ok
}

// noteAbsent remembers that metaURL answered 404.
func (d *Discovery) noteAbsent(metaURL string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.absent == nil || len(d.absent) >= maxAbsent {
		d.absent = map[string]time.Time{}
	}
	d.absent[metaURL] = time.Now().Add(absentFor)
}
