package main

// A full disk, made with a 2 MiB tmpfs (mounting needs root: the tests
// skip where it is not permitted, unless LOGSOCK_REQUIRE_TMPFS=1, as CI
// sets it).

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
)

// tmpfsSize is the size of each test's tmpfs.
const tmpfsSize = 2 << 20

// fullDisk mounts a tmpfs of tmpfsSize bytes, unmounted when the test
// ends, and fills it but for free bytes with a file, whose path it
// returns with the directory's.
func fullDisk(t *testing.T, free int) (dir, filler string) {
	t.Helper()
	dir = shortDir(t)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", tmpfsSize)); err != nil {
		if errors.Is(err, syscall.EPERM) && os.Getenv("LOGSOCK_REQUIRE_TMPFS") != "1" {
			t.Skipf("mount -t tmpfs: %v", err)
		}
		t.Fatalf("mount -t tmpfs: %v", err)
	}
	t.Cleanup(func() {
		// A child that another test forks meanwhile holds this process's
		// descriptors, those of files here among them, until its exec
		// closes them (close-on-exec): the mount is busy for that long,
		// which a busy machine stretches (issue 17: EBUSY once, under
		// -race beside CPU hogs). Polled: nothing signals the exec.
		var err error
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(10 * time.Millisecond) {
			err = syscall.Unmount(dir, 0)
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil {
			t.Errorf("umount %s: %v; held by %v", dir, err, holders(dir))
		}
	})
	filler = filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, tmpfsSize-free), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, filler
}

// holders lists the processes that have a file under dir open, or their
// working directory there, as "pid (command)".
func holders(dir string) []string {
	var out []string
	links, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	cwds, _ := filepath.Glob("/proc/[0-9]*/cwd")
	seen := map[string]bool{}
	for _, l := range append(links, cwds...) {
		target, err := os.Readlink(l)
		pid := strings.Split(l, "/")[2]
		if err != nil || seen[pid] || (target != dir && !strings.HasPrefix(target, dir+"/")) {
			continue
		}
		seen[pid] = true
		comm, _ := os.ReadFile("/proc/" + pid + "/comm")
		out = append(out, fmt.Sprintf("%s (%s)", pid, strings.TrimSpace(string(comm))))
	}
	return out
}

// outputLine waits for logsockd's counters of the output at path, which
// it logs at exit, and returns them.
func outputLine(t *testing.T, p *proc, path string) string {
	t.Helper()
	return p.waitLine(t, "logsockd: output "+path+": records=")
}

// checkCounters checks the output's counters at exit against the file:
// records are its lines, bytes its size, and records and dropped together
// the frames the Server delivered. It returns the records dropped.
func checkCounters(t *testing.T, p *proc, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Errorf("%s ends with %q: a torn line", path, b[max(0, len(b)-40):])
	}
	out := outputLine(t, p, path)
	frames := counter(t, p.waitLine(t, "logsockd: server: "), "frames")
	records, dropped := counter(t, out, "records"), counter(t, out, "dropped")
	if lines := bytes.Count(b, []byte{'\n'}); records != lines || counter(t, out, "bytes") != len(b) || records+dropped != frames {
		t.Errorf("%s holds %d lines, %d bytes; the Server delivered %d frames; %s", path, lines, len(b), frames, out)
	}
	return dropped
}

// TestLogsockdFullDisk: the file system of the output fills while a
// client under the Block policy and logsock-cat send; 10 s later a filler
// file is deleted. logsockd says once that it waits and once that it
// writes again, after at least those 10 s; it stops reading meanwhile, so
// that the Block client waits too; then every record of both is in the
// file once, in order, on lines that parse, and the counters match it.
func TestLogsockdFullDisk(t *testing.T) {
	t.Parallel()
	const (
		// Records of lines of about 190 bytes, 1.8 MB together, which fit
		// once the filler is gone. The Block client's alone are more than
		// what can be held between it and the file (its buffer, the
		// socket's, logsockd's 1 MiB): it must wait.
		nBlk, nCat = 8000, 1500
		outage     = 10 * time.Second
	)
	dir, filler := fullDisk(t, 16<<10)
	out := filepath.Join(dir, "out.jsonl")
	sock := filepath.Join(dir, "s")
	p, addr := startLogsockd(t, "-json", "-listen", "unix://"+sock, "-o", out)

	cat := exec.Command(testenv.Program(t, "logsock-cat"), "-addr", addr)
	stdin, err := cat.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var catErr bytes.Buffer
	cat.Stderr = &catErr
	testenv.SetDeathSignal(cat)
	if err := cat.Start(); err != nil {
		t.Fatal(err)
	}
	var catWait error
	catDone := make(chan struct{})
	go func() {
		catWait = cat.Wait()
		close(catDone)
	}()
	t.Cleanup(func() {
		cat.Process.Kill()
		<-catDone
	})
	go func() {
		// logsock-cat reads whatever the collector does, and holds.
		for i := range nCat {
			fmt.Fprintf(stdin, "cat %d %s\n", i, pad)
		}
	}()
	// A small buffer and a WriteTimeout beyond the outage: Log waits for
	// room while logsockd waits for space, and drops nothing.
	blk := startSender(t, "blk", dial(t, addr, &logsock.Config{BufferBytes: 16 << 10, WriteTimeout: 4 * outage}), nBlk, 0)

	p.waitLine(t, "waiting for space")
	time.Sleep(outage) // the outage, not a synchronisation
	held := blk.logged.Load()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	resumed := p.waitLine(t, "writing again, after ")
	<-blk.done
	waitFor(t, p, "every record in the file", func() bool {
		b, _ := os.ReadFile(out)
		return bytes.Count(b, []byte{'\n'}) == nBlk+nCat
	})
	stdin.Close()
	select {
	case <-catDone:
		if catWait != nil {
			t.Fatalf("logsock-cat: %v; stderr:\n%s", catWait, &catErr)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("logsock-cat did not exit; stderr:\n%s", &catErr)
	}
	blk.halt()
	p.sigterm(t, 0)

	if f := blk.failed.Load(); f != 0 {
		t.Errorf("the Block client: %d Log calls failed", f)
	}
	if held >= nBlk {
		t.Errorf("the Block client had logged all %d records when space came back: it never waited", nBlk)
	}
	if m := regexp.MustCompile(`after (\S+) without space$`).FindStringSubmatch(resumed); m == nil {
		t.Errorf("%q: no duration", resumed)
	} else if d, err := time.ParseDuration(m[1]); err != nil || d < outage {
		t.Errorf("%q: want a wait of at least %v", resumed, outage)
	}
	for _, s := range []string{"waiting for space", "writing again"} {
		if l := p.matching(s); len(l) != 1 {
			t.Errorf("%d lines %q, want 1: %q", len(l), s, l)
		}
	}
	if lines := jqLines(t, out); lines != nBlk+nCat {
		t.Errorf("%d lines, want %d", lines, nBlk+nCat)
	}
	seqs := seqMsgs(t, out)
	checkRun(t, "the Block client", seqs["blk"], 0, nBlk-1)
	checkRun(t, "logsock-cat", seqs["cat"], 0, nCat-1)
	if dropped := checkCounters(t, p, out); dropped != 0 {
		t.Errorf("%d records dropped", dropped)
	}
	if w := counter(t, outputLine(t, p, out), "waits"); w != 1 {
		t.Errorf("waits=%d, want 1", w)
	}
	t.Logf("the Block client had logged %d of %d records when space came back; %d bytes in the file; %s", held, nBlk, fileSize(t, out), resumed)
}

// TestLogsockdFullDiskTerm: SIGTERM while logsockd waits for space ends
// it within its drain timeout (5 s; the ceiling here is 10 s), exit
// status 1: it drops and counts what it cannot write, and the file ends
// with a whole line.
func TestLogsockdFullDiskTerm(t *testing.T) {
	t.Parallel()
	dir, _ := fullDisk(t, 64<<10)
	out := filepath.Join(dir, "out.jsonl")
	p, addr := startLogsockd(t, "-json", "-listen", "tcp://127.0.0.1:0", "-o", out)
	startSender(t, "a", dial(t, addr, &logsock.Config{Batching: true, CloseTimeout: time.Millisecond}), 0, 0)
	p.waitLine(t, "waiting for space")

	start := time.Now()
	p.Signal(t, syscall.SIGTERM)
	code := p.exitCode(t)
	took := time.Since(start)
	if code != 1 || took > drainTimeout+5*time.Second {
		t.Errorf("exit status %d after %v; want 1 within the drain timeout, %v", code, took, drainTimeout)
	}
	p.waitLine(t, "when the drain deadline has passed")
	if dropped := checkCounters(t, p, out); dropped == 0 {
		t.Error("nothing dropped: the disk was full")
	}
	jqLines(t, out)
	t.Logf("exited %v after SIGTERM; %s", took.Round(time.Millisecond), outputLine(t, p, out))
}

// TestLogsockdFullDiskExit: with -on-output-error exit, a full disk ends
// logsockd with exit status 1, as before; but the counters are exact (the
// records of the buffer that was written in part count once, as written
// or dropped), and the file ends with a whole line: the record that the
// write cut is cut from the file.
func TestLogsockdFullDiskExit(t *testing.T) {
	t.Parallel()
	dir, _ := fullDisk(t, 64<<10)
	out := filepath.Join(dir, "out.jsonl")
	p, addr := startLogsockd(t, "-json", "-on-output-error", "exit", "-listen", "tcp://127.0.0.1:0", "-o", out)
	startSender(t, "a", dial(t, addr, &logsock.Config{Batching: true, CloseTimeout: time.Millisecond}), 0, 0)
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("exit status %d, want 1; stderr:\n%s", code, p.Stderr)
	}
	if !strings.Contains(p.Stderr.String(), "no space left on device: draining the connections, then exiting") {
		t.Errorf("stderr:\n%s", p.Stderr)
	}
	if dropped := checkCounters(t, p, out); dropped == 0 {
		t.Error("nothing dropped: the disk was full")
	}
	if lines := jqLines(t, out); lines == 0 {
		t.Error("no line written before the disk was full")
	}
	t.Logf("%s", outputLine(t, p, out))
}

// TestOutputFullDiskDeleted: the operator's way out of a full disk,
// deleting the log file, while the output waits for space and the
// handlers wait for it. A SIGHUP's Reopen meanwhile returns without
// waiting for space (the signal loop waits on it); the deletion is
// noticed, the deleted file closed, its space freed, and the record that
// the full disk cut is written again whole to the new file, with every
// one after it. Under -race it checks the wait's locking too.
func TestOutputFullDiskDeleted(t *testing.T) {
	t.Parallel()
	const n = 3000 // 340 KB of lines: 256 KiB fill the disk, and the rest fit once the file is gone
	dir, _ := fullDisk(t, 256<<10)
	path := filepath.Join(dir, "out.jsonl")
	fail := make(chan error, 1)
	o, err := newOutput(outputConfig{path: path, perm: 0o600, delay: time.Millisecond}, newFormatter(true, false), fail)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		rec := tcpRecord("")
		for i := range n {
			rec.Msg = fmt.Appendf(rec.Msg[:0], "r %d %s", i, pad)
			o.record(rec)
		}
	}()
	// The writer's state, which nothing signals: poll it.
	for deadline := time.Now().Add(waitTimeout); !o.Stats().Waiting; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no wait for space: %+v", o.Stats())
		}
	}
	reopened := make(chan error, 1)
	go func() { reopened <- o.Reopen() }()
	select {
	case err := <-reopened:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Reopen waits for space")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-fail:
		t.Fatal(err)
	default:
	}
	seqs := seqMsgs(t, path)["r"]
	if len(seqs) == 0 {
		t.Fatal("nothing in the new file")
	}
	checkRun(t, "the new file", seqs, seqs[0], n-1)
	if st := o.Stats(); st.Records != n || st.Dropped != 0 || st.Waits != 1 || st.Reopens != 2 || st.Waiting {
		t.Errorf("stats %+v, want %d records, none dropped, 1 wait, 2 reopens", st, n)
	}
	t.Logf("the new file holds records %d to %d", seqs[0], n-1)
}

// TestOutputMendFullDisk: a file whose torn last line fills the last page
// of a full disk (as a SIGKILL during a wait for space leaves it) can have
// it neither set aside nor ended with a newline when it is opened; the
// first write ends it, once there is space, so that the records after it
// are whole lines.
func TestOutputMendFullDisk(t *testing.T) {
	t.Parallel()
	const page = 4096
	dir, filler := fullDisk(t, page)
	path := filepath.Join(dir, "out.log")
	frag := "a\n" + strings.Repeat("x", page-2)
	if err := os.WriteFile(path, []byte(frag), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := newOutput(outputConfig{path: path, perm: 0o600, delay: time.Millisecond}, newFormatter(false, false), make(chan error, 1))
	if err != nil {
		t.Fatal(err)
	}
	rec := tcpRecord("next")
	o.record(rec)
	for deadline := time.Now().Add(waitTimeout); !o.Stats().Waiting; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			o.Close()
			t.Fatalf("no wait for space: %+v", o.Stats())
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := frag + "\n" + string(newFormatter(false, false).append(nil, rec)); string(b) != want {
		t.Errorf("the file ends with %q, want %q", b[max(0, len(b)-100):], want[len(want)-100:])
	}
}
