package schemes_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"

	"github.com/anyauth/anyauth/schemes"
)

// The common case in one statement: Basic and Digest for one origin.
func ExampleNewTransport() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); ok && u == "alice" && p == "s3cret" {
			fmt.Fprintln(w, "hello alice")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="example"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer srv.Close()

	client := &http.Client{Transport: schemes.NewTransport(srv.URL, "alice", "s3cret")}

	resp, err := client.Get(srv.URL + "/report")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello alice
}
