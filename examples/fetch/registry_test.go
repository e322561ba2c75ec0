package main

import (
	"encoding/json"
	"net/url"
	"testing"

	"github.com/anyauth/anyauth/internal/testserver"
)

// TestFetchRegistry: against a real registry (distribution 2.8) whose
// token server is on another origin, -registry with -registry-realm and
// -u lists the catalog; without -registry-realm the password is not sent
// to that token server and the registry's 401 ends the run; anonymously
// the catalog is refused.
func TestFetchRegistry(t *testing.T) {
	reg := testserver.StartRegistryForTest(t, testserver.RegistryOptions{})
	tu, _ := url.Parse(reg.TokenURL)
	realm := tu.Scheme + "://" + tu.Host
	catalog := reg.URL + "/v2/_catalog"

	code, out, errOut := runFetch("-registry", "-registry-realm", realm, "-u", testserver.User+":"+testserver.Password, catalog)
	var got struct {
		Repositories []string `json:"repositories"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.Repositories == nil {
		t.Errorf("-registry -registry-realm -u: exit %d, %q\n%s", code, out, errOut)
	}
	requests := len(reg.TokenRequests())
	if code, _, errOut := runFetch("-registry", "-u", testserver.User+":"+testserver.Password, catalog); code != 1 || len(reg.TokenRequests()) != requests {
		t.Errorf("-registry without the realm listed: exit %d, %d token requests (want 1, none)\n%s", code, len(reg.TokenRequests())-requests, errOut)
	}
	if code, _, errOut := runFetch("-registry", "-registry-realm", realm, catalog); code != 1 {
		t.Errorf("-registry anonymously: exit %d, want 1 (the catalog is alice's)\n%s", code, errOut)
	}
	if code, _, _ := runFetch("-registry-realm", realm, catalog); code != 2 {
		t.Errorf("-registry-realm without -registry: exit %d, want 2 (usage)", code)
	}
}
