package testserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file starts an OAuth 1.0 (RFC 5849) resource server that none of
// us wrote: oauthlib's ResourceEndpoint (Debian's python3-oauthlib, with
// python3-jwt and python3-cryptography for RSA), run by the script
// oauth1/verifier.py beside this file.

// Credentials the OAuth 1.0 verifier accepts: one client and one token.
// The keys are 22 letters and digits, as oauthlib's default checks want
// (20 to 30 of them); the secrets hold characters that percent-encoding
// must get right (space, "&", "=", "+", "%", "/", "~", non-ASCII).
const (
	OAuth1ConsumerKey    = "anyauthConsumerKey0123"
	OAuth1ConsumerSecret = "consumer secret &=+%/~ é"
	OAuth1Token          = "anyauthAccessToken0123"
	OAuth1TokenSecret    = "token secret ;,:@!*'()"
	// OAuth1Realm is the realm of the verifier's challenge,
	// `WWW-Authenticate: OAuth realm="test"`.
	OAuth1Realm = "test"
	// OAuth1PathBodyHash is the path prefix under which a request whose
	// body is not form-encoded must carry oauth_body_hash.
	OAuth1PathBodyHash = "/bodyhash/"
)

// OAuth1Verifier is a running OAuth 1.0 verifier started by
// StartOAuth1Verifier, on http://127.0.0.1:PORT (URL) and
// https://127.0.0.1:PORT2 (TLSURL).
//
// Every path but /_ready is protected. A request is verified by
// oauthlib's ResourceEndpoint for the client OAuth1ConsumerKey (secret
// OAuth1ConsumerSecret, RSA public key of RSAKey) and the token
// OAuth1Token (secret OAuth1TokenSecret), with the signature methods
// HMAC-SHA1, HMAC-SHA256, RSA-SHA1, RSA-SHA256 and PLAINTEXT, a timestamp
// within 600 s, and a nonce never seen before by this verifier (a reused
// one is refused). oauthlib does not check oauth_body_hash; the verifier
// does (SHA-1 for *-SHA1, SHA-256 for *-SHA256), and requires it under
// OAuth1PathBodyHash for bodies that are not form-encoded.
//
// A valid request gets 200 and a JSON OAuth1Reply; any other gets 401
// with `WWW-Authenticate: OAuth realm="test"` and a JSON body with the
// reason. Every request is recorded (Events), before its response is
// sent.
type OAuth1Verifier struct {
	URL       string // "http://127.0.0.1:PORT"
	TLSURL    string // "https://127.0.0.1:PORT2"
	CACertPEM []byte // the CA of TLSURL's certificate

	// RSAKey is the client's RSA key (2048 bits, made at start), whose
	// public half the verifier checks RSA-SHA1 and RSA-SHA256 with;
	// RSAKeyPEM is it as a PKCS #8 "PRIVATE KEY" PEM block, and
	// RSAKeyFile a 0600 file holding that.
	RSAKey     *rsa.PrivateKey
	RSAKeyPEM  []byte
	RSAKeyFile string

	Python  string        // the python3 that runs it
	Dir     string        // temp dir: config, keys, logs
	Startup time.Duration // from exec until /_ready answered on both ports

	proc
	stdin     *os.File // its standard input: it exits when this closes
	logFile   string
	eventLog  string
	closeOnce sync.Once
	closeErr  error
}

// OAuth1Reply is the JSON body of a verified request.
type OAuth1Reply struct {
	Verified        bool        `json:"verified"`
	ClientKey       string      `json:"client_key"`
	Token           string      `json:"token"`
	SignatureMethod string      `json:"signature_method"`
	Nonce           string      `json:"nonce"`
	Timestamp       string      `json:"timestamp"`
	Realm           string      `json:"realm"`
	BodyHash        string      `json:"body_hash"`   // "verified" or "absent"
	BodySHA256      string      `json:"body_sha256"` // hex SHA-256 of the body received
	BodyLength      int         `json:"body_length"`
	Params          [][2]string `json:"params"` // the query and form parameters signed, sorted
	Method          string      `json:"method"`
	Path            string      `json:"path"`
}

// OAuth1Event is the verifier's record of one request.
type OAuth1Event struct {
	Scheme          string `json:"scheme"` // "http" or "https"
	Method          string `json:"method"`
	Path            string `json:"path"`
	Authorization   bool   `json:"authorization"` // it carried an OAuth Authorization
	Verified        bool   `json:"verified"`
	Status          int    `json:"status"`
	Reason          string `json:"reason"` // why it was refused
	SignatureMethod string `json:"signature_method"`
	Nonce           string `json:"nonce"`
	Realm           string `json:"realm"`
	BodyHash        string `json:"body_hash"`
	BodyLength      int    `json:"body_length"`
}

// oauth1Config is what verifier.py reads.
type oauth1Config struct {
	ConsumerKey    string `json:"consumer_key"`
	ConsumerSecret string `json:"consumer_secret"`
	Token          string `json:"token"`
	TokenSecret    string `json:"token_secret"`
	RSAPublicKey   string `json:"rsa_public_key"`
	TLSPort        int    `json:"tls_port"`
	TLSCert        string `json:"tls_cert"`
	TLSKey         string `json:"tls_key"`
	EventLog       string `json:"event_log"`
	Dir            string `json:"dir"`
}

// oauth1PythonModules are what verifier.py imports, and the Debian
// packages that hold them.
const (
	oauth1PythonImports  = "import oauthlib.oauth1, jwt, cryptography"
	oauth1DebianPackages = "python3-oauthlib python3-jwt python3-cryptography"
)

// StartOAuth1Verifier starts the verifier (see OAuth1Verifier) with
// python3 on two free 127.0.0.1 ports and waits until it answers on both.
// The error wraps ErrNotInstalled when no python3 can import oauthlib,
// jwt and cryptography (Debian: python3-oauthlib, python3-jwt,
// python3-cryptography); TESTSERVER_PYTHON3 names the python3 to use,
// else /usr/bin/python3 and then python3 in PATH are tried.
func StartOAuth1Verifier() (*OAuth1Verifier, error) {
	python, err := oauth1Python()
	if err != nil {
		return nil, err
	}
	script, err := oauth1Script()
	if err != nil {
		return nil, err
	}
	dir, err := makeDir("oauth1", nil)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	v := &OAuth1Verifier{
		Python:   python,
		Dir:      dir,
		logFile:  filepath.Join(dir, "verifier.log"),
		eventLog: filepath.Join(dir, "events.jsonl"),
	}
	if err := v.writeKeys(); err != nil {
		return nil, err
	}
	pki, err := writeTestPKI(dir)
	if err != nil {
		return nil, err
	}
	v.CACertPEM = pki.CACertPEM
	err = retryOnTakenPort(func(int) (bool, error) {
		port, err := freePort()
		if err != nil {
			return false, err
		}
		tlsPort, err := freePort()
		if err != nil {
			return false, err
		}
		err = v.startOn(python, script, port, tlsPort)
		return err != nil && strings.Contains(v.Log(), "Address already in use"), err
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return v, nil
}

// StartOAuth1VerifierForTest starts a verifier with StartOAuth1Verifier,
// closes it when the test ends and, if the test failed, logs its output.
// A missing python3-oauthlib skips the test, or fails it when InCI.
func StartOAuth1VerifierForTest(t testing.TB) *OAuth1Verifier {
	t.Helper()
	return forTest(t, StartOAuth1Verifier, func(v *OAuth1Verifier) string { return "oauth1 verifier log:\n" + v.Log() })
}

// oauth1Python returns a python3 that can import what verifier.py needs.
func oauth1Python() (string, error) {
	if unsupported != nil {
		return "", unsupported
	}
	var candidates []string
	if p := os.Getenv("TESTSERVER_PYTHON3"); p != "" {
		candidates = []string{p}
	} else {
		candidates = []string{"/usr/bin/python3"}
		if p, err := exec.LookPath("python3"); err == nil && p != "/usr/bin/python3" {
			candidates = append(candidates, p)
		}
	}
	var why []string
	for _, p := range candidates {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		out, err := exec.CommandContext(ctx, p, "-c", oauth1PythonImports).CombinedOutput()
		cancel()
		if err == nil {
			return p, nil
		}
		last := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(last, '\n'); i >= 0 {
			last = last[i+1:]
		}
		why = append(why, fmt.Sprintf("%s: %v %s", p, err, last))
	}
	return "", fmt.Errorf("%w: no python3 can %q (Debian: apt-get install %s): %s",
		ErrNotInstalled, oauth1PythonImports, oauth1DebianPackages, strings.Join(why, "; "))
}

// oauth1Script returns the path of verifier.py, found from this source
// file so that tests of any package find it.
func oauth1Script() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testserver: cannot locate oauth1.go")
	}
	script := filepath.Join(filepath.Dir(file), "oauth1", "verifier.py")
	if _, err := os.Stat(script); err != nil {
		return "", fmt.Errorf("testserver: oauth1 verifier script: %w", err)
	}
	return script, nil
}

// writeKeys makes the client's RSA key and writes both halves in Dir.
func (v *OAuth1Verifier) writeKeys() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	v.RSAKey = key
	v.RSAKeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	v.RSAKeyFile = filepath.Join(v.Dir, "rsa_private.pem")
	if err := os.WriteFile(v.RSAKeyFile, v.RSAKeyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(v.Dir, "rsa_public.pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}

// startOn writes the configuration and starts python3 on port and
// tlsPort, and waits until both answer /_ready with Dir.
func (v *OAuth1Verifier) startOn(python, script string, port, tlsPort int) error {
	v.forget()
	if v.stdin != nil {
		v.stdin.Close()
		v.stdin = nil
	}
	v.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
	v.TLSURL = fmt.Sprintf("https://127.0.0.1:%d", tlsPort)
	cfg := oauth1Config{
		ConsumerKey:    OAuth1ConsumerKey,
		ConsumerSecret: OAuth1ConsumerSecret,
		Token:          OAuth1Token,
		TokenSecret:    OAuth1TokenSecret,
		RSAPublicKey:   filepath.Join(v.Dir, "rsa_public.pem"),
		TLSPort:        tlsPort,
		TLSCert:        filepath.Join(v.Dir, "tls", "cert.pem"),
		TLSKey:         filepath.Join(v.Dir, "tls", "key.pem"),
		EventLog:       v.eventLog,
		Dir:            v.Dir,
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	conf := filepath.Join(v.Dir, "config.json")
	if err := os.WriteFile(conf, data, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(v.eventLog, nil, 0o644); err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command(python, script, fmt.Sprint(port), conf)
	cmd.Dir = v.Dir
	cmd.Env = append(serverEnv(), "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1")
	cmd.Stdin = r
	began := time.Now()
	err = v.start("oauth1 verifier", cmd, v.logFile)
	r.Close()
	if err != nil {
		w.Close()
		return err
	}
	v.stdin = w
	plain := &http.Client{Transport: noProxyClient.Transport, Timeout: time.Second}
	secure := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true, TLSClientConfig: v.TLSClientConfig()}, Timeout: time.Second}
	want := v.Dir + "\n"
	err = v.ready(20*time.Second, func() error {
		for _, c := range []struct {
			client *http.Client
			url    string
		}{{plain, v.URL}, {secure, v.TLSURL}} {
			resp, err := c.client.Get(c.url + "/_ready")
			if err != nil {
				return fmt.Errorf("%w: %v", errNotReady, err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(body) != want {
				return fmt.Errorf("%w: GET %s/_ready: %s %q (another server on the port?)", errNotReady, c.url, resp.Status, body)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("testserver: oauth1 verifier on %s: %w\n%s", v.URL, err, v.Log())
	}
	v.Startup = time.Since(began)
	return nil
}

// TLSClientConfig trusts only the CA of TLSURL's certificate.
func (v *OAuth1Verifier) TLSClientConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(v.CACertPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// Events returns the verifier's records of every request so far, in the
// order they were answered.
func (v *OAuth1Verifier) Events() []OAuth1Event {
	events, _ := eventLines[OAuth1Event](v.eventLog, 0)
	return events
}

// EventsSince returns the records after the first n (n from an earlier
// len(Events())), for a test sharing the verifier with others.
func (v *OAuth1Verifier) EventsSince(n int) []OAuth1Event {
	all := v.Events()
	if n >= len(all) {
		return nil
	}
	return all[n:]
}

// Counts returns how many requests the verifier accepted and refused
// so far.
func (v *OAuth1Verifier) Counts() (accepted, refused int) {
	for _, e := range v.Events() {
		if e.Verified {
			accepted++
		} else {
			refused++
		}
	}
	return accepted, refused
}

// Nonces returns the nonces of the requests the verifier saw, in order
// (a reused one appears twice).
func (v *OAuth1Verifier) Nonces() []string {
	var out []string
	for _, e := range v.Events() {
		if e.Nonce != "" {
			out = append(out, e.Nonce)
		}
	}
	return out
}

// Log returns what the verifier wrote on stdout and stderr: a line per
// request.
func (v *OAuth1Verifier) Log() string {
	data, _ := os.ReadFile(v.logFile)
	return string(data)
}

// Close stops the verifier and removes Dir. It is idempotent and safe to
// call on a nil OAuth1Verifier.
func (v *OAuth1Verifier) Close() error {
	if v == nil {
		return nil
	}
	v.closeOnce.Do(func() {
		err := v.stop()
		if v.stdin != nil {
			v.stdin.Close()
		}
		v.closeErr = errors.Join(err, os.RemoveAll(v.Dir))
	})
	return v.closeErr
}
