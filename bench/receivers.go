package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/rsyslogtest"
	"github.com/logsock/logsock/internal/testenv"
)

// The receivers test (issues 12 and 20): the same work, -daemon-n
// messages of 100 B from one client over TCP loopback, into rsyslogd, into
// syslog-ng and into the logsock receiver program, each writing one line a
// record to a file in the bench's temporary directory. A measure runs from
// the client's dial to the moment the file holds all the lines; each
// starts a fresh receiver with an empty file.
//
// rsyslogd is Debian's, started by internal/rsyslogtest (imptcp,
// octet-counted RFC 5424, the JSON template, omfile): the bench module
// lives under the library's import path, so Go lets it import the
// library's internal packages, and both use one way to run rsyslogd.
// syslog-ng (bench/syslogng.go) does the same work. The two daemons' client
// is the fastest one: frames formatted before the clock starts, written
// through a 64 KiB bufio.Writer, so that the daemon is the bottleneck. The
// logsock receiver is fed by one batching LogSocket, as a program would
// log, and, in "receiver logsockd json v2", by one with acknowledgements
// (issue 19).

const receiverSize = 100

// The names of the syslog daemons' measures.
const (
	rsyslogdName = "receiver rsyslogd json"
	syslogNGName = "receiver syslog-ng json"
	// logsockd fed by a client with acknowledgements: protocol v2.
	logsockdV2Name = "receiver logsockd json v2"
)

// logsockReceiver is the logsock receiver program, cmd/logsockd built from
// this repository, and how to make it listen on listen (as -listen takes
// it) and write to out.
var logsockReceiver = struct {
	pkg  string
	args func(listen, out string, json bool) []string
}{
	pkg: "cmd/logsockd",
	args: func(listen, out string, json bool) []string {
		args := []string{"-listen", listen, "-o", out}
		if json {
			args = append(args, "-json")
		}
		return args
	},
}

type receiverContender struct {
	name string
	// start starts the receiver with its files in dir, and returns its
	// address, its output file and a function that stops it.
	start func(ctx context.Context, env *receiverEnv, dir string) (addr, out string, stop func() error, err error)
	// send sends n messages msg over TCP to addr.
	send func(addr string, n int, msg string) error
	// skip, if not empty, says why the contender cannot run here.
	skip func() string
}

var receiverContenders = []receiverContender{
	{name: rsyslogdName, start: startRsyslogd, send: sendSyslog, skip: func() string {
		if _, _, err := rsyslogtest.Lookup(); err != nil {
			return err.Error()
		}
		return ""
	}},
	{name: syslogNGName, start: startSyslogNG, send: sendSyslog, skip: func() string {
		if _, err := lookupSyslogNG(); err != nil {
			return err.Error()
		}
		return ""
	}},
	{name: "receiver logsockd json", start: startLogsockReceiver(true), send: sendLogsock},
	{name: "receiver logsockd text", start: startLogsockReceiver(false), send: sendLogsock},
	// The same, its client with Config.Acks (issue 19).
	{name: logsockdV2Name, start: startLogsockReceiver(true), send: sendLogsockAcks},
}

// receiverEnv is what the measures share: the built logsock receiver.
type receiverEnv struct {
	dir string // the bench's temporary directory
	exe string // the logsock receiver program
}

type receiverResult struct {
	name    string
	rates   []float64 // records/s, one a run
	cpus    []float64 // the receiver's CPU time a record, in µs, one a run
	skipped string
	err     error
}

func (r receiverResult) rate() float64 { return median(slices.Clone(r.rates)) }

// isLogsock reports whether r is a measure of the logsock receiver, which
// must be built first.
func isLogsock(r receiverResult) bool { return strings.Contains(r.name, "logsock") }

func runReceivers(opt options) []receiverResult {
	var res []receiverResult
	var chosen []receiverContender
	for _, c := range receiverContenders {
		if !opt.only.MatchString(c.name) {
			continue
		}
		r := receiverResult{name: c.name}
		if c.skip != nil {
			r.skipped = c.skip()
		}
		res = append(res, r)
		chosen = append(chosen, c)
	}
	if len(chosen) == 0 {
		return nil
	}
	env := &receiverEnv{dir: opt.tempDir}
	if slices.ContainsFunc(res, isLogsock) {
		progress("receivers: building %s", logsockReceiver.pkg)
		exe, err := buildReceiver(opt.tempDir)
		for i := range res {
			if err != nil && isLogsock(res[i]) {
				res[i].err = err
			}
		}
		env.exe = exe
	}
	msg := strings.Repeat("m", receiverSize)
	for run := range opt.runs {
		for i, c := range chosen {
			r := &res[i]
			if r.skipped != "" || r.err != nil {
				continue
			}
			progress("%s: run %d/%d", c.name, run+1, opt.runs)
			rate, cpu, err := measureReceiver(c, env, opt.daemonN, msg)
			if err != nil {
				r.err = err
				continue
			}
			r.rates = append(r.rates, rate)
			r.cpus = append(r.cpus, cpu.Seconds()*1e6/float64(opt.daemonN))
		}
	}
	progressDone()
	return res
}

// buildReceiver builds the logsock receiver program into dir, from the
// logsock module that this one requires (the repository, by its replace
// directive). testenv.ModuleRoot would find this module, not that one.
func buildReceiver(dir string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	goTool, err := testenv.GoTool()
	if err != nil {
		return "", err
	}
	root, err := exec.CommandContext(ctx, goTool, "list", "-m", "-f", "{{.Dir}}", "github.com/logsock/logsock").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m github.com/logsock/logsock: %w", err)
	}
	if err := testenv.Build(ctx, strings.TrimSpace(string(root)), dir, logsockReceiver.pkg); err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(logsockReceiver.pkg)), nil
}

// measureReceiver runs one measure of c: n messages msg. It returns the
// rate, and the CPU time, user and system, that the receiver's process
// took from its start to its end: on a shared machine, a rate depends on
// what else runs, the CPU a record much less.
func measureReceiver(c receiverContender, env *receiverEnv, n int, msg string) (float64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(env.dir, "recv")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	cpu0 := childrenCPU()
	addr, out, stop, err := c.start(ctx, env, dir)
	if err != nil {
		return 0, 0, err
	}
	defer stop()

	start := time.Now()
	var sendErr error // set before sent is closed
	sent := make(chan struct{})
	go func() {
		sendErr = c.send(addr, n, msg)
		close(sent)
	}()
	done, err := waitLines(ctx, out, n, sent, func() error { return sendErr })
	if err != nil {
		stop() // a client blocked on a stuck receiver fails once it is gone
	}
	select {
	case <-sent:
	case <-time.After(time.Minute):
		return 0, 0, fmt.Errorf("client still sending a minute after the receiver's end (%v)", err)
	}
	if err := cmp.Or(err, sendErr); err != nil {
		return 0, 0, err
	}
	if err := stop(); err != nil {
		return 0, 0, err
	}
	// stop has waited for the receiver, the one child that ended since
	// cpu0 (the clients run in this process).
	return float64(n) / done.Sub(start).Seconds(), childrenCPU() - cpu0, nil
}

// childrenCPU returns the CPU time, user and system, of this process's
// children that have ended and been waited for.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// waitLines polls the file at path every millisecond, counts the lines in
// what has been added since the last poll, and returns the time at which
// it saw n lines. Polling: the receiver is another process, which tells
// nobody when it writes. Counting costs about 30 ms of CPU for 1M lines of
// rsyslogd (178 MB) here, spread over the run, the same a byte for every
// receiver. The file's size alone could tell, as every line has one
// length here (rsyslogd writes the client's time, logsockd 9 fraction
// digits and one connection's fields), but counting does not depend on
// it. A marker in the last message cannot: rsyslogd's worker threads
// write some lines out of order (400-650 of 1M in 4 runs). It gives up
// when ctx ends, or when the client, once sent is closed, reports an
// error.
func waitLines(ctx context.Context, path string, n int, sent <-chan struct{}, sendErr func() error) (time.Time, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var off int64 // bytes counted
	lines := 0
	buf := make([]byte, 1<<20)
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("%s: %d of %d lines: %w", path, lines, n, ctx.Err())
		case <-sent:
			if err := sendErr(); err != nil {
				return time.Time{}, err
			}
			sent = nil // the client is done; the receiver may not be
		case <-tick.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
				continue // rsyslogd creates it with the first message
			} else if err != nil {
				return time.Time{}, err
			}
		}
		fi, err := f.Stat()
		if err != nil {
			return time.Time{}, err
		}
		now := time.Now()
		for off < fi.Size() {
			k, err := f.ReadAt(buf[:min(int64(len(buf)), fi.Size()-off)], off)
			lines += bytes.Count(buf[:k], []byte{'\n'})
			off += int64(k)
			if err != nil {
				return time.Time{}, err
			}
		}
		switch {
		case lines == n:
			return now, nil
		case lines > n:
			return time.Time{}, fmt.Errorf("%s: %d lines, want %d", path, lines, n)
		}
	}
}

func startRsyslogd(ctx context.Context, _ *receiverEnv, dir string) (string, string, func() error, error) {
	s, err := rsyslogtest.Start(ctx, dir, rsyslogtest.JSON)
	if err != nil {
		return "", "", nil, err
	}
	return s.Addr(), s.Output(), s.Close, nil
}

// sendSyslog sends n octet-counted RFC 5424 frames (RFC 6587) carrying
// msg, formatted once and written through a 64 KiB bufio.Writer.
func sendSyslog(addr string, n int, msg string) error {
	// As a forwarder sends a record: its time, host, app and pid.
	rec := fmt.Sprintf("<14>1 2026-11-29T15:04:05.123456Z bench logsock %d - - %s", os.Getpid(), msg)
	frame := []byte(strconv.Itoa(len(rec)) + " " + rec)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	w := bufio.NewWriterSize(c, 64<<10)
	for range n {
		w.Write(frame) // a write error is kept, and returned by Flush
	}
	return w.Flush()
}

// sendLogsock sends the messages with one batching LogSocket: Log each,
// Flush, Close.
func sendLogsock(addr string, n int, msg string) error {
	return sendLogsockConfig(addr, n, msg, &logsock.Config{Batching: true})
}

// sendLogsockAcks is sendLogsock with acknowledgements (issue 19): Flush
// returns once logsockd has acknowledged every record.
func sendLogsockAcks(addr string, n int, msg string) error {
	return sendLogsockConfig(addr, n, msg, &logsock.Config{Batching: true, Acks: true})
}

func sendLogsockConfig(addr string, n int, msg string, cfg *logsock.Config) error {
	ls, err := logsock.New("tcp", addr, cfg)
	if err != nil {
		return err
	}
	for range n {
		if err := ls.Log(msg); err != nil {
			ls.Close()
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(ls.Flush(ctx), ls.Close())
}

// startLogsockReceiver returns the start function of the logsock receiver
// in JSON or in text mode, on TCP.
func startLogsockReceiver(json bool) func(context.Context, *receiverEnv, string) (string, string, func() error, error) {
	return func(ctx context.Context, env *receiverEnv, dir string) (string, string, func() error, error) {
		_, addr, out, stop, err := startLogsockd(ctx, env, dir, "tcp", json)
		return addr, out, stop, err
	}
}

// startLogsockd starts the logsock receiver, writing to a file in dir, in
// JSON or in text mode, listening on TCP loopback or on a Unix socket in
// dir. It returns the network and address to dial, the file, and a
// function that stops the receiver.
func startLogsockd(ctx context.Context, env *receiverEnv, dir, network string, json bool) (_, _, _ string, _ func() error, _ error) {
	out := filepath.Join(dir, "out.log")
	// Port 0: logsockd binds a port of the kernel's choosing, and says
	// which.
	listen := "tcp://127.0.0.1:0"
	if network == "unix" {
		listen = "unix://" + filepath.Join(dir, "l.sock")
	}
	cmd := exec.Command(env.exe, logsockReceiver.args(listen, out, json)...)
	l, stop, err := startWatched(ctx, cmd, logsockReceiver.pkg, "logsockd: listening on ")
	if err != nil {
		return "", "", "", nil, err
	}
	addr, ok := strings.CutPrefix(l, network+"://")
	if !ok {
		stop()
		return "", "", "", nil, fmt.Errorf("%s listens on %s, want %s://", logsockReceiver.pkg, l, network)
	}
	return network, addr, out, stop, nil
}

// startWatched starts the receiver program cmd and waits for the first
// line of its standard error that holds marker: it returns the rest of
// that line, and a function that kills the program and waits for it,
// which returns an error if the program had exited unasked. name names
// the program in errors.
func startWatched(ctx context.Context, cmd *exec.Cmd, name, marker string) (string, func() error, error) {
	found := make(chan string, 1)
	stderr := &stderrWatch{marker: marker, found: found}
	cmd.Stderr = stderr // the receivers note each connection there
	testenv.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		select {
		case err := <-exited:
			return fmt.Errorf("%s exited unasked: %v\n%s", name, err, stderr.text)
		default:
		}
		cmd.Process.Kill()
		<-exited
		return nil
	}
	select {
	case l := <-found:
		return l, stop, nil
	case err := <-exited:
		stopped = true
		return "", nil, fmt.Errorf("%s exited before it was ready: %v\n%s", name, err, stderr.text)
	case <-ctx.Done():
		stop()
		return "", nil, fmt.Errorf("%s not ready: %w\n%s", name, ctx.Err(), stderr.text)
	}
}

// stderrWatch is a receiver's stderr. It keeps the text, to be read once
// Wait has returned, and sends to found what follows marker on the
// first line that holds it. exec.Cmd calls Write from one goroutine.
type stderrWatch struct {
	text     []byte
	searched int // the bytes of text already searched for the line
	marker   string
	found    chan string // buffered; nil once it got the line
}

func (w *stderrWatch) Write(p []byte) (int, error) {
	w.text = append(w.text, p...)
	for w.found != nil {
		i := bytes.IndexByte(w.text[w.searched:], '\n')
		if i < 0 {
			break
		}
		line := string(w.text[w.searched : w.searched+i])
		w.searched += i + 1
		if _, rest, ok := strings.Cut(line, w.marker); ok {
			w.found <- rest
			w.found = nil
		}
	}
	return len(p), nil
}

func printReceivers(w io.Writer, rs []receiverResult, n int) {
	if len(rs) == 0 {
		return
	}
	rsyslogVersion, syslogNGVersion := "not found", "not found"
	if _, v, err := rsyslogtest.Lookup(); err == nil {
		rsyslogVersion = v
	}
	if v, err := lookupSyslogNG(); err == nil {
		syslogNGVersion = v.version
	}
	t := syslogNGTuning
	fmt.Fprintf(w, "\nReceivers: %d messages of %s from one client over TCP loopback, each receiver writing a line a record to a file,\n", n, sizeName(receiverSize))
	fmt.Fprintf(w, "from the client's dial to the last line in the file; rsyslogd %s (imptcp, octet-counted RFC 5424, JSON template, omfile),\n", rsyslogVersion)
	fmt.Fprintf(w, "syslog-ng %s (syslog() source, octet-counted RFC 5424, format-json template, file(), flow-control; log-iw-size %d over max-connections %d,\n", syslogNGVersion, t.iwSize, t.maxConns)
	fmt.Fprintf(w, "log-fetch-limit %d, log-fifo-size %d, flush-lines %d), logsock: %s fed by one batching LogSocket (v2: with Config.Acks)\n", t.fetchLimit, t.fifoSize, t.flushLines, logsockReceiver.pkg)
	rsyslog := findReceiver(rs, rsyslogdName)
	anchor, anchorRate := fasterAnchor(rs)
	tw := table(w)
	fmt.Fprintln(tw, "receiver\trecords/s\tMB/s\t/ rsyslogd\t/ faster anchor\tCPU µs/record\truns\t")
	for _, r := range rs {
		switch {
		case r.skipped != "":
			fmt.Fprintf(tw, "%s\tskipped: %s\t\t\t\t\t\t\n", r.name, r.skipped)
		case r.err != nil:
			fmt.Fprintf(tw, "%s\terror: %v\t\t\t\t\t\t\n", r.name, r.err)
		default:
			var runs []string
			for _, v := range r.rates {
				runs = append(runs, rate(v))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%.2f\t%s\t\n", r.name, rate(r.rate()), r.rate()*receiverSize/1e6,
				ratio(r.rate(), rsyslog), ratio(r.rate(), anchorRate), median(slices.Clone(r.cpus)), strings.Join(runs, " "))
		}
	}
	tw.Flush()
	if anchor != "" {
		fmt.Fprintf(w, "faster anchor: the faster of rsyslogd and syslog-ng in this run, %s\n", strings.TrimPrefix(anchor, "receiver "))
	}
}

func findReceiver(rs []receiverResult, name string) float64 {
	for _, r := range rs {
		if r.name == name && r.err == nil && r.skipped == "" {
			return r.rate()
		}
	}
	return 0
}

// fasterAnchor returns the faster of the two syslog daemons that the
// logsock receiver is measured against (issue 20), its name and rate, or
// the one that was measured; "" and 0 if neither was.
func fasterAnchor(rs []receiverResult) (string, float64) {
	name, best := "", 0.0
	for _, n := range []string{rsyslogdName, syslogNGName} {
		if v := findReceiver(rs, n); v > best {
			name, best = n, v
		}
	}
	return name, best
}
