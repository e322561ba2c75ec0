package schemes_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2/clientcredentials"
)

// A service calls an API that wants DPoP-bound tokens and server nonces:
// the token request and the first API request each meet use_dpop_nonce
// once, and every request carries a new proof.
func ExampleDPoP() {
	// A token endpoint and an API that demand nonces (signatures are not
	// checked in this example; the integration tests use real verifiers).
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !strings.Contains(claimsJSON(r.Header.Get("DPoP")), `"nonce":"as-1"`) {
			w.Header().Set("DPoP-Nonce", "as-1")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"use_dpop_nonce"}`)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"access_token": "bound-token", "token_type": "DPoP", "expires_in": 300})
	}))
	defer tokens.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "DPoP bound-token":
			w.Header().Set("WWW-Authenticate", `DPoP algs="ES256"`)
			w.WriteHeader(http.StatusUnauthorized)
		case !strings.Contains(claimsJSON(r.Header.Get("DPoP")), `"nonce":"rs-1"`):
			w.Header().Set("WWW-Authenticate", `DPoP error="use_dpop_nonce"`)
			w.Header().Set("DPoP-Nonce", "rs-1")
			w.WriteHeader(http.StatusUnauthorized)
		default:
			fmt.Fprint(w, "hello")
		}
	}))
	defer api.Close()

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader) // or a KMS's crypto.Signer
	cfg := &clientcredentials.Config{ClientID: "svc", ClientSecret: "secret", TokenURL: tokens.URL}
	client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{
		schemes.NewDPoPClientCredentials(key, cfg, api.URL),
	}}}
	for range 2 {
		resp, err := client.Get(api.URL + "/data")
		if err != nil {
			fmt.Println(err)
			return
		}
		resp.Body.Close()
		fmt.Println(resp.Status)
	}
	// Output:
	// 200 OK
	// 200 OK
}

// claimsJSON returns the decoded claims of a compact JWS, "" if it is not
// one.
func claimsJSON(jws string) string {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return ""
	}
	data, _ := base64.RawURLEncoding.DecodeString(parts[1])
	return string(data)
}

// A client that knows only the API's URL, its client credentials and the
// authorization servers it trusts: the API's challenge names its
// metadata, the metadata names the authorization server, and the token is
// asked for that resource.
func ExampleDiscovery() {
	var as, api *httptest.Server
	as = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			json.NewEncoder(w).Encode(map[string]any{"issuer": as.URL, "token_endpoint": as.URL + "/token"})
		case "/token":
			json.NewEncoder(w).Encode(map[string]any{"access_token": "for-" + r.PostFormValue("resource"), "token_type": "Bearer", "expires_in": 300})
		}
	}))
	defer as.Close()
	api = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/.well-known/oauth-protected-resource":
			json.NewEncoder(w).Encode(map[string]any{"resource": api.URL, "authorization_servers": []string{as.URL}})
		case r.Header.Get("Authorization") != "Bearer for-"+api.URL:
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+api.URL+`/.well-known/oauth-protected-resource"`)
			w.WriteHeader(http.StatusUnauthorized)
		default:
			fmt.Fprint(w, "hello")
		}
	}))
	defer api.Close()

	client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{&schemes.Discovery{
		ClientID: "svc", ClientSecret: "secret",
		Issuers: []string{as.URL}, // the only servers that get the client's secret
	}}}}
	resp, err := client.Get(api.URL + "/data")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
