//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/logsock/logsock"
)

// tlsFlags are the flags of the -listen tls:// addresses: the server's
// certificate and key, and the authorities that sign the clients'
// certificates, if clients must present one.
type tlsFlags struct {
	cert, key, clientCA string
	cfg                 *tls.Config // made by load
}

func (t *tlsFlags) register(flags *flag.FlagSet) {
	flags.StringVar(&t.cert, "tls-cert", "", "for -listen tls://, a PEM file of logsockd's certificate (with -tls-key)")
	flags.StringVar(&t.key, "tls-key", "", "for -listen tls://, the PEM file of -tls-cert's private key")
	flags.StringVar(&t.clientCA, "tls-client-ca", "", "for -listen tls://, a PEM file of the authorities that sign the clients' certificates: a client must then present one (default: clients need none)")
}

// check checks the flags against whether a -listen address is tls://.
func (t *tlsFlags) check(listenTLS bool) error {
	switch {
	case listenTLS && (t.cert == "" || t.key == ""):
		return errors.New("-listen tls:// needs -tls-cert and -tls-key")
	case !listenTLS && (t.cert != "" || t.key != "" || t.clientCA != ""):
		return errors.New("-tls-cert, -tls-key and -tls-client-ca go with a -listen tls:// address")
	}
	return nil
}

// load reads the files into the server's TLS configuration: TLS 1.2 at
// least, and the client's certificate required and checked when
// -tls-client-ca is given.
func (t *tlsFlags) load() error {
	cert, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return fmt.Errorf("-tls-cert %s, -tls-key %s: %w", t.cert, t.key, err)
	}
	t.cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if t.clientCA != "" {
		if t.cfg.ClientCAs, err = loadCAs(t.clientCA); err != nil {
			return err
		}
		t.cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return nil
}

// listen listens on address over TCP, and hands out TLS connections: the
// Server reads them through net.Conn, their handshake within its
// HandshakeTimeout.
func (t *tlsFlags) listen(address string) (net.Listener, error) {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, err
	}
	return tls.NewListener(l, t.cfg), nil
}

// parseListen parses a -listen address: logsock.ParseAddress's forms, and
// tls://host:port, whose network "tls" is TCP with TLS on top (listen).
func parseListen(s string) (network, address string, err error) {
	rest, ok := strings.CutPrefix(s, "tls://")
	if !ok {
		network, address, err = logsock.ParseAddress(s)
		if err != nil {
			err = fmt.Errorf("%w (or tls://host:port)", err)
		}
		return network, address, err
	}
	if _, address, err = logsock.ParseAddress("tcp://" + rest); err != nil {
		return "", "", fmt.Errorf("address %q: want tls://host:port", s)
	}
	return "tls", address, nil
}

// loadCAs reads a PEM file of certificates into a pool.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}
