// Package credhelper takes credentials from where Go users already keep
// them: the GOAUTH variable of the go command, git's credential helpers,
// and Docker's credential helpers and config.json.
//
//   - GoAuth reads a GOAUTH value with the go command's meaning (off,
//     netrc, git DIR, and commands that print headers per URL prefix).
//   - Git asks "git credential fill" for a user name and password, and
//     tells the helpers whether they worked ("git credential approve" and
//     "reject") when the Transport tells it.
//   - Docker asks "docker-credential-NAME get" for a registry's.
//   - DockerConfig reads Docker's config.json as the docker CLI does: the
//     helper that credHelpers, else credsStore, names for a registry (run
//     as Docker runs it), else the registry's auths entry.
//
// # Shapes
//
// Git, Docker and DockerConfig give a user name and a password, so they
// are anyauth.CredentialProviders, for Transport.Credentials, answering
// the Basic and Digest challenges of the origins the user lists
// (Git.Origins, Docker.Registries, DockerConfig.Registries): a helper is
// never run, nor a stored password sent, for a host the user did not
// name. A GOAUTH command gives request headers, which no provider can
// return, so GoAuth is two things: a Scheme that volunteers those headers
// to https origins (anyauth.Volunteer) and runs the commands again on a
// 4xx, and a provider for its netrc and git entries, which answer
// challenges as anyauth.Netrc and Git do (see GoAuth for why).
//
// # Verdicts
//
// git stores a credential when it worked and forgets it when it was
// refused. Git, Docker, DockerConfig and GoAuth are
// anyauth.CredentialVerdicts: the Transport tells them how their
// credentials fared, with no wrapper. Once a server accepted a fresh
// answer made with their credentials (a status below 400), Git runs "git
// credential approve"; once a server refused one, Git runs "git
// credential reject" and forgets it, Docker forgets it (the next request
// asks the helper again), and so does DockerConfig (the next request asks
// the helper again, or reads the file again). GoAuth passes both to its
// git entries. Each acts only on credentials it gave itself, so they can
// share an anyauth.Chain, which passes the verdicts on to its members.
//
// WithChallenges wraps schemes for what the Transport does not tell a
// provider: the challenge being answered, which Git hands to "git
// credential fill" as a wwwauth[] line. Without it, Git writes that line
// from the protection space's scheme and realm.
//
// # Processes
//
// Every helper and command runs in a process group of its own (on Unix),
// bounded by its Timeout (DefaultTimeout) and by the request's context:
// when either ends, the whole group is killed, so that a helper that hangs
// (a prompt, a locked keychain) cannot hold a request, nor a shell
// script's children outlive it. Their output is read up to 1 MiB. Errors
// name the program and its exit status, never what it printed, and no
// value of this package prints a password, a token or a header.
package credhelper
