package sigv4

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestClockSkewCases runs the SDK's clock skew correction cases
// (testdata/clock-skew-test-cases.json) against the Signer: each operation
// is one request (one Leg) to one origin, each attempt one Apply at
// clientTimeAtSend, whose X-Amz-Date must be expectedSigningTime, and one
// response at clientTimeAtReceive, shown to RetryAfterResponse (which must
// ask for the retry the case makes) and, for the last attempt, to Finish.
// The origin's offset must then be expectedClientSkew.
func TestClockSkewCases(t *testing.T) {
	data, err := os.ReadFile("testdata/clock-skew-test-cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Tests []struct {
			Description string `json:"description"`
			Operations  []struct {
				InitialClientSkew  float64 `json:"initialClientSkew"`
				MaxAttempts        int     `json:"maxAttempts"`
				ExpectedClientSkew float64 `json:"expectedClientSkew"`
				Attempts           []struct {
					Send     time.Time `json:"clientTimeAtSend"`
					Receive  time.Time `json:"clientTimeAtReceive"`
					Signing  time.Time `json:"expectedSigningTime"`
					Response struct {
						StatusCode int               `json:"statusCode"`
						Headers    map[string]string `json:"headers"`
						ErrorCode  string            `json:"errorCode"`
					} `json:"response"`
				} `json:"attempts"`
			} `json:"operations"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Tests) == 0 {
		t.Fatal("no cases")
	}
	const origin = "https://s3.us-east-1.amazonaws.com"
	for _, tc := range file.Tests {
		t.Run(tc.Description, func(t *testing.T) {
			var now time.Time
			s := New("us-east-1", "s3", StaticCredentials("AKID", "SECRET", ""), origin)
			s.now = func() time.Time { return now }
			s.init()
			for i, op := range tc.Operations {
				if i == 0 || op.InitialClientSkew != 0 {
					s.st.clocks.set(origin+":443", time.Duration(op.InitialClientSkew*float64(time.Second)))
				}
				req, _ := http.NewRequest("GET", origin+"/bucket/key", nil)
				var l *leg
				for j, a := range op.Attempts {
					now = a.Send
					out := req.Clone(context.Background())
					if l == nil {
						signWith(t, s, out)
						l = lastLeg
					} else if err := l.Apply(out); err != nil {
						t.Fatal(err)
					}
					if got, want := out.Header.Get("X-Amz-Date"), a.Signing.UTC().Format("20060102T150405Z"); got != want {
						t.Errorf("operation %d attempt %d signed at %s, want %s", i, j, got, want)
					}
					now = a.Receive
					resp := &http.Response{StatusCode: a.Response.StatusCode, Header: http.Header{}}
					for k, v := range a.Response.Headers {
						resp.Header.Set(k, v)
					}
					body := ""
					if a.Response.ErrorCode != "" {
						body = fmt.Sprintf("<Error><Code>%s</Code><Message>m</Message></Error>", a.Response.ErrorCode)
					}
					retry, err := l.RetryAfterResponse(context.Background(), resp, func(n int) ([]byte, error) {
						return io.ReadAll(io.LimitReader(strings.NewReader(body), int64(n)))
					})
					if err != nil {
						t.Fatal(err)
					}
					last := j == len(op.Attempts)-1
					budget := op.MaxAttempts == 0 || j+1 < op.MaxAttempts
					if want := !last; (retry && budget) != want {
						t.Errorf("operation %d attempt %d (%d %s): retry %t, want %t", i, j, a.Response.StatusCode, a.Response.ErrorCode, retry, want)
					}
					if last {
						if err := l.Finish(resp); err != nil {
							t.Fatal(err)
						}
					}
				}
				if got, want := s.st.clocks.offset(origin+":443"), time.Duration(op.ExpectedClientSkew*float64(time.Second)); got != want {
					t.Errorf("operation %d: offset %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestErrorCode(t *testing.T) {
	for _, c := range []struct {
		header, body, want string
	}{
		{"", `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error><Code>RequestTimeTooSkewed</Code><Message>m</Message></Error>", "RequestTimeTooSkewed"},
		{"", "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>", "SignatureDoesNotMatch"},
		{"", `{"__type":"com.amazon.coral.service#InvalidSignatureException","message":"m"}`, "InvalidSignatureException"},
		{"InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/", "", "InvalidSignatureException"},
		{"", `{"code":"AuthFailure"}`, "AuthFailure"},
		{"", "not xml at all", ""},
		{"", "", ""},
	} {
		resp := &http.Response{Header: http.Header{}}
		if c.header != "" {
			resp.Header.Set("X-Amzn-ErrorType", c.header)
		}
		if got := errorCode(resp, []byte(c.body)); got != c.want {
			t.Errorf("errorCode(%q, %q) = %q, want %q", c.header, c.body, got, c.want)
		}
	}
}
