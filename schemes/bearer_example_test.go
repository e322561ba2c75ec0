package schemes_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// A static token for one origin. The first request meets the server's
// challenge and is answered; the later ones carry the token at once.
func ExampleNewStaticBearer() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	defer srv.Close()
	client := &http.Client{Transport: &anyauth.Transport{
		Schemes: []anyauth.Scheme{schemes.NewStaticBearer("t0ken", srv.URL)},
	}}
	for range 2 {
		resp, err := client.Get(srv.URL + "/reports")
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

// BearerErrorOf reads why a server refused a token.
func ExampleBearerErrorOf() {
	resp := &http.Response{StatusCode: 403, Header: http.Header{
		"Www-Authenticate": {`Bearer realm="api", error="insufficient_scope", scope="reports:write"`},
	}}
	if e := schemes.BearerErrorOf(resp); e != nil {
		fmt.Println(e.ErrorCode, e.Scope)
	}
	// Output: insufficient_scope [reports:write]
}
