package testserver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file starts a fake S3 that verifies AWS Signature Version 4:
// s3rver from npm (pinned, with aws4, by s3rver/package.json and
// package-lock.json) behind the verifier in s3rver/server.js, run by node.
// npm ci installs its node_modules the first time.
//
// s3rver 3.7.1 alone accepts any V4 signature of a known access key (its
// authentication middleware says V4 is "unimplemented", and no option
// changes that; --allow-mismatched-signatures only relaxes V2): server.js
// recomputes every signature with aws4 and refuses the wrong ones.

// Credentials and bucket of the fake S3.
const (
	// S3rverAccessKeyID and S3rverSecretAccessKey are the only
	// credentials the verifier knows (s3rver's default account).
	S3rverAccessKeyID     = "S3RVER"
	S3rverSecretAccessKey = "S3RVER"
	// S3rverBucket is the bucket created at start.
	S3rverBucket = "anyauth"
	// S3rverRegion is a region to sign for: the verifier takes the one
	// in the signature's scope, as long as the service is "s3".
	S3rverRegion = "us-east-1"
)

// s3rverVersion and aws4Version are the releases package.json pins.
const (
	s3rverVersion = "3.7.1"
	aws4Version   = "1.13.2"
)

// s3rverPackage is the fake S3's npm package: s3rver behind the aws4
// verifier (server.js), on node 18 or later.
var s3rverPackage = nodePackage{
	dir:     "s3rver",
	script:  "server.js",
	pins:    map[string]string{"s3rver": s3rverVersion, "aws4": aws4Version},
	minNode: [2]int{18, 0},
}

// S3rver is a running fake S3 started by StartS3rver, on
// http://127.0.0.1:PORT with path-style buckets (URL/BUCKET/KEY) and the
// one bucket S3rverBucket, stored in Dir.
//
// Every request must be signed with AWS Signature Version 4 (an
// Authorization header) by S3rverAccessKeyID and S3rverSecretAccessKey for
// the service "s3": a wrong signature gets 403 SignatureDoesNotMatch, an
// X-Amz-Date more than 15 minutes away 403 RequestTimeTooSkewed, a body
// whose SHA-256 is not its X-Amz-Content-Sha256 400
// XAmzContentSHA256Mismatch (UNSIGNED-PAYLOAD is accepted), an unsigned
// request 403 AccessDenied. Events lists the requests.
type S3rver struct {
	URL     string        // "http://127.0.0.1:PORT", no trailing slash
	Dir     string        // temp dir: configuration, objects, logs
	Startup time.Duration // from exec until it answered

	proc
	logFile   string
	eventLog  string
	closeOnce sync.Once
	closeErr  error
}

// S3rverEvent is one request as the verifier saw it.
type S3rverEvent struct {
	Method string `json:"method"`
	URL    string `json:"url"` // the request target, e.g. "/anyauth?list-type=2"
	Status int    `json:"status"`
	// Code is the S3 error code of a refusal ("SignatureDoesNotMatch"),
	// "" for a success.
	Code string `json:"code"`
	// Verified is true when the signature was recomputed and matched.
	Verified         bool   `json:"verified"`
	AccessKeyID      string `json:"accessKeyId"`
	AmzDate          string `json:"amzDate"`          // X-Amz-Date
	ContentSHA256    string `json:"contentSha256"`    // X-Amz-Content-Sha256
	SignedHeaders    string `json:"signedHeaders"`    // as the Authorization header lists them
	Payload          string `json:"payload"`          // "signed" (hash checked) or "unsigned"
	BodyLength       int64  `json:"bodyLength"`       // of a signed payload, as received
	TransferEncoding string `json:"transferEncoding"` // e.g. "chunked"
	Via              string `json:"via"`              // a proxy's Via header
}

// s3rverConfig is the configuration server.js reads.
type s3rverConfig struct {
	Port      int               `json:"port"`
	Directory string            `json:"directory"`
	Bucket    string            `json:"bucket"`
	EventLog  string            `json:"eventLog"`
	Keys      map[string]string `json:"keys"`
}

// StartS3rver starts the fake S3 (see S3rver) with node on a free
// 127.0.0.1 port and waits until it answers.
//
// The first start runs npm ci in the s3rver directory beside this file
// (under a file lock, at most 5 minutes), which needs the npm registry.
// The error wraps ErrNotInstalled when node or npm is missing or node is
// older than 18; TESTSERVER_NODE and TESTSERVER_NPM name other binaries.
func StartS3rver() (*S3rver, error) {
	node, dir, script, err := s3rverPackage.prepare("s3rver")
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	s := &S3rver{Dir: dir, logFile: filepath.Join(dir, "s3rver.log"), eventLog: filepath.Join(dir, "events.jsonl")}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, err
	}
	err = retryOnTakenPort(func(int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		err = s.startOn(node, script, port)
		return err != nil && strings.Contains(s.Log(), "EADDRINUSE"), err
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

// StartS3rverForTest starts the fake S3 with StartS3rver, closes it when
// the test ends and, if the test failed, logs its output and events.
// Missing node or npm skips the test, or fails it when InCI.
func StartS3rverForTest(t testing.TB) *S3rver {
	t.Helper()
	return forTest(t, StartS3rver, func(s *S3rver) string {
		var b strings.Builder
		b.WriteString("s3rver log:\n" + s.Log() + "s3rver events:\n")
		for _, e := range s.Events() {
			fmt.Fprintf(&b, "  %+v\n", e)
		}
		return b.String()
	})
}

// startOn writes the configuration for port, starts node and waits for
// the ready path.
func (s *S3rver) startOn(node, script string, port int) error {
	s.forget()
	s.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	cfg := s3rverConfig{
		Port:      port,
		Directory: filepath.Join(s.Dir, "data"),
		Bucket:    S3rverBucket,
		EventLog:  s.eventLog,
		Keys:      map[string]string{S3rverAccessKeyID: S3rverSecretAccessKey},
	}
	began := time.Now()
	if err := s.startScript("s3rver", node, script, s.Dir, cfg, s.eventLog, s.logFile); err != nil {
		return err
	}
	err := s.ready(30*time.Second, answersWith(s.URL+"/_anyauth_ready", filepath.Join(s.Dir, "data")+"\n"))
	if err != nil {
		return fmt.Errorf("testserver: s3rver on %s: %w\n%s", s.URL, err, s.Log())
	}
	s.Startup = time.Since(began)
	return nil
}

// Events returns the requests the verifier has answered, oldest first.
// The verifier writes each line before it sends the response, so a
// request whose response arrived is included.
func (s *S3rver) Events() []S3rverEvent {
	events, _ := eventLines[S3rverEvent](s.eventLog, 0)
	return events
}

// Log returns what node wrote on stdout and stderr.
func (s *S3rver) Log() string {
	data, _ := os.ReadFile(s.logFile)
	return string(data)
}

// Close stops node and removes Dir. It is idempotent and safe to call on
// a nil S3rver.
func (s *S3rver) Close() error {
	if s == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		s.closeErr = errors.Join(s.stop(), os.RemoveAll(s.Dir))
	})
	return s.closeErr
}
