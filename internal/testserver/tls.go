package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// CertValidity is how long the test CA and the server certificates it
// issues are valid (from an hour before they were made, to tolerate clock
// skew).
const CertValidity = 24 * time.Hour

// testPKI is a throw-away CA and one server certificate it issued.
type testPKI struct {
	CACertPEM []byte // the CA certificate
	CertPEM   []byte // the server certificate (leaf only)
	KeyPEM    []byte // the server's private key, PKCS #8
	caCert    *x509.Certificate
}

// serverNames are the names the server certificates are valid for.
var (
	serverDNSNames = []string{"localhost"}
	serverIPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
)

// newTestPKI generates, in process, an ECDSA P-256 CA valid for
// CertValidity and a server certificate it signs for 127.0.0.1, ::1 and
// localhost. The CA's key is discarded once the server certificate is
// signed: nothing else can ever be issued under it.
func newTestPKI() (*testPKI, error) {
	now := time.Now()
	notBefore, notAfter := now.Add(-time.Hour), now.Add(CertValidity)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caSerial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{Organization: []string{"anyauth tests"}, CommonName: fmt.Sprintf("anyauth test CA %d", now.UnixNano())},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"anyauth tests"}, CommonName: "127.0.0.1"},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     serverDNSNames,
		IPAddresses:  serverIPs,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &testPKI{
		CACertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CertPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		caCert:    caCert,
	}, nil
}

func randomSerial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// CertPool returns a new pool holding only the CA that issued the
// certificate of a server started with StartApacheTLS, or nil for a plain
// HTTP server.
func (s *Server) CertPool() *x509.CertPool {
	if len(s.CACertPEM) == 0 {
		return nil
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.CACertPEM)
	return pool
}

// TLSConfig returns a new client configuration that trusts only the CA of a
// server started with StartApacheTLS (and so verifies its certificate for
// 127.0.0.1 or localhost), or nil for a plain HTTP server.
func (s *Server) TLSConfig() *tls.Config {
	pool := s.CertPool()
	if pool == nil {
		return nil
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// writeTestPKI makes a throw-away CA and server certificate, and writes
// them to dir/tls (ca.pem, cert.pem, key.pem), readable by the owner only.
func writeTestPKI(dir string) (*testPKI, error) {
	pki, err := newTestPKI()
	if err != nil {
		return nil, err
	}
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		return nil, err
	}
	for f, data := range map[string][]byte{"ca.pem": pki.CACertPEM, "cert.pem": pki.CertPEM, "key.pem": pki.KeyPEM} {
		if err := os.WriteFile(filepath.Join(dir, "tls", f), data, 0o600); err != nil {
			return nil, err
		}
	}
	return pki, nil
}
