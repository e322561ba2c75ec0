package schemes

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/anyauth/anyauth"
)

// This file is the OAuth 1.0 signer (RFC 5849 §3.4): the signature base
// string and its parameters, the percent-encoding of §3.6, the signature
// methods, the body hash of the OAuth Request Body Hash draft, and the
// Authorization header of §3.5.1.

// oauth1Param is one request parameter, decoded.
type oauth1Param struct{ name, value string }

// maxOAuth1FormBody bounds the form-encoded body read to collect its
// parameters (§3.4.1.3.1): it is read whole, in memory.
const maxOAuth1FormBody = 16 << 20

// oauth1Encode percent-encodes s per RFC 5849 §3.6: every byte of its
// UTF-8 form but the RFC 3986 unreserved characters (ALPHA, DIGIT, "-",
// ".", "_", "~") becomes %XX with upper-case hex digits.
func oauth1Encode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !unreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	return string(appendOAuth1Encoded(make([]byte, 0, len(s)+2*n), s))
}

func appendOAuth1Encoded(b []byte, s string) []byte {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
	}
	return b
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

// oauth1BaseURI returns the base string URI of req (§3.4.1.2): scheme and
// host in lower case, the port only when it is not the scheme's default,
// the path as sent (at least "/"), no query and no fragment. The host is
// the one the Host header carries: req.Host when set, else the URL's.
func oauth1BaseURI(req *http.Request) string {
	scheme := strings.ToLower(req.URL.Scheme)
	authority := req.Host
	if authority == "" {
		authority = req.URL.Host
	}
	authority = strings.ToLower(authority)
	if host, port, err := net.SplitHostPort(authority); err == nil &&
		(port == "" || scheme == "http" && port == "80" || scheme == "https" && port == "443") {
		authority = host
		if strings.Contains(host, ":") {
			authority = "[" + host + "]" // IPv6
		}
	}
	return scheme + "://" + authority + oauth1Path(req.URL)
}

// oauth1Path returns the path of u as net/http sends it in the request
// line, "/" when empty.
func oauth1Path(u *url.URL) string {
	p, _, _ := strings.Cut(u.RequestURI(), "?")
	if u.Opaque != "" && strings.HasPrefix(p, u.Scheme+"://") {
		// An opaque "//host/path" is sent in absolute form.
		p = p[len(u.Scheme)+3:]
		if i := strings.IndexByte(p, '/'); i >= 0 {
			p = p[i:]
		} else {
			p = ""
		}
	}
	if p == "" {
		p = "/"
	}
	return p
}

// appendFormParams appends the parameters of an
// application/x-www-form-urlencoded string (a query, a form body), decoded
// as §3.4.1.3.1 says: "+" is a space, a name without "=" has an empty
// value, empty pairs are skipped, and only "&" separates pairs. A "%"
// that does not start a valid escape is kept as it is, as servers'
// decoders (Python's unquote_plus among them) keep it.
func appendFormParams(params []oauth1Param, s string) []oauth1Param {
	for s != "" {
		var pair string
		pair, s, _ = strings.Cut(s, "&")
		if pair == "" {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		params = append(params, oauth1Param{formUnescape(name), formUnescape(value)})
	}
	return params
}

// formUnescape decodes "+" and valid %XX escapes, keeping anything else.
func formUnescape(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// oauth1NormalizedParams returns the normalized request parameters
// (§3.4.1.3.2): names and values encoded, sorted by name then value
// (byte order), joined as name=value with "&".
func oauth1NormalizedParams(params []oauth1Param) string {
	enc := make([]oauth1Param, len(params))
	for i, p := range params {
		enc[i] = oauth1Param{oauth1Encode(p.name), oauth1Encode(p.value)}
	}
	slices.SortFunc(enc, func(a, b oauth1Param) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return strings.Compare(a.value, b.value)
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.name)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// oauth1BaseString returns the signature base string (§3.4.1.1): the
// upper-case method, the encoded base string URI and the encoded
// normalized parameters, joined with "&".
func oauth1BaseString(method, baseURI string, params []oauth1Param) string {
	return strings.ToUpper(method) + "&" + oauth1Encode(baseURI) + "&" + oauth1Encode(oauth1NormalizedParams(params))
}

// oauth1Key is the HMAC key and the PLAINTEXT signature (§3.4.2, §3.4.4):
// the encoded client secret and token secret joined with "&".
func oauth1Key(consumerSecret, tokenSecret string) string {
	return oauth1Encode(consumerSecret) + "&" + oauth1Encode(tokenSecret)
}

// hash returns the hash function of a signature method, also the one of
// its body hash; 0 for PLAINTEXT and unknown methods.
func (m OAuth1Method) hash() crypto.Hash {
	switch m {
	case OAuth1HMACSHA1, OAuth1RSASHA1:
		return crypto.SHA1
	case OAuth1HMACSHA256, OAuth1RSASHA256:
		return crypto.SHA256
	}
	return 0
}

// rsa reports whether m signs with an RSA key.
func (m OAuth1Method) rsa() bool { return m == OAuth1RSASHA1 || m == OAuth1RSASHA256 }

// newHash returns a new hash.Hash of h (SHA-1 or SHA-256), which are
// linked in.
func newHash(h crypto.Hash) hash.Hash {
	if h == crypto.SHA1 {
		return sha1.New()
	}
	return sha256.New()
}

// oauth1Signature signs base: HMAC-SHA1 and HMAC-SHA256 keyed with both
// secrets (§3.4.2), RSA-SHA1 and RSA-SHA256 with RSASSA-PKCS1-v1_5 by key
// (§3.4.3), both in base64; PLAINTEXT is the key of both secrets itself
// (§3.4.4).
func oauth1Signature(method OAuth1Method, consumerSecret, tokenSecret string, key crypto.Signer, base string) (string, error) {
	switch method {
	case OAuth1HMACSHA1, OAuth1HMACSHA256:
		h := method.hash()
		mac := hmac.New(func() hash.Hash { return newHash(h) }, []byte(oauth1Key(consumerSecret, tokenSecret)))
		io.WriteString(mac, base)
		return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
	case OAuth1RSASHA1, OAuth1RSASHA256:
		h := newHash(method.hash())
		io.WriteString(h, base)
		sig, err := key.Sign(rand.Reader, h.Sum(nil), method.hash())
		if err != nil {
			return "", fmt.Errorf("oauth1: %s: signing: %w", method, err)
		}
		return base64.StdEncoding.EncodeToString(sig), nil
	case OAuth1Plaintext:
		return oauth1Key(consumerSecret, tokenSecret), nil
	}
	return "", fmt.Errorf("oauth1: %w: unknown signature method %q", ErrInvalidCredentials, truncateForError(string(method)))
}

// oauth1Nonce returns 24 random letters and digits (about 143 bits) from
// crypto/rand: within what servers check nonces against (oauthlib wants
// 20 to 30 of them).
func oauth1Nonce() (string, error) {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	const n = 24
	out := make([]byte, 0, n)
	var buf [32]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("oauth1: nonce: %w", err)
		}
		for _, c := range buf {
			// 248 = 4*62: the bytes above are dropped, so that every
			// character is equally likely.
			if c < 248 && len(out) < n {
				out = append(out, alphabet[c%62])
			}
		}
	}
	return string(out), nil
}

// isForm reports whether a Content-Type is application/x-www-form-urlencoded.
func isForm(contentType string) bool {
	if contentType == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt, _, _ = strings.Cut(strings.ToLower(contentType), ";")
		mt = strings.TrimSpace(mt)
	}
	return mt == "application/x-www-form-urlencoded"
}

// hasBody reports whether req carries a body.
func hasBody(req *http.Request) bool {
	return req.Body != nil && req.Body != http.NoBody
}

// readableBody returns a reader of req's body that leaves the body to be
// sent where it is, through GetBody; nil for a request without a body.
func readableBody(req *http.Request, what string) (io.ReadCloser, error) {
	if !hasBody(req) {
		return nil, nil
	}
	if req.GetBody == nil {
		return nil, fmt.Errorf("oauth1: %s of %s %s must be read to be signed, but it cannot be read before it is sent (set Request.GetBody): %w",
			what, req.Method, req.URL.EscapedPath(), anyauth.ErrBodyNotReplayable)
	}
	r, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("oauth1: reading %s of %s %s: %w", what, req.Method, req.URL.EscapedPath(), err)
	}
	return r, nil
}

// formBodyParams appends the parameters of req's form-encoded body.
func formBodyParams(params []oauth1Param, req *http.Request) ([]oauth1Param, error) {
	r, err := readableBody(req, "the form-encoded body")
	if r == nil || err != nil {
		return params, err
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, maxOAuth1FormBody+1))
	if err != nil {
		return nil, fmt.Errorf("oauth1: reading the form-encoded body of %s %s: %w", req.Method, req.URL.EscapedPath(), err)
	}
	if len(data) > maxOAuth1FormBody {
		return nil, fmt.Errorf("oauth1: the form-encoded body of %s %s is over %d bytes, too large to collect its parameters", req.Method, req.URL.EscapedPath(), maxOAuth1FormBody)
	}
	return appendFormParams(params, string(data)), nil
}

// oauth1BodyHash returns the base64 hash of req's body (the empty string
// for none) with h, for oauth_body_hash.
func oauth1BodyHash(req *http.Request, h crypto.Hash) (string, error) {
	hh := newHash(h)
	r, err := readableBody(req, "the body (oauth_body_hash)")
	if err != nil {
		return "", err
	}
	if r != nil {
		_, err = io.Copy(hh, r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("oauth1: hashing the body of %s %s: %w", req.Method, req.URL.EscapedPath(), err)
		}
	}
	return base64.StdEncoding.EncodeToString(hh.Sum(nil)), nil
}

// oauth1RequestParams returns the parameters of req that its signature
// covers besides the protocol parameters (§3.4.1.3.1): its query's, and
// its body's when the body is form-encoded.
func oauth1RequestParams(req *http.Request) ([]oauth1Param, error) {
	params := appendFormParams(nil, req.URL.RawQuery)
	if isForm(req.Header.Get("Content-Type")) {
		return formBodyParams(params, req)
	}
	return params, nil
}

// oauth1Input is what one signature covers besides the request.
type oauth1Input struct {
	cfg       *OAuth1
	realm     string
	nonce     string
	timestamp int64
}

// sign returns the Authorization header value for req: the protocol
// parameters with a signature over req (its method, base string URI,
// query, form body) and them.
func (in *oauth1Input) sign(req *http.Request) (string, error) {
	cfg := in.cfg
	method := cfg.method()
	proto := make([]oauth1Param, 0, 8)
	proto = append(proto,
		oauth1Param{"oauth_consumer_key", cfg.ConsumerKey},
		oauth1Param{"oauth_signature_method", string(method)},
		oauth1Param{"oauth_timestamp", strconv.FormatInt(in.timestamp, 10)},
		oauth1Param{"oauth_nonce", in.nonce},
		oauth1Param{"oauth_version", "1.0"},
	)
	if cfg.Token != "" {
		proto = append(proto, oauth1Param{"oauth_token", cfg.Token})
	}
	params, err := oauth1RequestParams(req)
	if err != nil {
		return "", err
	}
	if cfg.BodyHash && method != OAuth1Plaintext && !isForm(req.Header.Get("Content-Type")) {
		// The draft: not with a form body, whose parameters are signed
		// already; of any other body, the empty one included.
		bh, err := oauth1BodyHash(req, method.hash())
		if err != nil {
			return "", err
		}
		proto = append(proto, oauth1Param{"oauth_body_hash", bh})
	}
	// §3.4.1.3.1: an oauth_signature among the query or body
	// parameters is not signed.
	params = slices.DeleteFunc(params, func(p oauth1Param) bool { return p.name == "oauth_signature" })
	params = append(params, proto...)
	httpMethod := req.Method
	if httpMethod == "" {
		httpMethod = http.MethodGet
	}
	sig, err := oauth1Signature(method, cfg.ConsumerSecret, cfg.TokenSecret, cfg.PrivateKey, oauth1BaseString(httpMethod, oauth1BaseURI(req), params))
	if err != nil {
		return "", err
	}
	proto = append(proto, oauth1Param{"oauth_signature", sig})
	return oauth1Header(in.realm, proto), nil
}

// oauth1Header formats the Authorization header (§3.5.1): "OAuth ", the
// realm if any, then the protocol parameters, names and values
// percent-encoded, values quoted, separated by ", ".
func oauth1Header(realm string, proto []oauth1Param) string {
	b := make([]byte, 0, 512)
	b = append(b, "OAuth "...)
	if realm != "" {
		// A quoted-string, as RFC 2617 §1.2 has it: not percent-encoded
		// (oauthlib's client does the same).
		b = append(b, "realm="...)
		b = anyauth.AppendQuoted(b, realm)
		b = append(b, ", "...)
	}
	for i, p := range proto {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = appendOAuth1Encoded(b, p.name)
		b = append(b, `="`...)
		b = appendOAuth1Encoded(b, p.value)
		b = append(b, '"')
	}
	return string(b)
}
