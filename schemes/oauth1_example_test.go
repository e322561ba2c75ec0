package schemes_test

import (
	"fmt"
	"net/http"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// An API that signs with OAuth 1.0 and answers 401 without
// "WWW-Authenticate: OAuth": sign every request to it from the first.
// Printing the scheme shows no secret.
func ExampleNewOAuth1() {
	o := schemes.NewOAuth1("consumer-key", "consumer-secret", "token", "token-secret", "https://api.example.com")
	o.Method = schemes.OAuth1HMACSHA256
	o.Preemptive = true
	client := &http.Client{Transport: &anyauth.Transport{Schemes: []anyauth.Scheme{o, schemes.Digest{}}}}
	_ = client // client.Get("https://api.example.com/1.1/statuses/home_timeline.json")
	fmt.Println(o)
	// Output: OAuth1{Origins:[https://api.example.com] ConsumerKey:"consumer-key" Method:HMAC-SHA256 token:true Preemptive:true BodyHash:false (secrets REDACTED)}
}
