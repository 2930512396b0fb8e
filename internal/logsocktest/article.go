package logsocktest

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/logsock/logsock/internal/testenv"
)

// NonASCII mixes 2-, 3- and 4-byte UTF-8: 10 code points, 25 bytes.
const NonASCII = "로그 메시지 ✓ 𝄞"

// Testdata returns the absolute path of a file in the module's testdata,
// from the tests of any of its packages.
func Testdata(t testing.TB, name string) string {
	t.Helper()
	root, err := testenv.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "testdata", name)
}

// ArticleClientArgs returns the command line, for python3, of the
// article's client (testdata/article_client.py, a faithful copy, bugs
// included) logging msgs to a collector listening on network at addr.
func ArticleClientArgs(t testing.TB, network, addr string, msgs []string) []string {
	t.Helper()
	args := []string{Testdata(t, "article_client.py")}
	if network == "unix" {
		args = append(args, "--unix", addr)
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, host, port)
	}
	return append(args, msgs...)
}
