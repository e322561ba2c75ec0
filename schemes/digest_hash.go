package schemes

import (
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strings"

	"github.com/anyauth/anyauth"
)

// This file holds the Digest computation of RFC 7616 §3.4: the hash
// functions, H and KD over ':'-joined values, A1 (with "-sess"), A2 (with
// auth-int's body hash) and the response.

// hashFunc names the hash function H of an algorithm.
type hashFunc uint8

const (
	hashMD5 hashFunc = iota
	hashSHA256
	hashSHA512
	// hashSHA512_256 is SHA-512/256 of FIPS 180-4 §6.7, with its own
	// initial hash value: not SHA-512 truncated to 256 bits (the error in
	// RFC 7616 §3.9.2, Errata ID 4897).
	hashSHA512_256
)

// A digestAlgorithm is one value of the algorithm parameter.
type digestAlgorithm struct {
	hash     hashFunc
	sess     bool // "-sess": A1 also covers the nonce and cnonce
	strength anyauth.Strength
}

// digestAlgorithms maps the upper-cased algorithm names to their
// definitions; "" is the default, MD5.
var digestAlgorithms = map[string]digestAlgorithm{
	"":                 {hashMD5, false, StrengthDigestMD5},
	"MD5":              {hashMD5, false, StrengthDigestMD5},
	"MD5-SESS":         {hashMD5, true, StrengthDigestMD5 + strengthSess},
	"SHA-256":          {hashSHA256, false, StrengthDigestSHA256},
	"SHA-256-SESS":     {hashSHA256, true, StrengthDigestSHA256 + strengthSess},
	"SHA-512":          {hashSHA512, false, StrengthDigestSHA512},
	"SHA-512-SESS":     {hashSHA512, true, StrengthDigestSHA512 + strengthSess},
	"SHA-512-256":      {hashSHA512_256, false, StrengthDigestSHA512_256},
	"SHA-512-256-SESS": {hashSHA512_256, true, StrengthDigestSHA512_256 + strengthSess},
}

// lookupAlgorithm finds the algorithm called name, ignoring case.
func lookupAlgorithm(name string) (digestAlgorithm, bool) {
	if len(name) > len("SHA-512-256-SESS") {
		return digestAlgorithm{}, false
	}
	a, ok := digestAlgorithms[strings.ToUpper(name)]
	return a, ok
}

// new returns a hash.Hash computing h, for data that is streamed.
func (h hashFunc) new() hash.Hash {
	switch h {
	case hashSHA256:
		return sha256.New()
	case hashSHA512:
		return sha512.New()
	case hashSHA512_256:
		return sha512.New512_256()
	default:
		return md5.New()
	}
}

// appendSum appends the lower-case hex of H(data) to dst.
func (h hashFunc) appendSum(dst, data []byte) []byte {
	switch h {
	case hashSHA256:
		s := sha256.Sum256(data)
		return hex.AppendEncode(dst, s[:])
	case hashSHA512:
		s := sha512.Sum512(data)
		return hex.AppendEncode(dst, s[:])
	case hashSHA512_256:
		s := sha512.Sum512_256(data)
		return hex.AppendEncode(dst, s[:])
	default:
		s := md5.Sum(data)
		return hex.AppendEncode(dst, s[:])
	}
}

// appendJoined appends H(parts[0] ":" parts[1] ":" ...) in hex to dst,
// using scratch (which it may grow) to hold the joined input.
func (h hashFunc) appendJoined(dst, scratch []byte, parts ...string) []byte {
	in := scratch[:0]
	for i, p := range parts {
		if i > 0 {
			in = append(in, ':')
		}
		in = append(in, p...)
	}
	out := h.appendSum(dst, in)
	clear(in) // the input may hold the password
	return out
}

// digestInput is what one response computation needs.
type digestInput struct {
	h      hashFunc
	sess   bool
	ha1    string // H(username ":" realm ":" password), hex
	nonce  string
	method string
	uri    string
	// qop is "auth", "auth-int", or "" for the RFC 2069 form.
	qop    string
	nc     string // 8 hex digits; used with a qop
	cnonce string // used with a qop or -sess
	// bodyHash is H(entity-body) in hex, for auth-int.
	bodyHash string
}

// appendResponse appends the request-digest of RFC 7616 §3.4.1 to dst.
// When a2Method is false, A2 starts with ":" instead of the method: that
// is the rspauth of Authentication-Info (RFC 7616 §3.5).
func appendResponse(dst []byte, in *digestInput, a2Method bool) []byte {
	var scratch [512]byte
	var ha1Buf, ha2Buf [2 * sha512.Size]byte

	// HA1: H(user:realm:pass), or for -sess H(that ":" nonce ":" cnonce).
	ha1 := append(ha1Buf[:0], in.ha1...)
	if in.sess {
		b := append(scratch[:0], in.ha1...)
		b = appendColon(b, in.nonce)
		b = appendColon(b, in.cnonce)
		ha1 = in.h.appendSum(ha1Buf[:0], b)
		clear(b)
	}

	// HA2: H(method ":" uri), with ":" H(body) for auth-int.
	b := scratch[:0]
	if a2Method {
		b = append(b, in.method...)
	}
	b = appendColon(b, in.uri)
	if in.qop == "auth-int" {
		b = appendColon(b, in.bodyHash)
	}
	ha2 := in.h.appendSum(ha2Buf[:0], b)

	// response: H(HA1 ":" nonce [":" nc ":" cnonce ":" qop] ":" HA2).
	b = append(scratch[:0], ha1...)
	b = appendColon(b, in.nonce)
	if in.qop != "" {
		b = appendColon(b, in.nc)
		b = appendColon(b, in.cnonce)
		b = appendColon(b, in.qop)
	}
	b = append(b, ':')
	b = append(b, ha2...)
	out := in.h.appendSum(dst, b)
	clear(b)
	clear(ha1Buf[:])
	return out
}

// appendColon appends ":" and s to b.
func appendColon(b []byte, s string) []byte {
	b = append(b, ':')
	return append(b, s...)
}

// hashBody returns H(body) in hex, reading the body that getBody returns
// through the hash in pieces and closing it. A request without a body
// (getBody nil) hashes as H("").
func hashBody(h hashFunc, getBody func() (io.ReadCloser, error)) (string, error) {
	hh := h.new()
	if getBody != nil {
		r, err := getBody()
		if err != nil {
			return "", fmt.Errorf("digest: qop=auth-int: re-reading the request body: %w", err)
		}
		if r != nil {
			_, err = io.Copy(hh, r)
			if cerr := r.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("digest: qop=auth-int: hashing the request body: %w", err)
			}
		}
	}
	var buf [sha512.Size]byte
	return hex.EncodeToString(hh.Sum(buf[:0])), nil
}

// bodyReadable reports whether req's body can be hashed without consuming
// the body that will be sent: it has none, or GetBody can produce it again.
func bodyReadable(req *http.Request) bool {
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}
