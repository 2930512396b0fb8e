// Package netaddr parses the addresses that cmd/logsockd takes on its
// command line. The programs under examples/ and cmd/logsock-cat parse
// theirs with a few lines of their own, so that they can be copied out of
// the module.
package netaddr

import (
	"fmt"
	"strings"
)

// Parse splits an address into a network and an address for net.Dial or
// net.Listen. It accepts "tcp://host:port" (also tcp4, tcp6),
// "unix:///path/to/socket", and a bare "host:port", which means TCP; and
// "tls://host:port", whose network "tls" is TCP with TLS on top, which the
// caller provides.
func Parse(s string) (network, address string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "tcp", s
	}
	switch scheme {
	case "tcp", "tcp4", "tcp6", "tls":
		if !strings.Contains(rest, ":") {
			return "", "", fmt.Errorf("address %q: want host:port", s)
		}
	case "unix":
		if rest == "" {
			return "", "", fmt.Errorf("address %q: want unix:///path", s)
		}
	default:
		return "", "", fmt.Errorf("address %q: network %q: want tcp, tcp4, tcp6, tls or unix", s, scheme)
	}
	return scheme, rest, nil
}

// Format is the inverse of Parse.
func Format(network, address string) string {
	return network + "://" + address
}
