// Package tlstest makes the certificates of the TLS tests (issue 20): a
// certificate authority, a server certificate for 127.0.0.1 and localhost,
// and a client certificate, with ECDSA P-256 keys, made with crypto/x509
// and written as PEM files for the programs under test (logsockd,
// rsyslogd). Each call makes a new authority, so that two sets do not
// trust each other: a client given another set's CA must be refused.
package tlstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Set is a certificate authority and the certificates it signed, as PEM
// files in Dir and parsed.
type Set struct {
	Dir                   string
	CAFile                string // the authority's certificate
	CertFile, KeyFile     string // the server's: 127.0.0.1, ::1 and localhost
	ClientCert, ClientKey string // the client's

	CAPool *x509.CertPool  // holds the authority's certificate
	Server tls.Certificate // CertFile and KeyFile
	Client tls.Certificate // ClientCert and ClientKey
}

// New makes a Set in a new directory inside dir. The certificates are
// valid from an hour ago for a day.
func New(dir string) (*Set, error) {
	dir, err := os.MkdirTemp(dir, "tls")
	if err != nil {
		return nil, err
	}
	s := &Set{
		Dir:        dir,
		CAFile:     filepath.Join(dir, "ca.pem"),
		CertFile:   filepath.Join(dir, "server.pem"),
		KeyFile:    filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"),
		ClientKey:  filepath.Join(dir, "client-key.pem"),
		CAPool:     x509.NewCertPool(),
	}
	now := time.Now()
	ca := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "logsock test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caKey, caDER, err := sign(ca, nil, nil)
	if err != nil {
		return nil, err
	}
	if ca, err = x509.ParseCertificate(caDER); err != nil {
		return nil, err
	}
	s.CAPool.AddCert(ca)
	if err := writePEM(s.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name string, usage x509.ExtKeyUsage, certFile, keyFile string) (tls.Certificate, error) {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: name},
			NotBefore:   now.Add(-time.Hour),
			NotAfter:    now.Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{usage},
			DNSNames:    []string{"localhost"},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		}
		key, der, err := sign(tmpl, ca, caKey)
		if err != nil {
			return tls.Certificate{}, err
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return tls.Certificate{}, err
		}
		if err := writePEM(keyFile, "EC PRIVATE KEY", keyDER); err != nil {
			return tls.Certificate{}, err
		}
		return tls.LoadX509KeyPair(certFile, keyFile)
	}
	if s.Server, err = leaf("localhost", x509.ExtKeyUsageServerAuth, s.CertFile, s.KeyFile); err != nil {
		return nil, err
	}
	if s.Client, err = leaf("logsock test client", x509.ExtKeyUsageClientAuth, s.ClientCert, s.ClientKey); err != nil {
		return nil, err
	}
	return s, nil
}

// NewTemp makes a Set in a new temporary directory of its own, short as
// os.MkdirTemp("", ...) makes it, and returns the function that removes it.
func NewTemp() (s *Set, remove func(), err error) {
	dir, err := os.MkdirTemp("", "tls")
	if err != nil {
		return nil, nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	if s, err = New(dir); err != nil {
		remove()
		return nil, nil, err
	}
	return s, remove, nil
}

// sign makes a key and a certificate of tmpl with it, signed by parent
// and its key (nil: self-signed).
func sign(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	return key, der, err
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// ServerConfig returns a server's tls.Config with the server certificate;
// with clientAuth, it requires a client certificate signed by the
// authority.
func (s *Set) ServerConfig(clientAuth bool) *tls.Config {
	cfg := &tls.Config{Certificates: []tls.Certificate{s.Server}, MinVersion: tls.VersionTLS12}
	if clientAuth {
		cfg.ClientCAs, cfg.ClientAuth = s.CAPool, tls.RequireAndVerifyClientCert
	}
	return cfg
}

// ClientConfig returns a client's tls.Config that trusts the authority
// and presents the client certificate.
func (s *Set) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: s.CAPool, Certificates: []tls.Certificate{s.Client}, MinVersion: tls.VersionTLS12}
}
