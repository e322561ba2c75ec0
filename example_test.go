package anyauth_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// A server that wants Basic or Digest: the Transport answers the
// strongest challenge it has credentials for, and later requests to the
// same protection space carry the answer from the start.
func ExampleTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret" {
			fmt.Fprintln(w, "hello alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="example"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()

	client := &http.Client{Transport: &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		Credentials: anyauth.ForOrigin(srv.URL, "alice", "s3cret"),
	}}
	resp, err := client.Get(srv.URL + "/private/report")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello alice
}

func ExampleParseChallenges() {
	for _, c := range anyauth.ParseChallenges(
		`Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple"`,
		`Negotiate`,
	) {
		fmt.Printf("%s %q %d params\n", c.Scheme, c.Realm(), len(c.Params))
	}
	// Output:
	// Newauth "apps" 3 params
	// Basic "simple" 1 params
	// Negotiate "" 0 params
}

// A CredentialFunc asks for credentials only when a server challenges:
// here a stand-in for a terminal prompt or a secret store.
func ExampleCredentialFunc() {
	prompt := anyauth.CredentialFunc(func(ctx context.Context, s *anyauth.ProtectionSpace) (*anyauth.UserPassword, error) {
		fmt.Printf("password for %s realm %q? ", s.Origin(), s.Realm)
		return &anyauth.UserPassword{Username: "alice", Password: "from the prompt"}, nil
	})
	up, _ := prompt.Credentials(context.Background(), &anyauth.ProtectionSpace{URLScheme: "https", Host: "intranet.example", Port: "443", Realm: "staff"})
	fmt.Println(up)
	// Output: password for https://intranet.example:443 realm "staff"? {Username:"alice" Password:REDACTED}
}

// A floor makes the Transport refuse weak challenges, even the first one.
func ExampleStrongestFirst() {
	t := &anyauth.Transport{
		Schemes:     []anyauth.Scheme{schemes.Digest{}, schemes.Basic{}},
		Credentials: anyauth.ForOrigin("https://api.example.com", "alice", "s3cret"),
		// Digest SHA-256 or better: never Basic, never Digest MD5.
		Selector: anyauth.StrongestFirst{Floor: schemes.StrengthDigestSHA256},
	}
	_ = &http.Client{Transport: t}
	fmt.Println(t.Selector)
	// Output: {230}
}

// apiKeyScheme is a custom scheme: it answers "ApiKey" challenges with a
// key per realm, on the origins it is given only.
type apiKeyScheme struct {
	origins anyauth.Origins
	keys    map[string]string
}

func (apiKeyScheme) Name() string { return "ApiKey" }

// Traits: a key is a reusable secret, so the cleartext guard applies.
func (apiKeyScheme) Traits() anyauth.Traits { return anyauth.Traits{RevealsSecret: true} }

func (apiKeyScheme) Strength(*anyauth.Challenge) (anyauth.Strength, bool) {
	return anyauth.StrengthDigest + 50, true
}

func (s apiKeyScheme) Begin(_ context.Context, c *anyauth.Challenge, a *anyauth.Attempt) (anyauth.Session, error) {
	key, ok := s.keys[c.Realm()]
	if !ok || !s.origins.Allows(&a.Space) {
		return nil, anyauth.ErrNoCredentials
	}
	return apiKeySession{header: a.Space.AnswerHeader(), value: "ApiKey " + key}, nil
}

// apiKeySession sends the same value on every request: it holds no
// per-request state, so it is its own Leg.
type apiKeySession struct{ header, value string }

func (s apiKeySession) Start(context.Context, *http.Request) (anyauth.Leg, error) { return s, nil }
func (s apiKeySession) Apply(req *http.Request) error {
	req.Header.Set(s.header, s.value)
	return nil
}
func (apiKeySession) Continue(context.Context, *http.Response, *anyauth.Challenge) (bool, error) {
	return false, nil
}
func (apiKeySession) Finish(*http.Response) error { return nil }

// Any scheme plugs in: implement Scheme, Session and Leg. The Transport
// parses and ranks the challenges, replays the request, and remembers
// the protection space, so the second request carries the key at once.
func ExampleScheme() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "ApiKey k-123" {
			fmt.Fprintln(w, "key accepted")
			return
		}
		w.Header().Set("WWW-Authenticate", `ApiKey realm="reports"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes: []anyauth.Scheme{apiKeyScheme{
			origins: anyauth.Origins{srv.URL},
			keys:    map[string]string{"reports": "k-123"},
		}},
	}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(strings.TrimSpace(string(body)))
	// Output: key accepted
}
