package testserver

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The registry tests talk plain net/http to the real docker-registry and
// do the token dance by hand: they prove the test world works, not the
// anyauth Transport.

// Media types of a Docker schema2 image.
const (
	schema2Manifest = "application/vnd.docker.distribution.manifest.v2+json"
	schema2Config   = "application/vnd.docker.container.image.v1+json"
	schema2Layer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// registryToken is the token server's answer to a GET.
type registryToken struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	RefreshToken string `json:"refresh_token"`
}

// getRegistryToken asks the token server for scopes, with Basic
// credentials unless user is nil, and returns the answer's status and
// body; on 200 the decoded token too.
func getRegistryToken(t *testing.T, r *Registry, user *url.Userinfo, extra url.Values, scopes ...string) (int, []byte, registryToken) {
	t.Helper()
	q := url.Values{"service": {RegistryService}}
	for k, v := range extra {
		q[k] = v
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	req, err := http.NewRequest(http.MethodGet, r.TokenURL+"?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != nil {
		p, _ := user.Password()
		req.SetBasicAuth(user.Username(), p)
	}
	resp, err := noProxyClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var tok registryToken
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &tok); err != nil {
			t.Fatalf("token answer %s: %v", body, err)
		}
		if tok.Token == "" || tok.Token != tok.AccessToken {
			t.Fatalf("token answer %s: token and access_token differ or are empty", body)
		}
	}
	return resp.StatusCode, body, tok
}

// registryMustToken is getRegistryToken that wants a 200 and returns the token.
func registryMustToken(t *testing.T, r *Registry, user *url.Userinfo, scopes ...string) string {
	t.Helper()
	status, body, tok := getRegistryToken(t, r, user, nil, scopes...)
	if status != http.StatusOK {
		t.Fatalf("token for %v: %d %s", scopes, status, body)
	}
	return tok.Token
}

// registryDo sends a request to the registry with the Bearer token (none
// if ""), and returns the response with its body read.
func registryDo(t *testing.T, r *Registry, token, method, path string, header http.Header, body []byte) (*http.Response, []byte) {
	t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = r.URL + path
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := noProxyClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// registryChallenge returns the one WWW-Authenticate of a response.
func registryChallenge(t *testing.T, resp *http.Response) string {
	t.Helper()
	v := resp.Header.Values("Www-Authenticate")
	if len(v) != 1 {
		t.Fatalf("%s: WWW-Authenticate %q, want one", resp.Status, v)
	}
	return v[0]
}

func registryDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// registryPushBlob uploads data to repo in two requests (POST, then a monolithic
// PUT with the digest) and returns its digest.
func registryPushBlob(t *testing.T, r *Registry, token, repo string, data []byte) string {
	t.Helper()
	resp, body := registryDo(t, r, token, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, nil)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload: %s %s", resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("POST upload: Location: %v", err)
	}
	d := registryDigest(data)
	q := loc.Query()
	q.Set("digest", d)
	loc.RawQuery = q.Encode()
	resp, body = registryDo(t, r, token, http.MethodPut, loc.String(),
		http.Header{"Content-Type": {"application/octet-stream"}}, data)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != d {
		t.Fatalf("PUT blob: %s, Docker-Content-Digest %q, want 201 and %s: %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), d, body)
	}
	return d
}

// registryImage is a small Docker schema2 image: a config, one gzipped tar
// layer and the manifest referencing both.
type registryImage struct {
	config, layer, manifest []byte
}

func newRegistryImage(t *testing.T, name string) registryImage {
	t.Helper()
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	content := []byte("hello from " + name + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	layer := tgz.Bytes()
	tarSum := sha256.Sum256(gunzipBytes(t, layer))
	config, _ := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/bin/true"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + hex.EncodeToString(tarSum[:])}},
	})
	manifest, _ := json.MarshalIndent(map[string]any{
		"schemaVersion": 2,
		"mediaType":     schema2Manifest,
		"config":        map[string]any{"mediaType": schema2Config, "size": len(config), "digest": registryDigest(config)},
		"layers":        []any{map[string]any{"mediaType": schema2Layer, "size": len(layer), "digest": registryDigest(layer)}},
	}, "", "   ")
	return registryImage{config: config, layer: layer, manifest: manifest}
}

func gunzipBytes(t *testing.T, tgz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// push uploads img's blobs and its manifest as repo:tag with token.
func (img registryImage) push(t *testing.T, r *Registry, token, repo, tag string) {
	t.Helper()
	registryPushBlob(t, r, token, repo, img.config)
	registryPushBlob(t, r, token, repo, img.layer)
	resp, body := registryDo(t, r, token, http.MethodPut, "/v2/"+repo+"/manifests/"+tag,
		http.Header{"Content-Type": {schema2Manifest}}, img.manifest)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Docker-Content-Digest") != registryDigest(img.manifest) {
		t.Fatalf("PUT manifest %s:%s: %s, Docker-Content-Digest %q, want 201 and %s: %s",
			repo, tag, resp.Status, resp.Header.Get("Docker-Content-Digest"), registryDigest(img.manifest), body)
	}
}

// pull fetches repo:tag's manifest and every blob with token and checks
// them against img.
func (img registryImage) pull(t *testing.T, r *Registry, token, repo, tag string) {
	t.Helper()
	resp, body := registryDo(t, r, token, http.MethodGet, "/v2/"+repo+"/manifests/"+tag,
		http.Header{"Accept": {schema2Manifest}}, nil)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.manifest) ||
		resp.Header.Get("Content-Type") != schema2Manifest || resp.Header.Get("Docker-Content-Digest") != registryDigest(img.manifest) {
		t.Fatalf("GET manifest %s:%s: %s %s, Docker-Content-Digest %q\n%s", repo, tag, resp.Status,
			resp.Header.Get("Content-Type"), resp.Header.Get("Docker-Content-Digest"), body)
	}
	for _, blob := range [][]byte{img.config, img.layer} {
		path := "/v2/" + repo + "/blobs/" + registryDigest(blob)
		resp, body := registryDo(t, r, token, http.MethodHead, path, nil, nil)
		if resp.StatusCode != http.StatusOK || resp.ContentLength != int64(len(blob)) || len(body) != 0 {
			t.Fatalf("HEAD %s: %s, Content-Length %d, want 200 and %d", path, resp.Status, resp.ContentLength, len(blob))
		}
		resp, body = registryDo(t, r, token, http.MethodGet, path, nil, nil)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, blob) {
			t.Fatalf("GET %s: %s, %d bytes, want 200 and the %d pushed", path, resp.Status, len(body), len(blob))
		}
	}
}

// pemDER returns the DER of the first PEM block.
func pemDER(t *testing.T, data []byte) []byte {
	t.Helper()
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("no PEM block")
	}
	return b.Bytes
}

// jwtMaps decodes a token's header and claims as maps.
func jwtMaps(t *testing.T, token string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(token, ".")
	for i, v := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		if err := d.Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return header, claims
}

// libtrustKeyID is the key ID github.com/docker/libtrust gives a public
// key, which distribution matches a JWT's kid against: the SHA-256 of its
// DER SubjectPublicKeyInfo, cut to 240 bits, base32 without padding, in
// groups of four joined by colons.
func libtrustKeyID(t *testing.T, pub *ecdsa.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	s := strings.TrimRight(base32.StdEncoding.EncodeToString(sum[:30]), "=")
	var groups []string
	for ; len(s) > 4; s = s[4:] {
		groups = append(groups, s[:4])
	}
	return strings.Join(append(groups, s), ":")
}

// registryLogReasons picks from docker-registry's log what it said about
// the tokens it refused.
func registryLogReasons(log string) string {
	var reasons []string
	for _, m := range registryLogMsg.FindAllStringSubmatch(log, -1) {
		if msg, err := strconv.Unquote(`"` + m[1] + `"`); err == nil &&
			!strings.HasPrefix(msg, "authorized request") && !strings.HasPrefix(msg, "response completed") {
			reasons = append(reasons, msg)
		}
	}
	return strings.Join(reasons, "; ")
}

// registryLogMsg finds the msg field of logrus's text lines.
var registryLogMsg = regexp.MustCompile(` msg="((?:[^"\\]|\\.)*)"`)

// registryJWT decodes a token's header and claims.
func registryJWT(t *testing.T, token string) (header map[string]any, claims registryClaims) {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q is not a compact JWS", token)
	}
	for i, v := range []any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return header, claims
}

// TestRegistry runs one docker-registry and walks through the token
// dance against it, logging the registry's challenges verbatim.
func TestRegistry(t *testing.T) {
	t.Parallel()
	r := StartRegistryForTest(t, RegistryOptions{})
	t.Logf("%s at %s, token server %s, up in %v", r.Binary, r.URL, r.TokenURL, r.Startup)
	alice := url.UserPassword(User, Password)
	realm := fmt.Sprintf("Bearer realm=%q,service=%q", r.TokenURL, RegistryService)
	img := newRegistryImage(t, "foo/bar")

	t.Run("challenge", func(t *testing.T) {
		resp, body := registryDo(t, r, "", http.MethodGet, "/v2/", nil, nil)
		got := registryChallenge(t, resp)
		t.Logf("GET /v2/ without token: %s\n\tWWW-Authenticate: %s\n\t%s", resp.Status, got, bytes.TrimSpace(body))
		if resp.StatusCode != http.StatusUnauthorized || got != realm || got != r.Challenge() {
			t.Fatalf("got %s %q, want 401 %q", resp.Status, got, realm)
		}
		if v := resp.Header.Get("Docker-Distribution-Api-Version"); v != "registry/2.0" {
			t.Errorf("Docker-Distribution-Api-Version %q", v)
		}

		resp, body = registryDo(t, r, "", http.MethodGet, "/v2/foo/bar/manifests/latest", nil, nil)
		got = registryChallenge(t, resp)
		t.Logf("GET /v2/foo/bar/manifests/latest without token: %s\n\tWWW-Authenticate: %s\n\t%s", resp.Status, got, bytes.TrimSpace(body))
		if want := realm + `,scope="repository:foo/bar:pull"`; resp.StatusCode != http.StatusUnauthorized || got != want {
			t.Fatalf("got %s %q, want 401 %q", resp.Status, got, want)
		}

		resp, _ = registryDo(t, r, "", http.MethodPost, "/v2/foo/bar/blobs/uploads/", nil, nil)
		got = registryChallenge(t, resp)
		t.Logf("POST /v2/foo/bar/blobs/uploads/ without token: %s\n\tWWW-Authenticate: %s", resp.Status, got)
		// distribution lists the actions from a map: either order.
		if resp.StatusCode != http.StatusUnauthorized ||
			(got != realm+`,scope="repository:foo/bar:pull,push"` && got != realm+`,scope="repository:foo/bar:push,pull"`) {
			t.Fatalf("got %s %q", resp.Status, got)
		}

		resp, _ = registryDo(t, r, "", http.MethodGet, "/v2/_catalog", nil, nil)
		got = registryChallenge(t, resp)
		t.Logf("GET /v2/_catalog without token: %s\n\tWWW-Authenticate: %s", resp.Status, got)
		if want := realm + `,scope="registry:catalog:*"`; resp.StatusCode != http.StatusUnauthorized || got != want {
			t.Fatalf("got %s %q, want 401 %q", resp.Status, got, want)
		}
	})

	t.Run("push and pull", func(t *testing.T) {
		before := len(r.TokenRequests())
		status, body, tok := getRegistryToken(t, r, alice, url.Values{"account": {User}}, "repository:foo/bar:pull,push")
		if status != http.StatusOK {
			t.Fatalf("token: %d %s", status, body)
		}
		t.Logf("token answer: %s…", body[:min(len(body), 120)])
		issued, err := time.Parse(time.RFC3339, tok.IssuedAt)
		if err != nil || time.Since(issued) > time.Minute || tok.ExpiresIn != int(DefaultRegistryTokenTTL/time.Second) {
			t.Errorf("issued_at %q (%v), expires_in %d", tok.IssuedAt, err, tok.ExpiresIn)
		}
		header, claims := registryJWT(t, tok.Token)
		t.Logf("JWT header alg=%v typ=%v, %d x5c; claims %+v", header["alg"], header["typ"], len(fmt.Sprint(header["x5c"])), claims)
		if header["alg"] != "ES256" || header["typ"] != "JWT" {
			t.Errorf("header %v", header)
		}
		if x5c, _ := header["x5c"].([]any); len(x5c) != 1 {
			t.Errorf("x5c %v", header["x5c"])
		} else if der, _ := base64.StdEncoding.DecodeString(fmt.Sprint(x5c[0])); !bytes.Equal(der, pemDER(t, r.CertPEM)) {
			t.Errorf("x5c %v is not CertPEM", x5c)
		}
		wantAccess := []registryAccess{{Type: "repository", Name: "foo/bar", Actions: []string{"pull", "push"}}}
		if claims.Issuer != RegistryIssuer || claims.Subject != User || claims.Audience != RegistryService ||
			claims.JWTID == "" || claims.IssuedAt != claims.NotBefore ||
			claims.Expiration-claims.IssuedAt != int64(DefaultRegistryTokenTTL/time.Second) ||
			fmt.Sprint(claims.Access) != fmt.Sprint(wantAccess) {
			t.Errorf("claims %+v, access want %v", claims, wantAccess)
		}

		resp, body := registryDo(t, r, tok.Token, http.MethodGet, "/v2/", nil, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /v2/ with token: %s %s", resp.Status, body)
		}
		img.push(t, r, tok.Token, "foo/bar", "latest")

		pull := registryMustToken(t, r, alice, "repository:foo/bar:pull")
		if _, c := registryJWT(t, pull); fmt.Sprint(c.Access) != fmt.Sprint([]registryAccess{{Type: "repository", Name: "foo/bar", Actions: []string{"pull"}}}) {
			t.Errorf("pull token access %v", c.Access)
		}
		img.pull(t, r, pull, "foo/bar", "latest")
		// A pull token does not push.
		resp, _ = registryDo(t, r, pull, http.MethodPost, "/v2/foo/bar/blobs/uploads/", nil, nil)
		t.Logf("POST upload with a pull token: %s\n\tWWW-Authenticate: %s", resp.Status, registryChallenge(t, resp))
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasSuffix(registryChallenge(t, resp), `,error="insufficient_scope"`) {
			t.Errorf("POST upload with a pull token: %s %q", resp.Status, registryChallenge(t, resp))
		}

		recs := r.TokenRequests()[before:]
		want := []RegistryTokenRequest{
			{Method: "GET", Account: User, AccountParam: User, Service: RegistryService, Scopes: []string{"repository:foo/bar:pull,push"}, Granted: []string{"repository:foo/bar:pull,push"}, Status: 200},
			{Method: "GET", Account: User, Service: RegistryService, Scopes: []string{"repository:foo/bar:pull"}, Granted: []string{"repository:foo/bar:pull"}, Status: 200},
		}
		if fmt.Sprintf("%+v", recs) != fmt.Sprintf("%+v", want) {
			t.Errorf("TokenRequests:\n got %+v\nwant %+v", recs, want)
		}

		cat := registryMustToken(t, r, alice, "registry:catalog:*")
		resp, body = registryDo(t, r, cat, http.MethodGet, "/v2/_catalog", nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"foo/bar"`) {
			t.Errorf("GET /v2/_catalog: %s %s", resp.Status, body)
		}
	})

	t.Run("anonymous", func(t *testing.T) {
		before := len(r.TokenRequests())
		status, body, tok := getRegistryToken(t, r, nil, nil, "repository:foo/bar:pull")
		if status != http.StatusOK {
			t.Fatalf("anonymous token: %d %s", status, body)
		}
		if _, c := registryJWT(t, tok.Token); c.Subject != "" || c.Access == nil || len(c.Access) != 0 {
			t.Errorf("anonymous token for foo/bar: claims %+v, want sub \"\" and access []", c)
		}
		resp, body := registryDo(t, r, tok.Token, http.MethodGet, "/v2/foo/bar/manifests/latest",
			http.Header{"Accept": {schema2Manifest}}, nil)
		got := registryChallenge(t, resp)
		t.Logf("GET /v2/foo/bar/manifests/latest with an anonymous token: %s\n\tWWW-Authenticate: %s\n\t%s", resp.Status, got, bytes.TrimSpace(body))
		if want := realm + `,scope="repository:foo/bar:pull",error="insufficient_scope"`; resp.StatusCode != http.StatusUnauthorized || got != want {
			t.Fatalf("got %s %q, want 401 %q", resp.Status, got, want)
		}
		// The empty token still opens /v2/ (it needs no access).
		if resp, body := registryDo(t, r, tok.Token, http.MethodGet, "/v2/", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v2/ with an anonymous token: %s %s", resp.Status, body)
		}

		// public/x: alice pushes, anyone pulls, nobody anonymous pushes.
		public := newRegistryImage(t, "public/x")
		anon := registryMustToken(t, r, nil, "repository:public/x:pull,push")
		if _, c := registryJWT(t, anon); fmt.Sprint(c.Access) != fmt.Sprint([]registryAccess{{Type: "repository", Name: "public/x", Actions: []string{"pull"}}}) {
			t.Errorf("anonymous token for public/x:pull,push: access %v", c.Access)
		}
		resp, _ = registryDo(t, r, anon, http.MethodPost, "/v2/public/x/blobs/uploads/", nil, nil)
		t.Logf("anonymous POST /v2/public/x/blobs/uploads/: %s\n\tWWW-Authenticate: %s", resp.Status, registryChallenge(t, resp))
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasSuffix(registryChallenge(t, resp), `,error="insufficient_scope"`) {
			t.Errorf("anonymous push: %s %q", resp.Status, registryChallenge(t, resp))
		}
		public.push(t, r, registryMustToken(t, r, alice, "repository:public/x:pull,push"), "public/x", "v1")
		public.pull(t, r, anon, "public/x", "v1")
		// Several scopes in one request, one of them not allowed.
		both := registryMustToken(t, r, nil, "repository:foo/bar:pull", "repository:public/x:pull")
		if _, c := registryJWT(t, both); fmt.Sprint(c.Access) != fmt.Sprint([]registryAccess{{Type: "repository", Name: "public/x", Actions: []string{"pull"}}}) {
			t.Errorf("anonymous token for foo/bar and public/x: access %v", c.Access)
		}

		recs := r.TokenRequests()[before:]
		if len(recs) != 4 {
			t.Fatalf("%d token requests, want 4: %+v", len(recs), recs)
		}
		for i, wantAccount := range []string{"", "", User, ""} {
			if recs[i].Account != wantAccount || recs[i].Status != http.StatusOK {
				t.Errorf("request %d: %+v, want account %q and 200", i, recs[i], wantAccount)
			}
		}
		if !slices.Equal(recs[3].Scopes, []string{"repository:foo/bar:pull", "repository:public/x:pull"}) ||
			!slices.Equal(recs[3].Granted, []string{"repository:public/x:pull"}) || recs[0].Granted == nil || len(recs[0].Granted) != 0 {
			t.Errorf("records %+v", recs)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		before := len(r.TokenRequests())
		status, body, _ := getRegistryToken(t, r, url.UserPassword(User, "wrong"), nil, "repository:foo/bar:pull")
		t.Logf("token server, wrong password: %d %s", status, bytes.TrimSpace(body))
		if status != http.StatusUnauthorized || !strings.Contains(string(body), `"UNAUTHORIZED"`) {
			t.Fatalf("got %d %s, want 401", status, body)
		}
		recs := r.TokenRequests()[before:]
		if len(recs) != 1 || recs[0].Account != User || recs[0].Status != http.StatusUnauthorized || recs[0].Granted != nil {
			t.Errorf("records %+v", recs)
		}
		req, _ := http.NewRequest(http.MethodGet, r.TokenURL+"?service="+RegistryService, nil)
		req.SetBasicAuth("mallory", Password)
		resp, err := noProxyClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Www-Authenticate"); resp.StatusCode != http.StatusUnauthorized || got != `Basic realm="anyauth registry token"` {
			t.Errorf("unknown user: %s %q", resp.Status, got)
		}
	})

	t.Run("token verification", func(t *testing.T) {
		// What distribution 2.8 accepts: variations of a valid pull token
		// for foo/bar, each re-signed with the token server's key unless
		// said otherwise.
		other, err := newRegistryTokenServer(time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer other.close()
		pub := &r.tokens.key.PublicKey
		point, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		x, y := base64.RawURLEncoding.EncodeToString(point[1:33]), base64.RawURLEncoding.EncodeToString(point[33:])
		now := time.Now().Unix()
		pullScope := "repository:foo/bar:pull"
		cases := []struct {
			name   string
			accept bool
			edit   func(h, c map[string]any)
			token  func() string // instead of edit: the token itself
		}{
			{name: "as issued: x5c, ES256", accept: true},
			{name: "kid: libtrust key ID of the certificate's key, no x5c", accept: true, edit: func(h, c map[string]any) {
				delete(h, "x5c")
				h["kid"] = libtrustKeyID(t, pub)
			}},
			{name: "jwk of the certificate's key, no x5c", accept: true, edit: func(h, c map[string]any) {
				delete(h, "x5c")
				h["jwk"] = map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}
			}},
			{name: "expired 30 s ago, within the 60 s leeway", accept: true, edit: func(h, c map[string]any) {
				c["exp"], c["nbf"], c["iat"] = now-30, now-600, now-600
			}},
			{name: "kid: RFC 7638 thumbprint", edit: func(h, c map[string]any) {
				delete(h, "x5c")
				sum := sha256.Sum256(fmt.Appendf(nil, `{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}`, x, y))
				h["kid"] = base64.RawURLEncoding.EncodeToString(sum[:])
			}},
			{name: "no x5c, kid or jwk", edit: func(h, c map[string]any) { delete(h, "x5c") }},
			{name: "another key with its own self-signed certificate", token: func() string {
				tok, _, _, err := other.issue(User, RegistryService, []string{pullScope})
				if err != nil {
					t.Fatal(err)
				}
				return tok
			}},
			{name: "aud as an array", edit: func(h, c map[string]any) { c["aud"] = []string{RegistryService} }},
			{name: "aud another service (asked for service=other)", token: func() string {
				_, body, tok := getRegistryToken(t, r, alice, url.Values{"service": {"other"}}, pullScope)
				if tok.Token == "" {
					t.Fatalf("token for service other: %s", body)
				}
				return tok.Token
			}},
			{name: "iss another issuer", edit: func(h, c map[string]any) { c["iss"] = "someone-else" }},
			{name: "expired 120 s ago", edit: func(h, c map[string]any) { c["exp"], c["nbf"], c["iat"] = now-120, now-600, now-600 }},
			{name: "nbf 120 s ahead", edit: func(h, c map[string]any) { c["nbf"], c["iat"] = now+120, now+120 }},
			{name: "alg ES384 on an ES256 signature", edit: func(h, c map[string]any) { h["alg"] = "ES384" }},
			{name: "garbage", token: func() string { return "not.a.token" }},
		}
		valid := registryMustToken(t, r, alice, pullScope)
		for _, tc := range cases {
			token := valid
			switch {
			case tc.token != nil:
				token = tc.token()
			case tc.edit != nil:
				h, c := jwtMaps(t, valid)
				tc.edit(h, c)
				if token, err = signES256(r.tokens.key, h, c); err != nil {
					t.Fatal(err)
				}
			}
			logFrom := len(r.Log())
			resp, _ := registryDo(t, r, token, http.MethodGet, "/v2/foo/bar/manifests/latest",
				http.Header{"Accept": {schema2Manifest}}, nil)
			why := registryLogReasons(r.Log()[logFrom:])
			if tc.accept {
				t.Logf("%s: %s", tc.name, resp.Status)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("%s: %s %q, want 200; registry: %s", tc.name, resp.Status, resp.Header.Values("Www-Authenticate"), why)
				}
				continue
			}
			got := registryChallenge(t, resp)
			t.Logf("%s: %s, registry: %s\n\tWWW-Authenticate: %s", tc.name, resp.Status, why, got)
			if want := realm + `,scope="repository:foo/bar:pull",error="invalid_token"`; resp.StatusCode != http.StatusUnauthorized || got != want {
				t.Errorf("%s: got %s %q, want 401 %q", tc.name, resp.Status, got, want)
			}
		}
	})

	t.Run("oauth2 post", func(t *testing.T) {
		post := func(form url.Values) (int, map[string]any) {
			t.Helper()
			resp, err := noProxyClient.PostForm(r.TokenURL, form)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			return resp.StatusCode, m
		}
		status, m := post(url.Values{"grant_type": {"password"}, "username": {User}, "password": {Password},
			"service": {RegistryService}, "client_id": {"anyauth-test"}, "access_type": {"offline"}, "scope": {"repository:foo/bar:pull"}})
		t.Logf("POST password grant: %d, scope %q, expires_in %v, issued_at %v, refresh_token %t", status, m["scope"], m["expires_in"], m["issued_at"], m["refresh_token"] != nil)
		refresh, _ := m["refresh_token"].(string)
		if status != http.StatusOK || refresh == "" || m["scope"] != "repository:foo/bar:pull" {
			t.Fatalf("password grant: %d %v", status, m)
		}
		img.pull(t, r, m["access_token"].(string), "foo/bar", "latest")

		status, m = post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
			"service": {RegistryService}, "client_id": {"anyauth-test"}, "scope": {"repository:foo/bar:pull,push repository:public/x:pull"}})
		if status != http.StatusOK || m["refresh_token"] != refresh || m["scope"] != "repository:foo/bar:pull,push repository:public/x:pull" {
			t.Fatalf("refresh grant: %d %v", status, m)
		}
		img.pull(t, r, m["access_token"].(string), "foo/bar", "latest")

		for name, form := range map[string]url.Values{
			"wrong password":              {"grant_type": {"password"}, "username": {User}, "password": {"wrong"}, "service": {RegistryService}, "client_id": {"x"}},
			"unknown refresh":             {"grant_type": {"refresh_token"}, "refresh_token": {"nope"}, "service": {RegistryService}, "client_id": {"x"}},
			"refresh for another service": {"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "service": {"other"}, "client_id": {"x"}},
		} {
			if status, m := post(form); status != http.StatusUnauthorized {
				t.Errorf("%s: %d %v, want 401", name, status, m)
			}
		}
		if status, m := post(url.Values{"grant_type": {"password"}, "username": {User}, "password": {Password}, "service": {RegistryService}}); status != http.StatusBadRequest {
			t.Errorf("no client_id: %d %v, want 400", status, m)
		}
	})

	t.Run("concurrent", func(t *testing.T) {
		before := len(r.TokenRequests())
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodGet, r.TokenURL+"?service="+RegistryService+"&scope=repository:public/x:pull", nil)
				if i%2 == 0 {
					req.SetBasicAuth(User, Password)
				}
				resp, err := noProxyClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("token %d: %s", i, resp.Status)
				}
				_ = r.TokenRequests()
			})
		}
		wg.Wait()
		if n := len(r.TokenRequests()) - before; n != 8 {
			t.Errorf("%d token requests recorded, want 8", n)
		}
	})

	if t.Failed() {
		return // keep the log for StartRegistryForTest's cleanup
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.Dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after Close: %v", r.Dir, err)
	}
	if resp, err := noProxyClient.Get(r.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Errorf("registry still answers after Close: %s", resp.Status)
	}
}

// TestRegistryOptions: TokenTTL sets the tokens' lifetime, Port the
// registry's port, and a taken fixed port is an error, not a retry.
func TestRegistryOptions(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r := StartRegistryForTest(t, RegistryOptions{TokenTTL: 90 * time.Second, Port: port})
	if want := fmt.Sprintf("http://127.0.0.1:%d", port); r.URL != want || r.TokenTTL != 90*time.Second {
		t.Fatalf("URL %s, TokenTTL %v, want %s and 90s", r.URL, r.TokenTTL, want)
	}
	status, body, tok := getRegistryToken(t, r, url.UserPassword(User, Password), nil, "repository:foo/bar:pull")
	if status != http.StatusOK || tok.ExpiresIn != 90 {
		t.Fatalf("token: %d %s, want expires_in 90", status, body)
	}
	if _, c := registryJWT(t, tok.Token); c.Expiration-c.IssuedAt != 90 {
		t.Errorf("exp - iat = %d, want 90", c.Expiration-c.IssuedAt)
	}
	if resp, body := registryDo(t, r, tok.Token, http.MethodGet, "/v2/", nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v2/: %s %s", resp.Status, body)
	}
	if r2, err := StartRegistry(RegistryOptions{Port: port}); err == nil {
		r2.Close()
		t.Fatal("a second registry started on the same port")
	} else {
		t.Logf("second registry on port %d: %.200s", port, err)
	}
}
