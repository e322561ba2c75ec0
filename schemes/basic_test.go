package schemes_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// basicAnswer runs schemes.Basic for user and password and returns the
// header it builds.
func basicAnswer(t *testing.T, user, pass string) (string, error) {
	t.Helper()
	a := &anyauth.Attempt{
		Request:     &http.Request{Method: "GET"},
		Space:       anyauth.ProtectionSpace{AuthScheme: "Basic", URLScheme: "https", Host: "example.org", Port: "443", Realm: "WallyWorld", Path: "/"},
		Credentials: anyauth.ForOrigin("https://example.org", user, pass),
	}
	c := anyauth.ParseChallenges(`Basic realm="WallyWorld", charset="UTF-8"`)[0]
	s, err := schemes.Basic{}.Begin(context.Background(), &c, a)
	if err != nil {
		return "", err
	}
	leg, err := s.Start(context.Background(), a.Request)
	if err != nil {
		return "", err
	}
	req := &http.Request{Method: "GET", Header: http.Header{}}
	if err := leg.Apply(req); err != nil {
		return "", err
	}
	return req.Header.Get("Authorization"), nil
}

// TestBasicVectors builds the RFC 7617 (and MDN) credentials of
// testdata/challenges.json from their user-id and password.
func TestBasicVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/challenges.json")
	if err != nil {
		t.Fatal(err)
	}
	var vectors []struct {
		Name    string   `json:"name"`
		Headers []string `json:"headers"`
		Decoded *struct {
			User     string `json:"user_id"`
			Password string `json:"password"`
		} `json:"decoded_basic"`
	}
	if err := json.Unmarshal(raw, &vectors); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, v := range vectors {
		if v.Decoded == nil {
			continue
		}
		got, err := basicAnswer(t, v.Decoded.User, v.Decoded.Password)
		if err != nil || got != v.Headers[0] {
			t.Errorf("%s: got %q, %v; want %q", v.Name, got, err, v.Headers[0])
		}
		n++
	}
	if n != 3 {
		t.Fatalf("%d Basic vectors found, want 3", n)
	}
	t.Logf("%d Basic credential vectors reproduced", n)
}

func TestBasicRefusesWhatRFC7617Forbids(t *testing.T) {
	for _, c := range []struct{ user, pass string }{{"a:b", "p"}, {"a\x01", "p"}, {"a", "p\n"}} {
		_, err := basicAnswer(t, c.user, c.pass)
		if !errors.Is(err, schemes.ErrInvalidCredentials) {
			t.Errorf("%q: err %v, want ErrInvalidCredentials", c.user, err)
		}
		if err != nil && strings.Contains(err.Error(), c.pass) && c.pass != "p" {
			t.Errorf("error shows the password: %v", err)
		}
	}
	a := &anyauth.Attempt{Space: anyauth.ProtectionSpace{URLScheme: "https", Host: "x", Port: "443"}, Credentials: anyauth.ForOrigin("https://x", "alice", "secret-pw")}
	c := anyauth.ParseChallenges(`Basic realm="r"`)[0]
	s, _ := schemes.Basic{}.Begin(context.Background(), &c, a)
	if out := fmt.Sprintf("%v %+v %#v %s", s, s, s, s); strings.Contains(out, "secret-pw") || strings.Contains(out, "YWxpY2U6c2VjcmV0LXB3") {
		t.Fatalf("Basic session prints its secret: %s", out)
	}
}
