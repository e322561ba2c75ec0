package all_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/anyauth/anyauth/all"
)

// One statement for a corporate network: whatever the server asks for
// (Negotiate, NTLM, Digest, Basic), the strongest it offers is answered.
// This server asks for Basic.
func ExampleNewTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == `CORP\alice` && p == "s3cret" {
			fmt.Fprintln(w, "hello alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="intranet"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()

	client := &http.Client{Transport: all.NewTransport(srv.URL, `CORP\alice`, "s3cret")}

	resp, err := client.Get(srv.URL + "/wiki")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello alice
}
