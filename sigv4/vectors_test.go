package sigv4

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/anyauth/anyauth"
)

// vectorSet is one set of testdata/vectors.json.
type vectorSet struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	Region          string    `json:"region"`
	Service         string    `json:"service"`
	Time            time.Time `json:"time"`
	Cases           []struct {
		Name          string              `json:"name"`
		Method        string              `json:"method"`
		URL           string              `json:"url"`
		Headers       map[string][]string `json:"headers"`
		Body          *string             `json:"body"`
		ContentSHA256 string              `json:"contentSha256"`
		RawPath       bool                `json:"rawPath"`
		Authorization string              `json:"authorization"`
	} `json:"cases"`
}

// signWith signs req as the Transport would: Begin (for the request's
// origin), Start, then Apply on the request.
func signWith(t *testing.T, s *Signer, req *http.Request) {
	t.Helper()
	space := anyauth.ProtectionSpace{URLScheme: req.URL.Scheme, Host: req.URL.Hostname(), Port: req.URL.Port(), AuthScheme: Name, Path: "/"}
	if space.Port == "" {
		space.Port = map[string]string{"http": "80", "https": "443"}[space.URLScheme]
	}
	sess, err := s.Begin(context.Background(), &anyauth.Challenge{Scheme: Name}, &anyauth.Attempt{Request: req, Space: space, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l, err := sess.Start(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	lastLeg = l.(*leg)
	if err := l.Apply(req); err != nil {
		t.Fatal(err)
	}
}

// lastLeg is the Leg signWith started last.
var lastLeg *leg

// TestPublishedVectors signs AWS's published examples with the Leg, at
// their time and with their credentials, and compares the Authorization
// header with the one AWS published.
func TestPublishedVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var sets struct {
		Suite vectorSet `json:"suite"`
		S3    vectorSet `json:"s3"`
	}
	if err := json.Unmarshal(data, &sets); err != nil {
		t.Fatal(err)
	}
	for name, set := range map[string]vectorSet{"suite": sets.Suite, "s3": sets.S3} {
		for _, c := range set.Cases {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				var body io.Reader
				if c.Body != nil {
					body = strings.NewReader(*c.Body)
				}
				req, err := http.NewRequest(c.Method, c.URL, body)
				if err != nil {
					t.Fatal(err)
				}
				// The examples sign no Content-Length.
				req.ContentLength = -1
				for k, v := range c.Headers {
					req.Header[k] = v
				}
				origin := req.URL.Scheme + "://" + req.URL.Host
				s := New(set.Region, set.Service, StaticCredentials(set.AccessKeyID, set.SecretAccessKey, ""), origin)
				s.now = func() time.Time { return set.Time }
				s.omitContentSHA256 = name == "suite"
				s.escapeOnce = c.RawPath
				signWith(t, s, req)
				if got := req.Header.Get("Authorization"); got != c.Authorization {
					t.Errorf("Authorization:\n got %s\nwant %s", got, c.Authorization)
				}
				if got, want := req.Header.Get("X-Amz-Date"), set.Time.UTC().Format("20060102T150405Z"); got != want {
					t.Errorf("X-Amz-Date %q, want %q", got, want)
				}
				if c.ContentSHA256 != "" && req.Header.Get("X-Amz-Content-Sha256") != c.ContentSHA256 {
					t.Errorf("X-Amz-Content-Sha256 %q, want %q", req.Header.Get("X-Amz-Content-Sha256"), c.ContentSHA256)
				}
			})
		}
	}
}
