package ntlm_test

import (
	"fmt"
	"net/http"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/ntlm"
	"github.com/anyauth/anyauth/schemes"
)

// A client for intranet servers that speak NTLM (under "NTLM" or inside
// "Negotiate"), Digest or Basic: the strongest one offered is answered.
func Example() {
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes:     append(ntlm.Schemes(ntlm.Options{}), schemes.Digest{}, schemes.Basic{}),
		Credentials: anyauth.ForOrigin("http://intranet.example", `EXAMPLE\alice`, "password"),
	}}
	fmt.Println(client.Transport)
	// Output: anyauth.Transport{Schemes:[NTLM Negotiate Digest Basic], known spaces:0}
}
