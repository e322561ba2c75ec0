package main

import (
	"flag"
	"fmt"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/credhelper"
)

// This file wires fetch's -goauth, -git-credential and -docker-config:
// credentials kept where Go users keep them (package credhelper).

// credhelperOptions are the flags of this file.
type credhelperOptions struct {
	goauth        bool // -goauth
	gitCredential bool // -git-credential
	dockerConfig  bool // -docker-config
}

// addCredhelperFlags defines -goauth, -git-credential and -docker-config.
func addCredhelperFlags(fs *flag.FlagSet, o *credhelperOptions) {
	fs.BoolVar(&o.goauth, "goauth", false, "use $GOAUTH (or go env GOAUTH; default netrc) as the go command does, for the URLs' https origins only: its commands' headers from the first request, its netrc and git entries for challenges")
	fs.BoolVar(&o.gitCredential, "git-credential", false, "answer the URLs' origins with git's credential helpers (git credential fill), approving or rejecting them after the answer; never prompts")
	fs.BoolVar(&o.dockerConfig, "docker-config", false, "answer the URLs' origins, as registries, from Docker's config.json ($DOCKER_CONFIG or ~/.docker) as the docker CLI does: credHelpers, credsStore, else auths")
}

// apply adds what o asks for to t and creds, for the URLs' origins: the
// providers go at the end of creds (the Transport tells them through the
// Chain whether their credentials worked), the schemes so far (Basic,
// Digest) hand git the challenges they answer, and GOAUTH's header scheme
// comes after them.
func (o *credhelperOptions) apply(t *anyauth.Transport, creds *anyauth.Chain, origins []string) error {
	var goauth *credhelper.GoAuth
	if o.goauth {
		g, err := credhelper.GoAuthFromEnv(origins)
		if err != nil {
			return usageError{fmt.Sprintf("-goauth: %v", err)}
		}
		goauth = g
		*creds = append(*creds, g)
	}
	if o.gitCredential {
		git := &credhelper.Git{Origins: origins}
		*creds = append(*creds, git)
	}
	if o.dockerConfig {
		*creds = append(*creds, credhelper.DockerConfigFromEnv(origins...))
	}
	if o.goauth || o.gitCredential {
		t.Schemes = credhelper.WithChallenges(t.Schemes)
	}
	if goauth != nil {
		t.Schemes = append(t.Schemes, goauth.Schemes()...)
	}
	return nil
}
