// Package credhelper takes credentials from where Go users already keep
// them: the GOAUTH variable of the go command, git's credential helpers,
// and Docker's credential helpers.
//
//   - GoAuth reads a GOAUTH value with the go command's meaning (off,
//     netrc, git DIR, and commands that print headers per URL prefix).
//   - Git asks "git credential fill" for a user name and password, and
//     tells the helpers whether they worked ("git credential approve" and
//     "reject").
//   - Docker asks "docker-credential-NAME get" for a registry's.
//
// # Shapes
//
// Git and Docker give a user name and a password, so they are
// anyauth.CredentialProviders, for Transport.Credentials, answering the
// Basic and Digest challenges of the origins the user lists (Git.Origins,
// Docker.Registries): a helper is never run for a host the user did not
// name. A GOAUTH command gives request headers, which no provider can
// return, so GoAuth is two things: a Scheme that volunteers those headers
// to https origins (anyauth.Volunteer) and runs the commands again on a
// 4xx, and a provider for its netrc and git entries, which answer
// challenges as anyauth.Netrc and Git do (see GoAuth for why).
//
// # Approval
//
// git stores a credential when it worked and forgets it when it was
// refused. The Transport tells a CredentialProvider nothing of the kind:
// it asks for credentials, and the schemes' Legs alone see the server's
// verdict (Leg.Finish for an accepted answer, Leg.Continue returning
// false for a refused one). WithApproval therefore wraps the schemes
// (Basic, Digest): each wrapped session notes the credentials its scheme
// took from the provider, and reports them to the Approvers (Git, Docker,
// GoAuth) once accepted or refused. The same wrapper hands the challenge
// being answered to Git, for its wwwauth[] lines.
//
// A hook in the Transport would do without the wrapper: an optional
// interface of the provider, called by the exchange where it already
// decides (exchange.accepted, after a fresh answer's Finish succeeded;
// exchange.judgeSent, where a refused answer's credentials are recorded
// as refused), with the space and the UserPassword the request's memo
// gave for it.
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
