package main

import (
	"flag"
	"fmt"
	"net/url"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// This file wires fetch's -registry and -registry-realm: the token
// authentication of container registries (schemes.Registry), with -u,
// -netrc or -docker-config's credentials, or anonymously.

// registryOptions are the flags of this file.
type registryOptions struct {
	enabled bool       // -registry
	realms  issuerList // -registry-realm, repeatable
}

// addRegistryFlags defines -registry and -registry-realm.
func addRegistryFlags(fs *flag.FlagSet, o *registryOptions) {
	fs.BoolVar(&o.enabled, "registry", false, "answer container registries' token challenges (Bearer realm, service, scope): a token from the realm with -u, -netrc or -docker-config's credentials for the registry, or anonymously")
	fs.Var(&o.realms, "registry-realm", "with -registry, a token server `ORIGIN` besides the registry's own that may be sent its credentials, e.g. https://auth.docker.io (repeatable)")
}

// addScheme adds the Registry scheme to t when -registry is set.
func (o *registryOptions) addScheme(t *anyauth.Transport) error {
	if !o.enabled {
		if len(o.realms) > 0 {
			return usageError{"-registry-realm goes with -registry"}
		}
		return nil
	}
	for _, r := range o.realms {
		if u, err := url.Parse(r); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return usageError{fmt.Sprintf("-registry-realm %q is not an origin (https://host[:port])", r)}
		}
	}
	t.Schemes = append(t.Schemes, &schemes.Registry{Realms: anyauth.Origins(o.realms)})
	return nil
}
