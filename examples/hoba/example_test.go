package hoba_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/examples/hoba"
)

// A HOBA client through an anyauth.Transport: it registers its key with
// the in-process server (the registration POST is challenged, and
// replayed signed), then reads a protected page.
func Example() {
	ts := httptest.NewServer(hoba.NewServer())
	defer ts.Close()

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	scheme := hoba.Scheme{Key: key, Origins: anyauth.Origins{ts.URL}}
	client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{scheme}}}

	if err := scheme.Register(context.Background(), client, ts.URL); err != nil {
		fmt.Println(err)
		return
	}
	resp, err := client.Get(ts.URL + "/private/report")
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output: 200 OK
}
