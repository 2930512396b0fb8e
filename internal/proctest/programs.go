package proctest

// The checks that every program's tests make: its command line, and that
// it builds when copied out of the repository.

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/logsock/logsock/internal/testenv"
)

// CheckCommandLine checks that the program name, which users run or copy,
// starts its -h with a synopsis and an example, and refuses a stray
// argument with exit status 2.
func CheckCommandLine(t testing.TB, name string) {
	t.Helper()
	bin := testenv.Program(t, name)
	help := Start(t, bin, "-h")
	help.MustExit(t)
	s := help.Stderr.String()
	if !regexp.MustCompile(`^usage: `+regexp.QuoteMeta(name)+`[ \n]`).MatchString(s) || !strings.Contains(s, "\nexample") {
		t.Errorf("%s -h says %q: want a synopsis, then an example", name, s)
	}
	Start(t, bin, "stray").MustFail(t, 2, name+`: unexpected argument "stray"`)
}

// CheckCopyOut checks that the package in dir imports no package of
// internal/, so that it builds when copied out of the repository. Its
// tests may: they are the repository's, and stay in it.
func CheckCopyOut(t testing.TB, dir string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); strings.Contains(path, "/internal/") || strings.HasPrefix(path, "internal/") {
				t.Errorf("%s imports %s", file, path)
			}
		}
	}
	if checked == 0 {
		t.Errorf("no Go file in %q", dir)
	}
}
