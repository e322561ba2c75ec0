package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/anyauth/anyauth"
	"github.com/anyauth/anyauth/schemes"
	"golang.org/x/oauth2/clientcredentials"
)

// issuerList is the repeatable -oauth2-issuer-allow.
type issuerList []string

func (l *issuerList) String() string     { return strings.Join(*l, " ") }
func (l *issuerList) Set(v string) error { *l = append(*l, v); return nil }

// dpopSigner is the key of -dpop: the PEM key of -dpop-key, or a new
// P-256 key for this run.
func dpopSigner(o *options) (crypto.Signer, error) {
	if o.dpopKey == "" {
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	data, err := os.ReadFile(o.dpopKey)
	if err != nil {
		return nil, fmt.Errorf("-dpop-key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, usageError{"-dpop-key: no PEM block in " + o.dpopKey}
	}
	var key any
	switch block.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("-dpop-key: %s: not a private key this tool reads (PKCS#8, EC or PKCS#1 RSA)", o.dpopKey)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, usageError{fmt.Sprintf("-dpop-key: a %T cannot sign", key)}
	}
	return signer, nil
}

// oauth2Scheme is the scheme of the -oauth2-* flags: client credentials
// at -oauth2-token-url, or discovery from the challenge with the issuers
// of -oauth2-issuer-allow; as DPoP with -dpop.
func oauth2Scheme(o *options, origins []string) (anyauth.Scheme, *schemes.Bearer, error) {
	id, secret, ok := strings.Cut(o.oauth2Client, ":")
	if !ok {
		return nil, nil, usageError{"-oauth2-client wants ID:SECRET"}
	}
	scopes := strings.FieldsFunc(o.oauth2Scope, func(r rune) bool { return r == ' ' || r == ',' })
	var key crypto.Signer
	if o.dpop {
		var err error
		if key, err = dpopSigner(o); err != nil {
			return nil, nil, err
		}
	}
	if len(o.issuers) > 0 {
		d := &schemes.Discovery{ClientID: id, ClientSecret: secret, Scopes: scopes, Issuers: o.issuers, DPoPKey: key}
		return d, nil, nil
	}
	cfg := &clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: o.oauth2URL, Scopes: scopes}
	if key != nil {
		d := schemes.NewDPoPClientCredentials(key, cfg, origins...)
		return d, &d.Bearer, nil
	}
	b := schemes.NewClientCredentialsBearer(cfg, origins...)
	return b, b, nil
}
