package logsock

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// ParseAddress splits "unix:///path", "tcp://host:port" or "host:port".
func ParseAddress(s string) (network, address string, err error) {
	network, address, ok := strings.Cut(s, "://")
	if !ok {
		network, address = "tcp", s
	}
	if err := checkNetwork(network); err != nil {
		return "", "", fmt.Errorf("logsock: address %q: %w", s, err)
	}
	if address == "" && network == "unix" {
		return "", "", fmt.Errorf("logsock: address %q: empty path: want unix:///path", s)
	}
	if err := checkAddress(network, address, true); err != nil {
		return "", "", fmt.Errorf("logsock: address %q: %w", s, err)
	}
	return network, address, nil
}

// checkNetwork checks that the client and the Server know network.
func checkNetwork(network string) error {
	switch network {
	case "tcp", "tcp4", "tcp6", "unix":
		return nil
	}
	return fmt.Errorf("network %q: want tcp, tcp4, tcp6 or unix", network)
}

// checkAddress checks that address is one that network can dial (or,
// with port0, listen on): a host:port with a port for TCP, a path (or
// Linux's abstract name) for Unix. The URL forms are ParseAddress's: New
// given one would fail only at its first dial, after the program had
// started (issue 18).
func checkAddress(network, address string, port0 bool) error {
	if address == "" {
		return errors.New("empty: want the collector's address")
	}
	if scheme, _, ok := strings.Cut(address, "://"); ok && checkNetwork(scheme) == nil {
		return fmt.Errorf("%q is a URL: want %s, without %s:// (ParseAddress takes the URL form)", address, wantForm(network), scheme)
	}
	if network == "unix" {
		return nil
	}
	_, port, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("want host:port: %w", err)
	}
	// LookupPort takes a number or a service name, as Dial does; a name
	// is looked up in the services database, not over the network.
	if p, err := net.LookupPort(network, port); err != nil || p == 0 && !port0 {
		return fmt.Errorf("port %q: want a number from 1 to 65535, or a service name", port)
	}
	return nil
}

func wantForm(network string) string {
	if network == "unix" {
		return "a path"
	}
	return "host:port"
}
