package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// This file runs Debian's docker-registry (CNCF distribution 2.8) with
// token authentication, and the token server it trusts, in process. See
// StartRegistry.

// Names the registry and its token server agree on.
const (
	// RegistryService is the registry's service name: the service
	// parameter of its challenges, and the audience (aud) it accepts.
	RegistryService = "anyauth-registry"
	// RegistryIssuer is the issuer (iss) of the token server's tokens,
	// the only one the registry trusts.
	RegistryIssuer = "anyauth-token-server"
	// RegistryTokenRealm is the realm of the Basic challenge the token
	// server sends with its 401 to a GET with wrong credentials.
	RegistryTokenRealm = "anyauth registry token"
	// RegistryPublicPrefix is the prefix of the repositories anonymous
	// clients may pull from, e.g. "public/x".
	RegistryPublicPrefix = "public/"
	// DefaultRegistryTokenTTL is the lifetime of the tokens when
	// RegistryOptions.TokenTTL is zero.
	DefaultRegistryTokenTTL = 300 * time.Second
)

// RegistryOptions configures StartRegistry. The zero value is fine.
type RegistryOptions struct {
	// TokenTTL is the lifetime of the issued tokens (exp - iat, and the
	// expires_in of the answers); DefaultRegistryTokenTTL if zero. Note
	// that the registry accepts a token up to 60 s after its exp (and
	// before its nbf): distribution's leeway for clock skew.
	TokenTTL time.Duration
	// Port is the registry's port on 127.0.0.1; 0 picks a free one. With
	// a fixed port, StartRegistry fails if the port is taken.
	Port int
}

// Registry is a Docker registry, Debian's docker-registry (distribution
// 2.8), started by StartRegistry with token authentication (the Docker
// Registry v2 token authentication specification), and the token server it
// trusts, which runs in this process.
//
// The registry listens on 127.0.0.1 and keeps its blobs in Dir (filesystem
// storage). Every /v2/ request needs a Bearer token; without one it answers
// 401 with
//
//	WWW-Authenticate: Bearer realm="TokenURL",service="anyauth-registry"
//
// plus, on a repository path, the scope the request needs, e.g.
// ,scope="repository:foo/bar:pull" (for a push "pull,push", the two
// actions in either order: the registry lists them from a Go map), and
// with a token that does not grant that, error="insufficient_scope"; a
// token it cannot verify (signature, issuer, audience, expiry) is answered
// with error="invalid_token".
//
// The token server answers at TokenURL:
//
//   - GET TokenURL?service=S&scope=T:NAME:ACTIONS&scope=…&account=A
//     (the token endpoint of the specification; scope may repeat and each
//     value may hold several space-separated scopes), with optional Basic
//     credentials. User with Password may pull and push every repository
//     and use the catalog (registry:catalog:*); without credentials a
//     client is anonymous and may pull only repositories under
//     RegistryPublicPrefix, and still gets a token, with what it may have
//     of what it asked for (possibly nothing: "access":[]). Any other
//     credentials are answered 401 with a JSON error and
//     WWW-Authenticate: Basic realm="anyauth registry token". The answer
//     is {"token", "access_token" (the same), "expires_in", "issued_at"},
//     plus a "refresh_token" for offline_token=true from an authenticated
//     user.
//   - POST TokenURL, the OAuth 2.0 form of the specification (grant_type
//     password with username and password, or refresh_token with a
//     refresh token it issued; service and client_id required;
//     access_type=offline asks for a refresh token; scope is a
//     space-separated list). The answer is {"access_token", "scope" (what
//     was granted, space-separated), "expires_in", "issued_at"} and
//     "refresh_token" when asked for or used. Bad credentials or an
//     unknown refresh token: 401; a missing or unsupported field: 400;
//     both with a JSON error and no WWW-Authenticate, as distribution's
//     own token server does.
//
// The tokens are ES256 JWTs whose header carries the signing certificate
// in x5c; the certificate is self-signed and is the registry's
// rootcertbundle. Their claims are iss RegistryIssuer, sub the user ("" for
// anonymous), aud the service parameter as sent (so a token asked for
// another service is invalid_token at the registry), exp, nbf, iat, jti
// and access: for each resource asked for, the actions asked for that the
// client may have.
//
// The registry (distribution 2.8's registry/auth/token) checks iss, aud
// (a string: an array makes the token malformed), exp and nbf with 60 s
// of leeway, then finds the signing key from the header: x5c (a chain up
// to a rootcertbundle certificate), else jwk (a key of a rootcertbundle
// certificate, or one with its own x5c), else kid (the libtrust key ID of
// a rootcertbundle certificate's key, not an RFC 7638 thumbprint), and
// the signature must match alg. Any failure is error="invalid_token".
//
// TokenRequests records what the token server was asked.
type Registry struct {
	URL      string        // "http://127.0.0.1:PORT", no trailing slash
	TokenURL string        // the token endpoint, "http://127.0.0.1:PORT2/token"
	Dir      string        // temp dir: config.yml, the signing certificate, data/, the log
	Binary   string        // the docker-registry binary
	TokenTTL time.Duration // lifetime of the issued tokens
	Startup  time.Duration // from exec until /v2/ answered its challenge

	// CertPEM is the token signing certificate (the registry's
	// rootcertbundle), self-signed, ECDSA P-256.
	CertPEM []byte

	proc
	logFile   string
	tokens    *registryTokenServer
	closeOnce sync.Once
	closeErr  error
}

// RegistryTokenRequest is what the token server recorded of one request
// to its token endpoint.
type RegistryTokenRequest struct {
	Method string // "GET" or "POST"
	// Account is the user the request authenticated as: User, or "" for
	// an anonymous request. On a 401 it is the user name that failed
	// (Basic, or the password grant's username).
	Account string
	// AccountParam is the account query parameter of a GET, as sent.
	AccountParam string
	// GrantType is the grant_type of a POST; "" for a GET.
	GrantType string
	Service   string   // the service parameter, as sent
	Scopes    []string // the requested scopes, one "type:name:actions" each, as sent
	// Granted is the access of the issued token, one "type:name:actions"
	// per resource; nil when no token was issued, empty when the token
	// grants nothing.
	Granted []string
	Status  int // the answer's status code
}

// StartRegistry starts the token server and docker-registry. The error
// wraps ErrNotInstalled when docker-registry is missing;
// TESTSERVER_DOCKER_REGISTRY names another binary.
func StartRegistry(opts RegistryOptions) (*Registry, error) {
	bin, err := findBinary("TESTSERVER_DOCKER_REGISTRY", []string{"docker-registry"}, "/usr/bin/docker-registry")
	if err != nil {
		return nil, err
	}
	ttl := opts.TokenTTL
	if ttl <= 0 {
		ttl = DefaultRegistryTokenTTL
	}
	dir, err := makeDir("registry", nil)
	if err != nil {
		return nil, err
	}
	r := &Registry{Dir: dir, Binary: bin, TokenTTL: ttl, logFile: filepath.Join(dir, "registry.log")}
	if err := r.run(opts.Port); err != nil {
		_ = r.tokens.close()
		os.RemoveAll(dir)
		return nil, err
	}
	return r, nil
}

// StartRegistryForTest starts a registry with StartRegistry, closes it
// when the test ends and, if the test failed, logs the registry's log. A
// docker-registry that is not installed skips the test, or fails it when
// InCI.
func StartRegistryForTest(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	return forTest(t, func() (*Registry, error) { return StartRegistry(opts) },
		func(r *Registry) string { return "docker-registry log:\n" + r.Log() })
}

// run starts the token server, then docker-registry (on fixedPort, or a
// free port, again on another one if it was taken meanwhile).
func (r *Registry) run(fixedPort int) error {
	ts, err := newRegistryTokenServer(r.TokenTTL)
	if err != nil {
		return err
	}
	r.tokens, r.TokenURL, r.CertPEM = ts, ts.url, ts.certPEM
	certFile := filepath.Join(r.Dir, "token-signing.pem")
	if err := os.WriteFile(certFile, ts.certPEM, 0o644); err != nil {
		return err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	config := filepath.Join(r.Dir, "config.yml")
	return retryOnTakenPort(func(attempt int) (bool, error) {
		port := fixedPort
		if port == 0 {
			if port, err = freePort(); err != nil {
				return false, err
			}
		}
		r.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		yml := registryConfig(port, filepath.Join(r.Dir, "data"), hex.EncodeToString(secret), r.TokenURL, certFile)
		if err := os.WriteFile(config, []byte(yml), 0o644); err != nil {
			return false, err
		}
		r.forget()
		cmd := exec.Command(r.Binary, "serve", config)
		cmd.Dir = r.Dir
		cmd.Env = serverEnv()
		began := time.Now()
		if err := r.proc.start("docker-registry", cmd, r.logFile); err != nil {
			return false, err
		}
		if err := r.ready(20*time.Second, r.checkChallenge); err != nil {
			log := r.Log()
			return fixedPort == 0 && strings.Contains(strings.ToLower(log), "address already in use"),
				fmt.Errorf("testserver: docker-registry on %s did not come up: %w\n%s", r.URL, err, log)
		}
		r.Startup = time.Since(began)
		return false, nil
	})
}

// registryConfig is docker-registry's configuration: filesystem storage
// in data, HTTP on 127.0.0.1:port, token auth trusting certFile. Paths
// come from makeDir, which refuses quotes and backslashes.
func registryConfig(port int, data, secret, realm, certFile string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: "127.0.0.1:%d"
  secret: %q
  headers:
    X-Content-Type-Options: [nosniff]
auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`, data, port, secret, realm, RegistryService, RegistryIssuer, certFile)
}

// Challenge is the WWW-Authenticate value the registry answers a /v2/
// request without a token with.
func (r *Registry) Challenge() string {
	return fmt.Sprintf("Bearer realm=%q,service=%q", r.TokenURL, RegistryService)
}

// checkChallenge is the readiness check: GET /v2/ must answer 401 with
// Challenge.
func (r *Registry) checkChallenge() error {
	c := &http.Client{Transport: noProxyClient.Transport, Timeout: time.Second}
	resp, err := c.Get(r.URL + "/v2/")
	if err != nil {
		return fmt.Errorf("%w: %v", errNotReady, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	got := resp.Header.Values("Www-Authenticate")
	if resp.StatusCode == http.StatusUnauthorized && len(got) == 1 && got[0] == r.Challenge() {
		return nil
	}
	return fmt.Errorf("%w: GET /v2/: %s, WWW-Authenticate %q, want 401 with %q (another server on the port?)",
		errNotReady, resp.Status, got, r.Challenge())
}

// TokenRequests returns what the token server recorded of every request
// to its token endpoint, oldest first. A request is recorded before its
// answer is sent: every request answered before the call is included.
// The slice is a copy; for counts per test case, compare lengths of two
// snapshots.
func (r *Registry) TokenRequests() []RegistryTokenRequest {
	return r.tokens.snapshot()
}

// Log returns what docker-registry wrote on stdout and stderr (its log,
// one line per request included).
func (r *Registry) Log() string {
	data, _ := os.ReadFile(r.logFile)
	return string(data)
}

// Close stops docker-registry (SIGTERM to its process group) and the
// token server and removes Dir. It is idempotent and safe to call on a
// nil Registry.
func (r *Registry) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.closeErr = errors.Join(r.stop(), r.tokens.close(), os.RemoveAll(r.Dir))
	})
	return r.closeErr
}

// registryTokenServer is the in-process token server.
type registryTokenServer struct {
	url     string
	ttl     time.Duration
	key     *ecdsa.PrivateKey
	certDER []byte
	certPEM []byte
	srv     *http.Server
	done    chan struct{} // closed when Serve returned

	mu       sync.Mutex
	requests []RegistryTokenRequest
	refresh  map[string]registryRefresh // refresh token -> what it is good for
}

type registryRefresh struct{ account, service string }

func newRegistryTokenServer(ttl time.Duration) (*registryTokenServer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"anyauth tests"}, CommonName: fmt.Sprintf("anyauth registry token signer %d", now.UnixNano())},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CertValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ts := &registryTokenServer{
		url:     "http://" + l.Addr().String() + "/token",
		ttl:     ttl,
		key:     key,
		certDER: der,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		done:    make(chan struct{}),
		refresh: map[string]registryRefresh{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", ts.serveToken)
	ts.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_ = ts.srv.Serve(l)
		close(ts.done)
	}()
	return ts, nil
}

// close stops the token server; nil does nothing.
func (ts *registryTokenServer) close() error {
	if ts == nil {
		return nil
	}
	err := ts.srv.Close()
	<-ts.done
	return err
}

func (ts *registryTokenServer) snapshot() []RegistryTokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]RegistryTokenRequest, len(ts.requests))
	for i, rec := range ts.requests {
		rec.Scopes = slices.Clone(rec.Scopes)
		rec.Granted = slices.Clone(rec.Granted)
		out[i] = rec
	}
	return out
}

func (ts *registryTokenServer) record(rec RegistryTokenRequest) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.requests = append(ts.requests, rec)
}

// registryError is distribution's JSON error body (errcode.Errors).
type registryError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  string `json:"detail,omitempty"`
}

// fail records rec with status and answers it with a JSON error.
func (ts *registryTokenServer) fail(w http.ResponseWriter, rec RegistryTokenRequest, status int, code, message, detail string) {
	rec.Status = status
	ts.record(rec)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string][]registryError{"errors": {{Code: code, Message: message, Detail: detail}}})
}

// succeed records rec with 200 and answers body as JSON.
func (ts *registryTokenServer) succeed(w http.ResponseWriter, rec RegistryTokenRequest, body any) {
	rec.Status = http.StatusOK
	ts.record(rec)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}

func (ts *registryTokenServer) serveToken(w http.ResponseWriter, req *http.Request) {
	switch req.Method {
	case http.MethodGet:
		ts.getToken(w, req)
	case http.MethodPost:
		ts.postToken(w, req)
	default:
		w.Header().Set("Allow", "GET, POST")
		ts.fail(w, RegistryTokenRequest{Method: req.Method}, http.StatusMethodNotAllowed, "UNSUPPORTED", "The operation is unsupported.", "")
	}
}

// authenticate checks user and password; it reports whether they are
// User's.
func authenticate(user, password string) bool {
	return subtle.ConstantTimeCompare([]byte(user), []byte(User))&
		subtle.ConstantTimeCompare([]byte(password), []byte(Password)) == 1
}

// getToken is the token endpoint of the specification.
func (ts *registryTokenServer) getToken(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	rec := RegistryTokenRequest{Method: req.Method, AccountParam: q.Get("account"), Service: q.Get("service")}
	for _, s := range q["scope"] {
		rec.Scopes = append(rec.Scopes, strings.Fields(s)...)
	}
	if req.Header.Get("Authorization") != "" {
		user, password, ok := req.BasicAuth()
		rec.Account = user
		if !ok || !authenticate(user, password) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", RegistryTokenRealm))
			ts.fail(w, rec, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", "invalid authorization credential")
			return
		}
	}
	offline := false
	if s := q.Get("offline_token"); s != "" {
		var err error
		if offline, err = strconv.ParseBool(s); err != nil {
			ts.fail(w, rec, http.StatusBadRequest, "BAD_TOKEN_OPTION", "bad token option", err.Error())
			return
		}
	}
	token, granted, issued, err := ts.issue(rec.Account, rec.Service, rec.Scopes)
	if err != nil {
		ts.fail(w, rec, http.StatusInternalServerError, "UNKNOWN", "unknown error", err.Error())
		return
	}
	rec.Granted = granted
	body := map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(ts.ttl / time.Second),
		"issued_at":    issued.UTC().Format(time.RFC3339),
	}
	if offline && rec.Account != "" {
		body["refresh_token"] = ts.newRefresh(rec.Account, rec.Service)
	}
	ts.succeed(w, rec, body)
}

// postToken is the OAuth 2.0 form of the token endpoint.
func (ts *registryTokenServer) postToken(w http.ResponseWriter, req *http.Request) {
	rec := RegistryTokenRequest{Method: req.Method}
	if err := req.ParseForm(); err != nil {
		ts.fail(w, rec, http.StatusBadRequest, "UNSUPPORTED_VALUE", "unsupported value", err.Error())
		return
	}
	f := req.PostForm
	rec.GrantType, rec.Service = f.Get("grant_type"), f.Get("service")
	rec.Scopes = strings.Fields(f.Get("scope"))
	for _, required := range []string{"grant_type", "service", "client_id"} {
		if f.Get(required) == "" {
			ts.fail(w, rec, http.StatusBadRequest, "MISSING_REQUIRED_FIELD", "missing required field", "missing "+required+" value")
			return
		}
	}
	offline := false
	switch f.Get("access_type") {
	case "", "online":
	case "offline":
		offline = true
	default:
		ts.fail(w, rec, http.StatusBadRequest, "UNSUPPORTED_VALUE", "unsupported value", "unknown access_type value")
		return
	}
	var refresh string
	switch rec.GrantType {
	case "password":
		rec.Account = f.Get("username")
		if rec.Account == "" || f.Get("password") == "" {
			ts.fail(w, rec, http.StatusBadRequest, "UNSUPPORTED_VALUE", "unsupported value", "missing username or password value")
			return
		}
		if !authenticate(rec.Account, f.Get("password")) {
			ts.fail(w, rec, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", "invalid credentials")
			return
		}
	case "refresh_token":
		refresh = f.Get("refresh_token")
		if refresh == "" {
			ts.fail(w, rec, http.StatusBadRequest, "UNSUPPORTED_VALUE", "unsupported value", "missing refresh_token value")
			return
		}
		ts.mu.Lock()
		rt, ok := ts.refresh[refresh]
		ts.mu.Unlock()
		if !ok || rt.service != rec.Service {
			ts.fail(w, rec, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required", "invalid refresh token")
			return
		}
		rec.Account = rt.account
	default:
		ts.fail(w, rec, http.StatusBadRequest, "UNSUPPORTED_VALUE", "unsupported value", "unknown grant_type value")
		return
	}
	token, granted, issued, err := ts.issue(rec.Account, rec.Service, rec.Scopes)
	if err != nil {
		ts.fail(w, rec, http.StatusInternalServerError, "UNKNOWN", "unknown error", err.Error())
		return
	}
	rec.Granted = granted
	if offline {
		refresh = ts.newRefresh(rec.Account, rec.Service)
	}
	body := map[string]any{
		"access_token": token,
		"scope":        strings.Join(granted, " "),
		"expires_in":   int(ts.ttl / time.Second),
		"issued_at":    issued.UTC().Format(time.RFC3339),
	}
	if refresh != "" {
		body["refresh_token"] = refresh
	}
	ts.succeed(w, rec, body)
}

func (ts *registryTokenServer) newRefresh(account, service string) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	rt := base64.RawURLEncoding.EncodeToString(b)
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.refresh[rt] = registryRefresh{account: account, service: service}
	return rt
}

// registryAccess is one entry of a token's access claim.
type registryAccess struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// String is the entry as a scope, "type:name:actions".
func (a registryAccess) String() string {
	t := a.Type
	if a.Class != "" {
		t += "(" + a.Class + ")"
	}
	return t + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}

// registryClaims is a token's claim set (distribution's token.ClaimSet:
// aud is a single string there, an array would not decode).
type registryClaims struct {
	Issuer     string           `json:"iss"`
	Subject    string           `json:"sub"`
	Audience   string           `json:"aud"`
	Expiration int64            `json:"exp"`
	NotBefore  int64            `json:"nbf"`
	IssuedAt   int64            `json:"iat"`
	JWTID      string           `json:"jti"`
	Access     []registryAccess `json:"access"`
}

var scopeTypeRE = regexp.MustCompile(`^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$`)

// grantAccess returns what account ("" anonymous) gets of the scopes
// asked for: per resource, in the order first asked for, the actions
// asked for that it may have. Resources it may have nothing of are left
// out; malformed scopes are ignored.
func grantAccess(account string, scopes []string) []registryAccess {
	var out []registryAccess
	for _, s := range scopes {
		// type[(class)]:name:actions; the name may hold colons
		// (registry host:port), so cut at the first and the last.
		typ, rest, ok1 := strings.Cut(s, ":")
		i := strings.LastIndexByte(rest, ':')
		m := scopeTypeRE.FindStringSubmatch(typ)
		if !ok1 || i <= 0 || m == nil {
			continue
		}
		a := registryAccess{Type: m[1], Class: m[2], Name: rest[:i]}
		allowed := mayHave(account, a.Type, a.Name)
		j := slices.IndexFunc(out, func(o registryAccess) bool {
			return o.Type == a.Type && o.Class == a.Class && o.Name == a.Name
		})
		for _, action := range strings.Split(rest[i+1:], ",") {
			if !slices.Contains(allowed, action) {
				continue
			}
			if j < 0 {
				out, j = append(out, a), len(out)
			}
			if !slices.Contains(out[j].Actions, action) {
				out[j].Actions = append(out[j].Actions, action)
			}
		}
	}
	return out
}

// mayHave is the token server's access control list.
func mayHave(account, typ, name string) []string {
	switch {
	case typ == "repository" && account == User:
		return []string{"pull", "push"}
	case typ == "repository" && strings.HasPrefix(name, RegistryPublicPrefix):
		return []string{"pull"}
	case typ == "registry" && name == "catalog" && account == User:
		return []string{"*"}
	}
	return nil
}

// issue signs a token for account and service with what account gets of
// scopes, and returns it with the granted access as scopes and the issue
// time.
func (ts *registryTokenServer) issue(account, service string, scopes []string) (string, []string, time.Time, error) {
	access := grantAccess(account, scopes)
	granted := make([]string, 0, len(access))
	for _, a := range access {
		granted = append(granted, a.String())
	}
	if access == nil {
		access = []registryAccess{} // "access":[] as distribution's token server sends
	}
	jti := make([]byte, 15)
	if _, err := rand.Read(jti); err != nil {
		return "", nil, time.Time{}, err
	}
	now := time.Now()
	token, err := signES256(ts.key, map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)},
	}, registryClaims{
		Issuer:     RegistryIssuer,
		Subject:    account,
		Audience:   service,
		Expiration: now.Add(ts.ttl).Unix(),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      base64.RawURLEncoding.EncodeToString(jti),
		Access:     access,
	})
	return token, granted, now, err
}

// signES256 returns the compact JWS of claims under header, signed with
// key (P-256): the signature is r||s, 32 bytes each (RFC 7518 §3.4).
func signES256(key *ecdsa.PrivateKey, header, claims any) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
