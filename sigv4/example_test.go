package sigv4_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/sigv4"
)

// A Transport that signs every request to one origin with AWS Signature
// Version 4, as curl --aws-sigv4 aws:amz:us-east-1:s3 -u KEY:SECRET does.
// The server here stands in for S3 and shows what it received.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		algorithm, rest, _ := strings.Cut(auth, " ")
		fields := strings.Split(rest, ", ")
		fmt.Fprintln(w, algorithm)
		fmt.Fprintln(w, fields[1]) // SignedHeaders=...
		fmt.Fprintln(w, "X-Amz-Content-Sha256:", r.Header.Get("X-Amz-Content-Sha256"))
	}))
	defer srv.Close()

	signer := sigv4.New("us-east-1", "s3", sigv4.StaticCredentials("AKIDEXAMPLE", "SECRET", ""), srv.URL)
	client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{signer}}}

	resp, err := client.Post(srv.URL+"/bucket/key", "text/plain", strings.NewReader("hello"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%s\n%s", resp.Status, body)
	fmt.Println(strings.Replace(signer.String(), srv.URL, "http://127.0.0.1:PORT", 1))
	// Output:
	// 200 OK
	// AWS4-HMAC-SHA256
	// SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date
	// X-Amz-Content-Sha256: 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
	// sigv4.Signer{Origins:[http://127.0.0.1:PORT] Region:"us-east-1" Service:"s3" Payload:auto credentials:true (secret REDACTED)}
}
