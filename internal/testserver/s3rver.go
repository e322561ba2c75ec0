package testserver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
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

// minNodeS3rver is the oldest node major version the fake S3 is run on.
const minNodeS3rver = 18

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
	node, err := findBinary("TESTSERVER_NODE", []string{"node", "nodejs"}, "/usr/bin/node")
	if err != nil {
		return nil, err
	}
	if err := checkNodeMajor(node, minNodeS3rver); err != nil {
		return nil, err
	}
	dir, err := makeDir("s3rver", nil)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	script, err := s3rverModules(node, filepath.Join(dir, "npm-ci.log"))
	if err != nil {
		return nil, err
	}
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
	data, err := json.MarshalIndent(s3rverConfig{
		Port:      port,
		Directory: filepath.Join(s.Dir, "data"),
		Bucket:    S3rverBucket,
		EventLog:  s.eventLog,
		Keys:      map[string]string{S3rverAccessKeyID: S3rverSecretAccessKey},
	}, "", "  ")
	if err != nil {
		return err
	}
	conf := filepath.Join(s.Dir, "config.json")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(s.eventLog, nil, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(node, script, conf)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = serverEnv()
	began := time.Now()
	if err := s.start("s3rver", cmd, s.logFile); err != nil {
		return err
	}
	want := filepath.Join(s.Dir, "data") + "\n"
	c := &http.Client{Transport: noProxyClient.Transport, Timeout: time.Second}
	err = s.ready(30*time.Second, func() error {
		resp, err := c.Get(s.URL + "/_anyauth_ready")
		if err != nil {
			return fmt.Errorf("%w: %v", errNotReady, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != want {
			return fmt.Errorf("%w: %s %q (another server on the port?)", errNotReady, resp.Status, body)
		}
		return nil
	})
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
	data, err := os.ReadFile(s.eventLog)
	if err != nil {
		return nil
	}
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var events []S3rverEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var e S3rverEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			events = append(events, e)
		}
	}
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

// checkNodeMajor fails with ErrNotInstalled when node's major version is
// below major.
func checkNodeMajor(node string, major int) error {
	out, err := exec.Command(node, "--version").Output()
	if err != nil {
		return fmt.Errorf("%w: %s --version: %v", ErrNotInstalled, node, err)
	}
	v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	m, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	if m < major {
		return fmt.Errorf("%w: %s is node %q; the fake S3 needs %d or later", ErrNotInstalled, node, v, major)
	}
	return nil
}

// s3rverDir is the directory of package.json and server.js, found from
// this source file so that tests of any package find it.
func s3rverDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testserver: cannot locate s3rver.go")
	}
	dir := filepath.Join(filepath.Dir(file), "s3rver")
	if _, err := os.Stat(filepath.Join(dir, "server.js")); err != nil {
		return "", fmt.Errorf("testserver: s3rver script: %w", err)
	}
	return dir, nil
}

// s3rverModules makes sure node_modules holds the pinned s3rver and aws4,
// running npm ci if not, and returns the path of server.js.
func s3rverModules(node, logPath string) (string, error) {
	dir, err := s3rverDir()
	if err != nil {
		return "", err
	}
	installed := func() bool {
		return npmInstalled(dir, "s3rver", s3rverVersion) && npmInstalled(dir, "aws4", aws4Version)
	}
	if err := npmCI(dir, node, logPath, installed); err != nil {
		return "", err
	}
	return filepath.Join(dir, "server.js"), nil
}

// npmInstalled reports whether npm ci completed in dir and installed
// version of pkg.
func npmInstalled(dir, pkg, version string) bool {
	if _, err := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil {
		return false
	}
	data, err := os.ReadFile(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if err != nil {
		return false
	}
	var p struct{ Version string }
	return json.Unmarshal(data, &p) == nil && p.Version == version
}

// npmCI runs npm ci in dir (output to logPath) unless installed reports
// true, under a file lock so that test binaries running at once install
// once, within npmCITimeout. It is oidcProviderModules' procedure for any
// directory with a package-lock.json.
func npmCI(dir, node, logPath string, installed func() bool) error {
	if installed() {
		return nil
	}
	npm, err := findBinary("TESTSERVER_NPM", []string{"npm"}, "/usr/bin/npm")
	if err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".npm-ci.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("testserver: npm ci lock: %w", err)
	}
	defer lock.Close()
	if err := lockFile(lock, npmCITimeout+time.Minute); err != nil {
		return err
	}
	if installed() { // another process installed meanwhile
		return nil
	}
	cmd := exec.Command(npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = dir
	// npm needs the user's environment (registry settings, CA
	// certificates, HOME for its cache) and node in PATH.
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"npm_config_update_notifier=false")
	var p proc
	if err := p.start("npm ci", cmd, logPath); err != nil {
		return err
	}
	select {
	case <-p.exited:
	case <-time.After(npmCITimeout):
		_ = p.stop()
		return fmt.Errorf("testserver: npm ci in %s took more than %v\n%s", dir, npmCITimeout, tail(logPath, 4096))
	}
	if p.waitErr != nil || !installed() {
		return fmt.Errorf("testserver: npm ci in %s: %v\n%s", dir, p.waitErr, tail(logPath, 4096))
	}
	return nil
}
