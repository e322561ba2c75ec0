package schemes_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2"
)

// fileTokens is a TokenStore for one machine: a command-line tool's
// refresh token, kept in a file between runs. It is a MemoryTokenStore
// (leases and waits within the process) that reads the file on a miss and
// writes it on every Put, with mode 0600. A keyring would do the same in
// its place.
type fileTokens struct {
	schemes.MemoryTokenStore
	path string
	mu   sync.Mutex
}

func (f *fileTokens) Get(ctx context.Context, key string) (*oauth2.Token, error) {
	if t, err := f.MemoryTokenStore.Get(ctx, key); t != nil || err != nil {
		return t, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := os.ReadFile(f.path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	saved := map[string]*oauth2.Token{}
	if err := json.Unmarshal(data, &saved); err != nil {
		return nil, nil // unreadable: a miss, as the contract says
	}
	return saved[key], nil
}

func (f *fileTokens) Put(ctx context.Context, key string, t *oauth2.Token) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	data, err := json.Marshal(map[string]*oauth2.Token{key: t})
	if err != nil {
		return err
	}
	if err := os.WriteFile(f.path, data, 0o600); err != nil {
		return err
	}
	return f.MemoryTokenStore.Put(ctx, key, t)
}

// A command-line tool keeps its tokens in a file: each run starts from
// what the last one stored. The second run sends the access token the
// first stored; once that expires, the refresh token stored with it is
// redeemed, not the login's, which rotated away on first use.
func ExampleTokenStore() {
	// A token endpoint whose refresh tokens rotate, and an API.
	var mu sync.Mutex
	valid, n := "rt-login", 0
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if r.PostFormValue("refresh_token") != valid {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant"}`)
			return
		}
		n++
		valid = fmt.Sprintf("rt-%d", n)
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("at-%d", n), "token_type": "Bearer", "expires_in": 3600, "refresh_token": valid})
	}))
	defer tokens.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, r.Header.Get("Authorization"))
	}))
	defer api.Close()

	dir, _ := os.MkdirTemp("", "tokens")
	defer os.RemoveAll(dir)
	cfg := &oauth2.Config{ClientID: "cli", Endpoint: oauth2.Endpoint{TokenURL: tokens.URL, AuthStyle: oauth2.AuthStyleInParams}}
	login := &oauth2.Token{RefreshToken: "rt-login"} // from the first, interactive login

	for run := 1; run <= 2; run++ {
		b := schemes.NewRefreshBearer(cfg, login, api.URL)
		b.Store = &fileTokens{path: filepath.Join(dir, "tokens.json")}
		b.StoreKey.Subject = "alice"
		client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{b}}}
		resp, err := client.Get(api.URL)
		if err != nil {
			fmt.Println(err)
			return
		}
		sent, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("run %d: %s, sent %s\n", run, resp.Status, sent)
	}
	mu.Lock()
	fmt.Println("refresh tokens redeemed:", n)
	mu.Unlock()
	// Output:
	// run 1: 200 OK, sent Bearer at-1
	// run 2: 200 OK, sent Bearer at-1
	// refresh tokens redeemed: 1
}
