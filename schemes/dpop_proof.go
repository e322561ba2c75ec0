package schemes

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"strings"
	"time"
)

// This file makes DPoP proofs (RFC 9449 §4): compact JWS signed with a
// crypto.Signer, so that the private key may live in an HSM or a KMS.
// A proof is small and fixed in shape, so it is written here rather than
// taken from a general JOSE library: the tests check every proof with an
// independent verifier (panva's jose, through oidc-provider and the test
// resource server).

// dpopKey is a DPoP signing key: its JWS algorithm, its public JWK and
// the JWK's SHA-256 thumbprint (RFC 7638).
type dpopKey struct {
	signer     crypto.Signer
	alg        string
	jwk        json.RawMessage
	thumbprint string
}

var b64 = base64.RawURLEncoding

// newDPoPKey describes signer: ES256 for an ECDSA P-256 key, EdDSA for
// Ed25519, RS256 for RSA of 2048 bits or more.
func newDPoPKey(signer crypto.Signer) (*dpopKey, error) {
	if signer == nil {
		return nil, errors.New("dpop: no key: set DPoP.Key (an ECDSA P-256, Ed25519 or RSA crypto.Signer)")
	}
	k := &dpopKey{signer: signer}
	var canonical string
	switch pub := signer.Public().(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("dpop: ECDSA key on %s: only P-256 (ES256) is supported", pub.Curve.Params().Name)
		}
		ecdh, err := pub.ECDH()
		if err != nil {
			return nil, fmt.Errorf("dpop: ECDSA key: %w", err)
		}
		raw := ecdh.Bytes() // 0x04 || X || Y
		x, y := b64.EncodeToString(raw[1:33]), b64.EncodeToString(raw[33:])
		k.alg = "ES256"
		canonical = `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	case ed25519.PublicKey:
		k.alg = "EdDSA"
		canonical = `{"crv":"Ed25519","kty":"OKP","x":"` + b64.EncodeToString(pub) + `"}`
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("dpop: RSA key of %d bits: at least 2048 are needed", pub.N.BitLen())
		}
		k.alg = "RS256"
		e := big.NewInt(int64(pub.E)).Bytes()
		canonical = `{"e":"` + b64.EncodeToString(e) + `","kty":"RSA","n":"` + b64.EncodeToString(pub.N.Bytes()) + `"}`
	default:
		return nil, fmt.Errorf("dpop: a %T key: use ECDSA P-256, Ed25519 or RSA", pub)
	}
	sum := sha256.Sum256([]byte(canonical))
	k.jwk, k.thumbprint = json.RawMessage(canonical), b64.EncodeToString(sum[:])
	return k, nil
}

// proofClaims are the claims of a proof.
type proofClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// proof returns a fresh proof for a request of method to target: a new
// jti, iat now, ath when accessToken is set, and nonce when the server
// gave one.
func (k *dpopKey) proof(method string, target *url.URL, accessToken, nonce string) (string, error) {
	var jti [16]byte
	rand.Read(jti[:])
	claims := proofClaims{JTI: b64.EncodeToString(jti[:]), HTM: method, HTU: htu(target), IAT: time.Now().Unix(), Nonce: nonce}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims.ATH = b64.EncodeToString(sum[:])
	}
	header, err := json.Marshal(struct {
		Typ string          `json:"typ"`
		Alg string          `json:"alg"`
		JWK json.RawMessage `json:"jwk"`
	}{"dpop+jwt", k.alg, k.jwk})
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(header) + "." + b64.EncodeToString(payload)
	sig, err := k.sign([]byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// sign signs the JWS signing input with the key's algorithm.
func (k *dpopKey) sign(input []byte) ([]byte, error) {
	switch k.alg {
	case "EdDSA":
		sig, err := k.signer.Sign(rand.Reader, input, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("dpop: signing a proof: %w", err)
		}
		return sig, nil
	case "RS256":
		sum := sha256.Sum256(input)
		sig, err := k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("dpop: signing a proof: %w", err)
		}
		return sig, nil
	}
	sum := sha256.Sum256(input)
	der, err := k.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("dpop: signing a proof: %w", err)
	}
	// An ECDSA crypto.Signer returns ASN.1 (r, s); JWS wants r || s, each
	// 32 bytes.
	var rs struct{ R, S *big.Int }
	if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) != 0 {
		return nil, errors.New("dpop: signing a proof: the signer returned no ASN.1 ECDSA signature")
	}
	sig := make([]byte, 64)
	rs.R.FillBytes(sig[:32])
	rs.S.FillBytes(sig[32:])
	return sig, nil
}

// htu is the proof's htu of a request to u: its URI without query and
// fragment (RFC 9449 §4.2), scheme and host lower-cased.
func htu(u *url.URL) string {
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.ToLower(u.Scheme) + "://" + strings.ToLower(u.Host) + path
}
