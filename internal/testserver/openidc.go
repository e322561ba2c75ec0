package testserver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// OpenIDCSecret is the HS256 key shared between the tests and the
// mod_auth_openidc server: MintHS256 signs with it and the server accepts
// JWT access tokens signed with it (OIDCOAuthVerifySharedKeys plain##…).
// It is 40 bytes of plain ASCII with neither '#' nor spaces, which the
// directive's syntax would misread.
const OpenIDCSecret = "anyauth-openidc-hs256-shared-secret-0123"

// RealmBearer is the AuthName of the mod_auth_openidc server's PathBearer;
// the module copies it into its challenges as realm="…".
const RealmBearer = "anyauth bearer"

// PathBearer is the mod_auth_openidc server's protected location (realm
// RealmBearer): AuthType oauth20, Require valid-user. Besides index.txt and
// echo it serves the CGI "whoami", whose body is the authenticated user
// (REMOTE_USER, taken from the token's "sub" claim) and a newline, and
// whose X-Auth-Type response header is AUTH_TYPE ("oauth20").
const PathBearer = "/bearer/"

// OpenIDCLocations are the protected locations of the mod_auth_openidc
// server.
var OpenIDCLocations = []Location{
	{PathBearer, RealmBearer, "Bearer: mod_auth_openidc OAuth 2.0 resource server, JWT access token verified with HS256 and OpenIDCSecret, REMOTE_USER from sub"},
}

// bearerWhoamiScript is the CGI program installed as "whoami" under
// PathBearer.
const bearerWhoamiScript = `#!/bin/sh
# anyauth test endpoint: answers with the authenticated user.
printf 'Content-Type: text/plain\r\nX-Auth-Type: %s\r\n\r\n%s\n' "$AUTH_TYPE" "$REMOTE_USER"
`

// openidcModule is the mod_auth_openidc shared object Debian's
// libapache2-mod-auth-openidc installs.
const openidcModule = "mod_auth_openidc.so"

// StartOpenIDC starts Debian's Apache httpd (found like StartApache does)
// with mod_auth_openidc (libapache2-mod-auth-openidc) configured as an
// OAuth 2.0 resource server, on a free 127.0.0.1 port with the locations in
// OpenIDCLocations, and waits until it answers. The server validates JWT
// access tokens locally (no network access): signature HS256 with
// OpenIDCSecret, and "exp" when present; it checks neither "iss" nor "aud"
// nor "iat". The error wraps ErrNotInstalled when apache2, its modules or
// mod_auth_openidc are missing.
//
// What mod_auth_openidc 2.4.12.3 answers on PathBearer (verified against
// this build; one WWW-Authenticate line each time, status 401):
//   - no Authorization header, or one whose scheme is not Bearer:
//     Bearer realm="anyauth bearer", error="invalid_request",
//     error_description="No bearer token found in the request"
//     (RFC 6750 section 3.1 would have no error code here).
//   - a token that is expired, malformed, not a JWS, signed with another
//     key or with alg "none": Bearer realm="anyauth bearer",
//     error="invalid_token", error_description="JWT token could not be
//     validated". Only the error log tells the cases apart: "JWT expired N
//     seconds ago", "cjose_jws_import failed" (malformed), "could not
//     verify signature against any of the (1) provided keys" (wrong key,
//     tampered, alg none).
//
// A valid token gets 200; the access log's user field is its "sub". The
// scheme name is matched case-insensitively; no clock skew is allowed on
// "exp". An OPTIONS request without any token is answered 200 (the module
// lets it through with an empty user, logged as "").
func StartOpenIDC() (*Server, error) {
	return startOpenIDC("apache-openidc", "", nil, OpenIDCLocations)
}

// OpenIDCJWKSLocations are the protected locations of the server
// StartOpenIDCJWKS starts.
var OpenIDCJWKSLocations = []Location{
	{PathBearer, RealmBearer, "Bearer: mod_auth_openidc OAuth 2.0 resource server, JWT access token verified with the keys of a JWKS URI, REMOTE_USER from sub"},
}

// StartOpenIDCJWKS starts the server StartOpenIDC starts, with the
// locations in OpenIDCJWKSLocations, except that it verifies the JWT
// access tokens' signatures with the keys published at jwksURL
// (OIDCOAuthVerifyJwksUri) instead of OpenIDCSecret. The module insists
// on an https URL, e.g. OIDCProvider.JWKSURLTLS; its certificate is
// verified with the CA certificates caCertPEM (OIDCCABundlePath; nil: the
// system's). The server checks "exp" when present, but neither "iss" nor
// "aud". mod_auth_openidc fetches the key set when a token first needs it
// and caches it.
//
// Its answers are those of StartOpenIDC: 200 for a valid token, 401 with
// Bearer realm="anyauth bearer", error="invalid_token",
// error_description="JWT token could not be validated" for an expired,
// malformed or wrongly signed one.
func StartOpenIDCJWKS(jwksURL string, caCertPEM []byte) (*Server, error) {
	if u, err := url.Parse(jwksURL); err != nil || u.Scheme != "https" || u.Host == "" ||
		strings.ContainsAny(jwksURL, " \t\n\"'\\$`#") {
		return nil, fmt.Errorf("testserver: JWKS URL %q: mod_auth_openidc wants an https URL without quotes, spaces or '#'", jwksURL)
	}
	return startOpenIDC("apache-openidc-jwks", jwksURL, caCertPEM, OpenIDCJWKSLocations)
}

// startOpenIDC starts Apache with mod_auth_openidc, verifying tokens with
// the key set at jwksURL (fetched trusting caCertPEM, if not nil), or with
// OpenIDCSecret when jwksURL is "".
func startOpenIDC(name, jwksURL string, caCertPEM []byte, locations []Location) (*Server, error) {
	bin, err := findBinary("TESTSERVER_APACHE2", []string{"apache2"}, "/usr/sbin/apache2")
	if err != nil {
		return nil, err
	}
	for _, m := range []string{"mod_mpm_event.so", "mod_cgid.so", "mod_authz_user.so", openidcModule} {
		if _, err := os.Stat(filepath.Join(apacheModules, m)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	dir, as, err := serverDir("openidc", dropPrivileges)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()

	var paths []string
	for _, l := range locations {
		paths = append(paths, l.Path)
	}
	files := documents(dir, paths)
	files["mime.types"] = "text/plain txt\n"
	whoami := "htdocs" + PathBearer + "whoami"
	files[whoami] = bearerWhoamiScript
	caBundle := ""
	if len(caCertPEM) > 0 {
		caBundle = filepath.Join(dir, "jwks-ca.pem")
		files["jwks-ca.pem"] = string(caCertPEM)
	}
	if err := writeTree(dir, files); err != nil {
		return nil, err
	}
	// writeTree makes only "echo" executable.
	if err := os.Chmod(filepath.Join(dir, filepath.FromSlash(whoami)), 0o755); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "run"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "httpd.conf")
	s, err := start(launch{
		name:      name,
		dir:       dir,
		argv:      []string{bin, "-f", conf, "-DFOREGROUND"},
		errorLog:  filepath.Join(dir, "logs", "error.log"),
		accessLog: filepath.Join(dir, "logs", "access.log"),
		locations: locations,
		config: func(port int) error {
			var b strings.Builder
			err := openidcConf.Execute(&b, map[string]any{
				"Dir":             dir,
				"Modules":         apacheModules,
				"Module":          openidcModule,
				"Port":            port,
				"RunAs":           as,
				"Secret":          OpenIDCSecret,
				"JWKSURL":         jwksURL,
				"CABundle":        caBundle,
				"RealmBearer":     RealmBearer,
				"PathBearer":      PathBearer,
				"ServerName":      "127.0.0.1",
				"ExtraModules":    []string{"auth_openidc_module " + apacheModules + "/" + openidcModule},
				"StartServers":    1,
				"MaxSpareThreads": 50,
				"LogLevel":        "warn",
			})
			if err != nil {
				return err
			}
			return os.WriteFile(conf, []byte(b.String()), 0o644)
		},
		addrInUse: bindFailed,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return s, nil
}

var openidcConf = httpdConf("httpd.conf", `
# mod_auth_openidc as an OAuth 2.0 resource server only: JWT access tokens
# are verified locally, with the shared HS256 key (no kid) or with the
# keys of a JWKS URI; no introspection. The passphrase is fixed since
# nothing it protects outlives the server.
OIDCCryptoPassphrase "anyauth-openidc-crypto-passphrase"
OIDCCacheType shm
{{- if .JWKSURL}}
OIDCOAuthVerifyJwksUri "{{.JWKSURL}}"
{{- with .CABundle}}
OIDCCABundlePath "{{.}}"
{{- end}}
{{- else}}
OIDCOAuthVerifySharedKeys "plain##{{.Secret}}"
{{- end}}
OIDCOAuthRemoteUserClaim sub
OIDCOAuthAcceptTokenAs header

<Directory />
    AllowOverride None
    Options None
    Require all denied
</Directory>
<Directory "{{.Dir}}/htdocs">
    Require all granted
</Directory>

<Location "{{.PathBearer}}">
    AuthType oauth20
    AuthName "{{.RealmBearer}}"
    Require valid-user
</Location>
`)

// MintHS256 returns a compact JWS (a JWT) with the header
// {"alg":"HS256","typ":"JWT"} and the given claims as payload, signed with
// OpenIDCSecret, e.g.
//
//	MintHS256(map[string]any{"sub": User, "exp": time.Now().Add(time.Hour).Unix()})
//
// It panics if claims cannot be encoded as JSON.
func MintHS256(claims map[string]any) string {
	return signHS256([]byte(OpenIDCSecret), claims)
}

// signHS256 is MintHS256 with any key.
func signHS256(key []byte, claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		panic(fmt.Sprintf("testserver: MintHS256: %v", err))
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(payload)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(signingInput))
	return signingInput + "." + enc.EncodeToString(mac.Sum(nil))
}
