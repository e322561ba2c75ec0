package testserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// lighttpd's Digest nonce timing, fixed in its mod_auth.
const (
	// LighttpdNonceLifetime is how long lighttpd accepts a nonce; an older
	// one is answered 401 with stale=true (offering only the algorithm the
	// client used).
	LighttpdNonceLifetime = 600 * time.Second
	// LighttpdNextnonceAge is the nonce age after which lighttpd adds
	// Authentication-Info: nextnonce="..." to an authorized response.
	LighttpdNextnonceAge = 540 * time.Second
)

// LighttpdNonce returns a nonce that this lighttpd (configured without a
// nonce secret, so it checks only the timestamp a nonce carries) accepts as
// if it had issued it at the given time. A test can swap it into a 401
// challenge on its way to the client to see lighttpd's stale=true (issued
// more than LighttpdNonceLifetime ago) or nextnonce (more than
// LighttpdNextnonceAge ago) without waiting ten minutes.
func LighttpdNonce(issued time.Time) string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%x:%s", issued.Unix(), hex.EncodeToString(b[:]))
}

// LighttpdLocations are the protected locations of the lighttpd server.
var LighttpdLocations = []Location{
	{PathBasic, RealmBasic, "Basic (plain backend)"},
	{PathMD5, RealmMD5, "Digest MD5 qop=auth charset=UTF-8"},
	{PathSHA256, RealmSHA256, "Digest SHA-256 qop=auth charset=UTF-8"},
	{PathSHA512_256, RealmSHA512_256, "Digest SHA-512-256 qop=auth charset=UTF-8"},
	{PathMulti, RealmMulti, "two Digest lines: SHA-256 then MD5, each with its own nonce"},
	{PathUserhash, RealmUserhash, "Digest SHA-256 userhash=true (htdigest backend with userhash column)"},
	{PathSharedMD5, RealmShared, "Digest MD5, the realm shared with the next two"},
	{PathSharedSHA256, RealmShared, "Digest SHA-256, the realm shared with /shared-md5/"},
	{PathSharedSHA512_256, RealmShared, "Digest SHA-512-256, the realm shared with /shared-md5/"},
}

// StartLighttpd starts Debian's lighttpd (lighttpd -D; from PATH or
// /usr/sbin/lighttpd, or $TESTSERVER_LIGHTTPD; modules from
// /usr/lib/lighttpd) on a free 127.0.0.1 port with the locations in
// LighttpdLocations and waits until it answers. The error wraps
// ErrNotInstalled when lighttpd or its modules are missing.
//
// What lighttpd 1.4.69's mod_auth does (verified against this build):
//   - Challenges are `Digest realm="…", charset="UTF-8", algorithm=A,
//     nonce="…", qop="auth"` plus `, userhash=true` where configured; never
//     opaque or domain. Several algorithms give one header line each, always
//     ordered SHA-512-256, SHA-256, MD5 whatever the configured order.
//   - A client may answer any offered algorithm with its "-sess" variant
//     (MD5-sess, SHA-256-sess, ...); the server never advertises -sess.
//   - qop=auth-int is refused with 400 Bad Request; so are a uri that does
//     not match the request target and a malformed response.
//   - Nonces are "hex-unix-time:hash", valid for 600 s (not configurable);
//     an older one gets 401 with stale=true. Without a nonce secret only the
//     timestamp is checked (see LighttpdNonce). nc is not checked for
//     replay: the same nc twice is accepted.
//   - A 200 carries Authentication-Info only when the nonce is older than
//     540 s, and then only nextnonce="…" (never rspauth).
//   - Basic challenges carry charset="UTF-8" too.
//   - A 401 to a request with a body (POST/PUT) closes the connection
//     ("Connection: close"); Apache keeps it open.
//   - userhash=true needs a backend that can look users up by hash: the
//     htdigest backend with a fourth column H(user:realm); the plain backend
//     rejects hashed user names. A plain username is still accepted there.
//   - The access log is buffered (flushed about once a second) unless it is
//     a pipe, so it is written through "|cat".
func StartLighttpd() (*Server, error) {
	bin, err := findBinary("TESTSERVER_LIGHTTPD", []string{"lighttpd"}, "/usr/sbin/lighttpd")
	if err != nil {
		return nil, err
	}
	modDir := "/usr/lib/lighttpd"
	for _, m := range []string{"mod_auth.so", "mod_authn_file.so", "mod_accesslog.so", "mod_cgi.so"} {
		if _, err := os.Stat(filepath.Join(modDir, m)); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	cat, err := findBinary("TESTSERVER_CAT", []string{"cat"}, "/bin/cat", "/usr/bin/cat")
	if err != nil {
		return nil, err
	}
	dir, as, err := serverDir("lighttpd", dropPrivileges)
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
	for _, l := range LighttpdLocations {
		paths = append(paths, l.Path)
	}
	files := documents(dir, paths)
	// The plain backend stores the password itself and so can answer every
	// algorithm; /userhash/ needs the htdigest backend's userhash column.
	files["users.plain"] = User + ":" + Password + "\n"
	files["users.htdigest"] = HtdigestLine(User, RealmUserhash, Password, "SHA-256", true)
	if err := writeTree(dir, files); err != nil {
		return nil, err
	}
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return nil, err
	}
	if as != nil {
		// lighttpd opens its logs after dropping privileges.
		if err := os.Chown(logs, as.UID, as.GID); err != nil {
			return nil, err
		}
	}
	conf := filepath.Join(dir, "lighttpd.conf")
	accessLog := filepath.Join(logs, "access.log")
	s, err := start(launch{
		name:      "lighttpd",
		dir:       dir,
		argv:      []string{bin, "-D", "-f", conf},
		errorLog:  filepath.Join(logs, "error.log"),
		accessLog: accessLog,
		locations: LighttpdLocations,
		config: func(port int) error {
			var b strings.Builder
			err := lighttpdConf.Execute(&b, map[string]any{
				"Dir":                  dir,
				"ModDir":               modDir,
				"Port":                 port,
				"RunAs":                as,
				"AccessLogger":         "exec " + cat + " >>" + accessLog,
				"RealmBasic":           RealmBasic,
				"RealmMD5":             RealmMD5,
				"RealmSHA256":          RealmSHA256,
				"RealmSHA512_256":      RealmSHA512_256,
				"RealmMulti":           RealmMulti,
				"RealmUserhash":        RealmUserhash,
				"PathBasic":            PathBasic,
				"PathMD5":              PathMD5,
				"PathSHA256":           PathSHA256,
				"PathSHA512_256":       PathSHA512_256,
				"PathMulti":            PathMulti,
				"PathUserhash":         PathUserhash,
				"RealmShared":          RealmShared,
				"PathSharedMD5":        PathSharedMD5,
				"PathSharedSHA256":     PathSharedSHA256,
				"PathSharedSHA512_256": PathSharedSHA512_256,
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

var lighttpdConf = template.Must(template.New("lighttpd.conf").Parse(`# Generated by github.com/anyauth/anyauth/internal/testserver.
server.modules-path = "{{.ModDir}}"
server.modules = ( "mod_auth", "mod_authn_file", "mod_accesslog", "mod_cgi" )
server.bind = "127.0.0.1"
server.port = {{.Port}}
server.document-root = "{{.Dir}}/htdocs"
server.errorlog = "{{.Dir}}/logs/error.log"
{{with .RunAs}}server.username = "{{.User}}"
server.groupname = "{{.Group}}"
{{end}}server.max-keep-alive-requests = 10000
server.max-keep-alive-idle = 15
index-file.names = ( "index.txt" )
mimetype.assign = ( ".txt" => "text/plain" )

# Never log credentials: status, request line, bytes, authenticated user.
# A file access log is buffered by lighttpd; a piped one is written per request.
accesslog.filename = "|{{.AccessLogger}}"
accesslog.format = "%>s \"%r\" %b \"%u\""

cgi.assign = ( "/echo" => "" )

auth.backend = "plain"
auth.backend.plain.userfile = "{{.Dir}}/users.plain"
$HTTP["url"] =~ "^{{.PathUserhash}}" {
  auth.backend = "htdigest"
  auth.backend.htdigest.userfile = "{{.Dir}}/users.htdigest"
}

auth.require = (
  "{{.PathBasic}}" => ( "method" => "basic", "realm" => "{{.RealmBasic}}", "require" => "valid-user" ),
  "{{.PathMD5}}" => ( "method" => "digest", "realm" => "{{.RealmMD5}}", "require" => "valid-user", "algorithm" => "MD5" ),
  "{{.PathSHA256}}" => ( "method" => "digest", "realm" => "{{.RealmSHA256}}", "require" => "valid-user", "algorithm" => "SHA-256" ),
  "{{.PathSHA512_256}}" => ( "method" => "digest", "realm" => "{{.RealmSHA512_256}}", "require" => "valid-user", "algorithm" => "SHA-512-256" ),
  "{{.PathMulti}}" => ( "method" => "digest", "realm" => "{{.RealmMulti}}", "require" => "valid-user", "algorithm" => "SHA-256|MD5" ),
  "{{.PathUserhash}}" => ( "method" => "digest", "realm" => "{{.RealmUserhash}}", "require" => "valid-user", "algorithm" => "SHA-256", "userhash" => "enable" ),
  "{{.PathSharedMD5}}" => ( "method" => "digest", "realm" => "{{.RealmShared}}", "require" => "valid-user", "algorithm" => "MD5" ),
  "{{.PathSharedSHA256}}" => ( "method" => "digest", "realm" => "{{.RealmShared}}", "require" => "valid-user", "algorithm" => "SHA-256" ),
  "{{.PathSharedSHA512_256}}" => ( "method" => "digest", "realm" => "{{.RealmShared}}", "require" => "valid-user", "algorithm" => "SHA-512-256" ),
)
`))
