//go:build unix

package logsock_test

// The README's Go snippets are whole programs that a newcomer pastes into
// a module of their own. Each is built here as written; the client and
// the sharing programs are run against a collector, with only their
// address changed, and must deliver what the README says they do.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/logsocktest"
	"github.com/logsock/logsock/internal/proctest"
	"github.com/logsock/logsock/internal/testenv"
)

// readmeAddr is the collector address that the README's snippets use.
const readmeAddr = "127.0.0.1:39999"

// readmeSnippets returns the README's Go code blocks.
func readmeSnippets(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var snippets []string
	for _, m := range regexp.MustCompile("(?ms)^```go\n(.*?)^```\n").FindAllSubmatch(b, -1) {
		snippets = append(snippets, string(m[1]))
	}
	if len(snippets) == 0 {
		t.Fatal("README.md has no Go code block")
	}
	return snippets
}

// buildSnippet builds src, a main package, with the module's go.mod, and
// returns the program's path.
func buildSnippet(t *testing.T, src string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "snippet")
	goSnippet(t, dir, src, "build", "-ldflags=-s -w", "-o", bin) // no symbols: a quicker link
	return bin
}

// vetSnippet compiles src and vets it, without linking a program: for the
// snippets that are only built.
func vetSnippet(t *testing.T, src string) {
	t.Helper()
	goSnippet(t, t.TempDir(), src, "vet")
}

// goSnippet runs the go command with args on src, written to dir/main.go.
func goSnippet(t *testing.T, dir, src string, args ...string) {
	t.Helper()
	goTool, err := testenv.GoTool()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "main.go")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, append(args, file)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go %s: the snippet does not build: %v\n%s\n%s", args[0], err, out, src)
	}
}

// TestReadmeSnippets builds each Go snippet of the README, and runs the
// client and the sharing one against a collector: the only change made to
// them is the collector's address, a string literal.
func TestReadmeSnippets(t *testing.T) {
	t.Parallel()
	kinds := map[string]int{}
	for i, src := range readmeSnippets(t) {
		if !strings.HasPrefix(src, "package main\n") {
			t.Errorf("Go snippet %d is not a whole program:\n%s", i+1, src)
			continue
		}
		var kind string
		var check func(t *testing.T, p *proctest.Proc, col *logsocktest.FakeCollector)
		switch {
		case strings.Contains(src, "logsock.Server{"):
			kind = "server" // it listens where a real collector would: built only
		case strings.Contains(src, "Acks: true"):
			kind = "acks" // the test collector speaks v1 only: built only
		case strings.Contains(src, "FromEnv"):
			kind, check = "sharing", checkReadmeSharing
		case strings.Contains(src, "logsock.New("):
			kind, check = "client", checkReadmeClient
		default:
			t.Errorf("Go snippet %d: no test knows what it does:\n%s", i+1, src)
			continue
		}
		kinds[kind]++
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			if check == nil {
				vetSnippet(t, src)
				return
			}
			if strings.Count(src, `"`+readmeAddr+`"`) != 1 {
				t.Fatalf("the snippet does not log to %q once:\n%s", readmeAddr, src)
			}
			col := logsocktest.NewFakeCollector(t, "tcp", logsocktest.FakeDecode)
			p := proctest.Start(t, buildSnippet(t, strings.Replace(src, readmeAddr, col.Addr, 1)))
			p.MustExit(t)
			check(t, p, col)
		})
	}
	for _, kind := range []string{"client", "sharing"} {
		if kinds[kind] != 1 {
			t.Errorf("%d %s snippets in the README, want 1", kinds[kind], kind)
		}
	}
}

// checkReadmeClient: the client snippet's messages arrive, a frame each,
// in order, on one connection whose handshake named it: the LineWriter's
// lines (the last without a newline) apart, slog's and log's records
// without their newline being a separate frame.
func checkReadmeClient(t *testing.T, p *proctest.Proc, col *logsocktest.FakeCollector) {
	got := col.OneConnMsgs(t, p.Pid())
	want := []*regexp.Regexp{
		regexp.MustCompile(`^started$`),
		regexp.MustCompile(`^job 7 done$`),
		regexp.MustCompile(`^\{"time":"[^"]+","level":"INFO","msg":"request","path":"/","ms":12\}\n$`),
		regexp.MustCompile(`^worker: \d{4}/\d\d/\d\d \d\d:\d\d:\d\d ready\n$`),
	}
	if len(got) != len(want)+3 {
		t.Fatalf("frames %q, want %d", got, len(want)+3)
	}
	for i, re := range want {
		if !re.MatchString(got[i]) {
			t.Errorf("frame %d %q, want it to match %s", i+1, got[i], re)
		}
	}
	// The command's two streams are one pipe, so its lines keep its order.
	if lines := got[len(want):]; !slices.Equal(lines, []string{"one", "two", "three"}) {
		t.Errorf("the command's frames %q, want one, two, three", lines)
	}
}

// checkReadmeSharing: the parent's and the child's messages arrive on the
// parent's one connection, whose handshake named the parent.
func checkReadmeSharing(t *testing.T, p *proctest.Proc, col *logsocktest.FakeCollector) {
	got := col.OneConnMsgs(t, p.Pid())
	slices.Sort(got)
	if want := []string{"from the child", "from the parent"}; !slices.Equal(got, want) {
		t.Errorf("frames %q, want %q", got, want)
	}
}
