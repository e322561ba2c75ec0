// Command oauth2 shows anyauth's Bearer scheme with an OAuth 2.0
// client-credentials flow, end to end and self-contained: it starts an
// in-process authorization server and a resource server that revokes each
// token early, then sends requests through one anyauth.Transport. The
// output shows each token fetch, each request, and the refresh that
// follows a revoked token.
//
// Usage:
//
//	go run ./examples/oauth2 [-n REQUESTS] [-revoke-every K] [-parallel P]
//
// The resource server accepts a token for K requests and then answers
// 401 error="invalid_token", as a server that revoked it (or whose clock
// expired it early) would. The Transport fetches a new token once, even
// when P requests are refused together, and replays each refused request.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout))
}

func run(args []string, out io.Writer) int {
	fs := flag.NewFlagSet("oauth2", flag.ContinueOnError)
	fs.SetOutput(out)
	n := fs.Int("n", 6, "requests to send")
	every := fs.Int("revoke-every", 3, "the resource server revokes a token after `K` requests")
	parallel := fs.Int("parallel", 1, "send the requests `P` at a time")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *n < 1 || *every < 1 || *parallel < 1 {
		fmt.Fprintln(out, "oauth2: -n, -revoke-every and -parallel must be at least 1")
		return 2
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}

	auth := newAuthServer(say)
	defer auth.Close()
	api := newResourceServer(*every, say)
	defer api.Close()

	cfg := &clientcredentials.Config{
		ClientID:     "example-client",
		ClientSecret: "example-secret",
		TokenURL:     auth.URL + "/token",
		Scopes:       []string{"reports:read"},
		AuthStyle:    oauth2.AuthStyleInHeader,
	}
	t := &anyauth.Transport{
		// cfg.Token fetches without caching: Bearer keeps the token and
		// fetches a new one only when it expires or is refused.
		Schemes: []anyauth.Scheme{schemes.NewBearer(cfg.Token, api.URL)},
		Logger:  slog.New(&fetchLog{say: say}),
	}
	defer t.CloseIdleConnections()
	client := &http.Client{Transport: t}

	var failed atomic.Int64
	sem := make(chan struct{}, *parallel)
	var wg sync.WaitGroup
	for i := 1; i <= *n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			resp, err := client.Get(api.URL + "/reports/" + fmt.Sprint(i))
			if err != nil {
				say("request %d: %v", i, err)
				failed.Add(1)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
			}
			say("request %d: %s %s", i, resp.Status, strings.TrimSpace(string(body)))
		}(i)
	}
	wg.Wait()
	say("summary: %d requests, %d failed, %d token fetches, %d round trips to the resource server",
		*n, failed.Load(), auth.fetches.Load(), api.trips.Load())
	if failed.Load() > 0 {
		return 1
	}
	return 0
}

// authServer is a client-credentials token endpoint.
type authServer struct {
	*httptest.Server
	fetches atomic.Int64
}

func newAuthServer(say func(string, ...any)) *authServer {
	a := &authServer{}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if r.Method != http.MethodPost || id != "example-client" || secret != "example-secret" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		n := a.fetches.Add(1)
		say("authorization server: issued token #%d (scope %q)", n, r.FormValue("scope"))
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": fmt.Sprintf("token-%d", n),
			"token_type":   "Bearer",
			"expires_in":   3600, // the client believes an hour; the server says otherwise
		})
	}))
	return a
}

// resourceServer accepts each token for `every` requests, then revokes it.
type resourceServer struct {
	*httptest.Server
	trips atomic.Int64
}

func newResourceServer(every int, say func(string, ...any)) *resourceServer {
	rs := &resourceServer{}
	var mu sync.Mutex
	uses := map[string]int{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.trips.Add(1)
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="reports"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		uses[tok]++
		n := uses[tok]
		mu.Unlock()
		if n > every {
			if n == every+1 {
				say("resource server: %s revoked early", strings.Replace(tok, "token-", "token #", 1))
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="reports", error="invalid_token", error_description="revoked"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, "report %s (with %s)", strings.TrimPrefix(r.URL.Path, "/reports/"), strings.Replace(tok, "token-", "token #", 1))
	}))
	return rs
}

// fetchLog prints the Transport's token-fetch records; the other Debug
// records are left out to keep the output short.
type fetchLog struct{ say func(string, ...any) }

func (fetchLog) Enabled(context.Context, slog.Level) bool { return true }
func (l *fetchLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "anyauth: bearer token fetch" {
		return nil
	}
	why := ""
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "why" {
			why = a.Value.String()
		}
		return true
	})
	l.say("client: fetched a token (%s)", why)
	return nil
}
func (l *fetchLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *fetchLog) WithGroup(string) slog.Handler      { return l }
