//go:build unix

package main

// What the tests of -json-msg, run ids, -metrics and systemd add to
// proc_test.go's: a logsockd on several sockets, a file's lines, the tools
// they run, an HTTP GET.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logsock/logsock/internal/testenv"
)

// startDaemon starts logsockd with args and waits until it says that it
// listens on each of its -listen addresses, which it returns in order, as
// it prints them (tcp://127.0.0.1:PORT, unix:///path).
func startDaemon(t *testing.T, args ...string) (*proc, []string) {
	t.Helper()
	n := 0
	for _, a := range args {
		if a == "-listen" {
			n++
		}
	}
	p := startProc(t, nil, testenv.Program(t, "logsockd"), args...)
	return p, p.listening(t, n)
}

// listening waits for n "listening on" lines and returns their addresses.
func (p *proc) listening(t *testing.T, n int) []string {
	t.Helper()
	const prefix = "logsockd: listening on "
	lines := p.waitMatching(t, prefix, n)
	for i, l := range lines {
		_, lines[i], _ = strings.Cut(l, prefix)
	}
	return lines
}

// waitFileLines waits until the file at path holds at least n lines, and
// returns its complete lines (not a last one that is being written).
func waitFileLines(t *testing.T, p *proc, path string, n int) []string {
	t.Helper()
	var b []byte
	waitFor(t, p, fmt.Sprintf("%d lines in %s", n, path), func() bool {
		var err error
		b, err = os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		return bytes.Count(b, []byte{'\n'}) >= n
	})
	end := bytes.LastIndexByte(b, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(string(b[:end]), "\n")
}

// tool returns the path of the program name, or skips the test without
// it; under require=1 in the environment (as .ci/run sets it) it fails.
func tool(t *testing.T, name, require string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		// Debian puts some in /usr/sbin, which a PATH may lack.
		for _, dir := range []string{"/usr/bin", "/usr/sbin", "/bin"} {
			if p := filepath.Join(dir, name); exec.Command(p, "--version").Run() == nil {
				return p
			}
		}
		if os.Getenv(require) == "1" {
			t.Fatalf("%s not available: %v", name, err)
		}
		t.Skipf("%s not available: %v", name, err)
	}
	return path
}

// httpGet gets url and returns the status, the Content-Type and the body.
func httpGet(t *testing.T, url string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No connection kept: goleak would see its goroutines.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b.String()
}
