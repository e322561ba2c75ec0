package testserver

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
)

// HtpasswdLine returns an htpasswd line for user and password in Apache's
// "{SHA}" format (base64 of the SHA-1 of the password), which both Apache's
// mod_authn_file and lighttpd's htpasswd backend accept. It is weak and
// meant for tests only.
func HtpasswdLine(user, password string) string {
	sum := sha1.Sum([]byte(password))
	return user + ":{SHA}" + base64.StdEncoding.EncodeToString(sum[:]) + "\n"
}

// HtdigestLine returns an htdigest line "user:realm:H(user:realm:password)"
// for the Digest algorithm "MD5" (Apache's htdigest format), "SHA-256" or
// "SHA-512-256" (lighttpd). With userhash, a fourth field H(user:realm) is
// appended, which lighttpd's htdigest backend uses to find users who send
// userhash=true.
func HtdigestLine(user, realm, password, algorithm string, userhash bool) string {
	line := fmt.Sprintf("%s:%s:%s", user, realm, hexHash(algorithm, user+":"+realm+":"+password))
	if userhash {
		line += ":" + hexHash(algorithm, user+":"+realm)
	}
	return line + "\n"
}

// Userhash returns the RFC 7616 userhash H(user:realm) for the Digest
// algorithm ("MD5", "SHA-256" or "SHA-512-256", without "-sess").
func Userhash(user, realm, algorithm string) string {
	return hexHash(algorithm, user+":"+realm)
}

func hexHash(algorithm, s string) string {
	var h hash.Hash
	switch algorithm {
	case "MD5":
		h = md5.New()
	case "SHA-256":
		h = sha256.New()
	case "SHA-512-256":
		h = sha512.New512_256()
	default:
		panic("testserver: unknown digest algorithm " + algorithm)
	}
	h.Write([]byte(s))
	return hex.EncodeToString(h.Sum(nil))
}
