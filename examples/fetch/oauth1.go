package main

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
)

// This file is fetch's OAuth 1.0 (RFC 5849) flags: -oauth1 and the
// -oauth1-* that refine it. They answer "WWW-Authenticate: OAuth"
// challenges of the URLs' origins with schemes.OAuth1.

// oauth1Options are the -oauth1* flags.
type oauth1Options struct {
	client     string // -oauth1 CONSUMER_KEY:CONSUMER_SECRET
	token      string // -oauth1-token TOKEN:SECRET
	method     string // -oauth1-method
	keyFile    string // -oauth1-key FILE
	preemptive bool   // -oauth1-preemptive
	bodyHash   bool   // -oauth1-body-hash
}

// addFlags defines the -oauth1* flags on fs.
func (o *oauth1Options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.client, "oauth1", "", "OAuth 1.0 client credentials `KEY:SECRET` (RFC 5849): sign requests to the URLs' origins when they answer \"WWW-Authenticate: OAuth\"")
	fs.StringVar(&o.token, "oauth1-token", "", "OAuth 1.0 token credentials `TOKEN:SECRET` (with -oauth1)")
	fs.StringVar(&o.method, "oauth1-method", string(schemes.OAuth1HMACSHA1), "OAuth 1.0 signature `METHOD`: HMAC-SHA1, HMAC-SHA256, RSA-SHA1, RSA-SHA256 (with -oauth1-key), or PLAINTEXT (https, or loopback, only)")
	fs.StringVar(&o.keyFile, "oauth1-key", "", "PEM `FILE` of the RSA private key (PKCS #1 or PKCS #8) for -oauth1-method RSA-SHA1 or RSA-SHA256")
	fs.BoolVar(&o.preemptive, "oauth1-preemptive", false, "sign every request to the URLs' origins from the first, for APIs that answer 401 without \"WWW-Authenticate: OAuth\"")
	fs.BoolVar(&o.bodyHash, "oauth1-body-hash", false, "sign a body that is not form-encoded too, with oauth_body_hash")
}

// addScheme adds to t the OAuth1 scheme the flags describe, for origins;
// nothing without -oauth1.
func (o *oauth1Options) addScheme(t *anyauth.Transport, origins []string) error {
	if o.client == "" {
		if o.token != "" || o.keyFile != "" || o.preemptive || o.bodyHash || !strings.EqualFold(o.method, string(schemes.OAuth1HMACSHA1)) {
			return usageError{"the -oauth1-* flags refine -oauth1 KEY:SECRET: give it too"}
		}
		return nil
	}
	method := schemes.OAuth1Method(strings.ToUpper(o.method))
	rsaMethod := method == schemes.OAuth1RSASHA1 || method == schemes.OAuth1RSASHA256
	switch method {
	case schemes.OAuth1HMACSHA1, schemes.OAuth1HMACSHA256, schemes.OAuth1Plaintext, schemes.OAuth1RSASHA1, schemes.OAuth1RSASHA256:
	default:
		return usageError{fmt.Sprintf("-oauth1-method %q: want HMAC-SHA1, HMAC-SHA256, RSA-SHA1, RSA-SHA256 or PLAINTEXT", o.method)}
	}
	key, secret, ok := strings.Cut(o.client, ":")
	if key == "" || !ok && !rsaMethod {
		return usageError{"-oauth1 wants CONSUMER_KEY:CONSUMER_SECRET (the secret may be empty with an RSA method)"}
	}
	s := schemes.NewOAuth1(key, secret, "", "", origins...)
	s.Method, s.Preemptive, s.BodyHash = method, o.preemptive, o.bodyHash
	if o.token != "" {
		if s.Token, s.TokenSecret, ok = strings.Cut(o.token, ":"); !ok || s.Token == "" {
			return usageError{"-oauth1-token wants TOKEN:SECRET"}
		}
	}
	switch {
	case rsaMethod && o.keyFile == "":
		return usageError{fmt.Sprintf("-oauth1-method %s signs with -oauth1-key FILE: give it", method)}
	case !rsaMethod && o.keyFile != "":
		return usageError{fmt.Sprintf("-oauth1-key is for RSA-SHA1 and RSA-SHA256, not %s", method)}
	case rsaMethod:
		k, err := readRSAKey(o.keyFile)
		if err != nil {
			return err
		}
		s.PrivateKey = k
	}
	t.Schemes = append(t.Schemes, s)
	return nil
}

// readRSAKey reads an RSA private key from a PEM file: "RSA PRIVATE KEY"
// (PKCS #1) or "PRIVATE KEY" (PKCS #8). Its errors never quote the file.
func readRSAKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("-oauth1-key: %w", err)
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, usageError{"-oauth1-key: no RSA PRIVATE KEY or PRIVATE KEY PEM block in " + path}
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("-oauth1-key %s: %w", path, err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("-oauth1-key %s: %w", path, err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, usageError{fmt.Sprintf("-oauth1-key %s: a %T, not an RSA key", path, k)}
			}
			return rk, nil
		}
	}
}
