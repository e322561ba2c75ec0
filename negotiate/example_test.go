package negotiate_test

import (
	"fmt"
	"io"
	"log"
	"net/http"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/negotiate"
	"github.com/anyauth/anyauth/schemes"
)

// A client for an intranet that asks for Negotiate, and for Basic where
// Kerberos is not set up: with a ticket from kinit (or the password below)
// it answers Negotiate, checks the server's mutual-authentication token,
// and falls back to Basic over https when it has no Kerberos credentials.
func ExampleKerberos() {
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes: []anyauth.Scheme{
			&negotiate.Kerberos{Mutual: negotiate.MutualRequired},
			schemes.Basic{},
		},
		// Serves Basic, and Kerberos when no ticket is in the cache.
		Credentials: anyauth.ForOrigin("https://intranet.example.com", "alice@EXAMPLE.COM", "secret"),
	}}
	resp, err := client.Get("https://intranet.example.com/report")
	if err != nil {
		log.Print(err)
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fmt.Println(resp.Status, len(b))
}
