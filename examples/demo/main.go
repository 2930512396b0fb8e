// Command demo replays, with real processes, the three experiments of the
// article that logsock's format comes from, against a collector of its
// own, and prints what that collector received.
//
//	go run ./examples/demo
//
// Nothing else needs to run: the collector is a logsock.Server in this
// process, on a free port of 127.0.0.1 and on a Unix socket in a temporary
// directory. This process is also the parent of the experiments:
//
//  1. It connects, then "forks": parent and child log on the one
//     connection, whose handshake named only the parent. Go cannot fork
//     without exec, so the child is this program run again, started with
//     LogSocket.Start, which hands it the connection; it adopts it with
//     logsock.FromEnv.
//  2. The collector drops that connection: parent and child each
//     reconnect, each with a handshake of its own pid.
//  3. A goroutine that logs, started before the fork, stays in the
//     parent: the child has only what its own main starts, as a forked
//     process has only the thread that called fork.
//
// Then, if python3 is in PATH, examples/pychild/child.py (built into this
// program) logs on the parent's connection, started with Start: a child in
// another language, under the same frame lock.
//
// On the Unix socket the kernel tells the collector which process wrote
// each frame (SO_PASSCRED, on Linux); over TCP only the message says. The
// demo ends with the count of frames sent and received. It exits 0 when
// every frame arrived, whole, where it was expected; 1 otherwise; 2 for a
// bad command line. Every child has exited when it returns.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/examples/pychild"
)

// waitTimeout bounds each wait for the collector. Every wait is for
// frames already written to a connection, on this machine.
const waitTimeout = 5 * time.Second

const usage = `usage: demo

demo replays the article's three experiments with real processes, against a
collector of its own, and prints what the collector received: for each frame,
its connection, the pid that the connection's handshake named, the process
that wrote it, and the message. It needs nothing else running, takes a
fraction of a second, and exits 0 if every frame arrived whole, 1 otherwise.

example:
  go run ./examples/demo
`

func main() {
	log.SetFlags(0)
	log.SetPrefix("demo: ")
	// A process started by Start finds the connection in its environment:
	// that makes it a child.
	if ls, err := logsock.FromEnv(nil); err == nil {
		os.Exit(child(ls))
	} else if !errors.Is(err, logsock.ErrNotInherited) {
		log.Fatal(err)
	}
	flag.Usage = func() { fmt.Fprint(flag.CommandLine.Output(), usage) }
	flag.Parse()
	if flag.NArg() > 0 {
		log.Printf("unexpected argument %q: demo takes none", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
	os.Exit(run())
}

// run runs the demo and returns the exit status.
func run() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := replay(ctx, os.Stdout); err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

// message is what a process logs: the article's "current pid: N", and
// what in the process logged it, if label says.
func message(pid int, label string) string {
	if label == "" {
		return fmt.Sprintf("current pid: %d", pid)
	}
	return fmt.Sprintf("current pid: %d (%s)", pid, label)
}

// child is main for a child process. For each line of its standard input
// it logs message(its pid, the line) on the inherited connection, and
// answers "ok" once the frame is written, or the error. At the end of its
// input it closes the connection and exits.
func child(ls *logsock.LogSocket) int {
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if err := logNow(ls, message(os.Getpid(), in.Text())); err != nil {
			fmt.Println("error:", err)
		} else {
			fmt.Println("ok")
		}
	}
	if err := ls.Close(); err != nil {
		log.Printf("child %d: %v", os.Getpid(), err)
		return 1
	}
	return 0
}

// logNow logs msg and returns once it is written to the connection, so
// that the collector can be waited for.
func logNow(ls *logsock.LogSocket, msg string) error {
	if err := ls.Log(msg); err != nil {
		return err
	}
	return ls.Sync()
}

func replay(ctx context.Context, w io.Writer) error {
	// Short, for sun_path's 108 bytes.
	dir, err := os.MkdirTemp("", "logsock-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	col, err := startCollector(filepath.Join(dir, "s"))
	if err != nil {
		return err
	}
	defer col.shutdown()
	d := &demo{w: w, col: col, names: map[int32]string{int32(os.Getpid()): "parent"}}
	fmt.Fprintf(w, `logsock demo: the article's three experiments, with real processes
The collector is this process, %d, on tcp://%s and unix://%s.
For each frame it received: its connection, the pid that the connection's handshake
named, the process that wrote the frame (on a Unix socket the kernel says; "-" over
TCP, where only the message tells) and the message.
`, os.Getpid(), col.tcp, col.unix)

	err = d.experiments(ctx, dir)
	col.shutdown() // hands over what has arrived, and ends every connection
	if serr := d.summary(); err == nil {
		err = serr
	}
	return err
}

// demo is the run of the experiments and its transcript.
type demo struct {
	w      io.Writer
	col    *collector
	names  map[int32]string // the role of each process, by pid
	sent   []string         // the messages logged, by all the processes
	shown  int              // the records printed so far
	failed []string         // what went otherwise than the article says
}

func (d *demo) experiments(ctx context.Context, dir string) error {
	// Experiments 1 and 2 on the Unix socket: the kernel tells who wrote
	// each frame, and a write into a connection that the collector has
	// closed fails at once, so that the frame is sent again on a new one.
	// Over TCP such a write succeeds, and its frame is lost, unless the
	// peek before it (every Config.PeekInterval) saw the close.
	ls, err := logsock.Dial("unix", d.col.unix, nil)
	if err != nil {
		return err
	}
	defer ls.Close()
	if err := d.fork(ctx, ls); err != nil {
		return err
	}
	if err := d.goroutine(ctx); err != nil {
		return err
	}
	if err := d.python(ctx, ls, dir); err != nil {
		return err
	}
	return ls.Close()
}

// fork is experiments 1 and 2, on the Unix socket.
func (d *demo) fork(ctx context.Context, ls *logsock.LogSocket) error {
	parent := int32(os.Getpid())
	c, err := d.startChild(ctx, ls)
	if err != nil {
		return err
	}
	defer c.stop()
	fmt.Fprintf(d.w, "\nExperiment 1: a connection shared after a fork (Unix socket)\n"+
		"The parent, %d, connected; it started child %d with the connection (LogSocket.Start:\n"+
		"Go cannot fork), and the two take turns:\n", parent, c.pid)
	for range 2 {
		if err := d.parentLogs(ctx, ls, ""); err != nil {
			return err
		}
		if err := d.childLogs(ctx, c, ""); err != nil {
			return err
		}
	}
	recs := d.show()
	p, ch := message(int(parent), ""), message(int(c.pid), "")
	d.conclude(len(conns(recs)) == 1 && recs[0].pid == parent && slices.Equal(msgs(recs), []string{p, ch, p, ch}) && ownFrames(recs),
		"One connection carries the frames of two processes; its handshake named only the parent.",
		"Not one connection, named by the parent, with frames of two writers.")

	shared := recs[0].conn
	fmt.Fprintf(d.w, "\nExperiment 2: the collector drops the shared connection\n"+
		"The collector closes conn %d; parent and child log again:\n", shared)
	if err := d.col.drop(ctx, shared); err != nil {
		return err
	}
	if err := d.parentLogs(ctx, ls, ""); err != nil {
		return err
	}
	if err := d.childLogs(ctx, c, ""); err != nil {
		return err
	}
	recs = d.show()
	ok := len(conns(recs)) == 2 && !conns(recs)[shared] && slices.Equal(msgs(recs), []string{p, ch}) && ownFrames(recs)
	for _, r := range recs {
		ok = ok && r.msg == message(int(r.pid), "") // each on a connection of its own pid
	}
	d.conclude(ok,
		"Each process reconnected on its own, with a handshake of its own pid.",
		"Not two new connections, each opened by the process that writes on it.")
	return c.stop()
}

// goroutine is experiment 3, over TCP.
func (d *demo) goroutine(ctx context.Context) error {
	ls, err := logsock.Dial("tcp", d.col.tcp, nil)
	if err != nil {
		return err
	}
	defer ls.Close()
	// The article's logging thread: a goroutine started before the fork.
	// It logs when asked, so that the transcript comes in one order.
	ask := make(chan chan error)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(ask)
	wg.Go(func() {
		for done := range ask {
			done <- logNow(ls, message(os.Getpid(), "logging goroutine"))
		}
	})
	fromGoroutine := func() error {
		done := make(chan error)
		ask <- done
		if err := <-done; err != nil {
			return err
		}
		return d.received(ctx, message(os.Getpid(), "logging goroutine"))
	}

	if err := fromGoroutine(); err != nil {
		return err
	}
	c, err := d.startChild(ctx, ls)
	if err != nil {
		return err
	}
	defer c.stop()
	fmt.Fprintf(d.w, "\nExperiment 3: a goroutine that logs, started before the fork (TCP)\n"+
		"The parent connected again and started a goroutine that logs, then child %d;\n"+
		"then the main goroutines of both log, and the parent's goroutine again:\n", c.pid)
	if err := d.parentLogs(ctx, ls, "main goroutine"); err != nil {
		return err
	}
	if err := fromGoroutine(); err != nil {
		return err
	}
	if err := d.childLogs(ctx, c, "main goroutine"); err != nil {
		return err
	}
	recs := d.show()
	fromGo := message(os.Getpid(), "logging goroutine")
	want := []string{fromGo, message(os.Getpid(), "main goroutine"), fromGo, message(int(c.pid), "main goroutine")}
	d.conclude(len(conns(recs)) == 1 && recs[0].pid == int32(os.Getpid()) && slices.Equal(msgs(recs), want),
		"The child logged from its main goroutine only: it starts with none of its parent's\n"+
			"goroutines, as a forked process keeps only the thread that called fork.",
		"Not the parent's frames from two goroutines and the child's from one.")
	if err := c.stop(); err != nil {
		return err
	}
	return ls.Close()
}

// python runs examples/pychild/child.py on ls's connection, if there is
// a python3.
func (d *demo) python(ctx context.Context, ls *logsock.LogSocket, dir string) error {
	fmt.Fprintln(d.w, "\nA child in Python: examples/pychild/child.py on the parent's connection (Unix socket)")
	py, err := exec.LookPath("python3")
	if err != nil {
		fmt.Fprintln(d.w, "Skipped: python3 is not in PATH.")
		return nil
	}
	script := filepath.Join(dir, "child.py")
	if err := os.WriteFile(script, pychild.Script, 0o600); err != nil {
		return err
	}
	sent := []string{"hello from child.py", "로그"}
	cmd := exec.CommandContext(ctx, py, append([]string{script}, sent...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := ls.Start(cmd); err != nil {
		return err
	}
	pid := int32(cmd.Process.Pid)
	d.names[pid] = "child.py"
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%s: %v: %s", py, err, bytes.TrimSpace(out.Bytes()))
	}
	fmt.Fprintf(d.w, "The parent started python3, %d, with Start; it logged two messages under the frame lock:\n", pid)
	for _, m := range sent {
		if err := d.received(ctx, m); err != nil {
			return err
		}
	}
	recs := d.show()
	ok := len(conns(recs)) == 1 && slices.Equal(msgs(recs), sent)
	for _, r := range recs {
		ok = ok && r.pid == int32(os.Getpid()) && (r.writer == 0 || r.writer == pid)
	}
	d.conclude(ok,
		"Its frames are on the parent's connection; their lengths count bytes (\"로그\" is 2\n"+
			"characters, 6 bytes), not characters as the article's client does.",
		"Not the child's frames on the parent's connection.")
	return nil
}

// parentLogs logs from this process, and waits until the collector has
// received it.
func (d *demo) parentLogs(ctx context.Context, ls *logsock.LogSocket, label string) error {
	msg := message(os.Getpid(), label)
	if err := logNow(ls, msg); err != nil {
		return err
	}
	return d.received(ctx, msg)
}

// childLogs has c log, and waits until the collector has received it.
func (d *demo) childLogs(ctx context.Context, c *goChild, label string) error {
	if err := c.log(label); err != nil {
		return err
	}
	return d.received(ctx, message(int(c.pid), label))
}

// received counts msg as sent, and waits until the collector has received
// as many frames as were sent.
func (d *demo) received(ctx context.Context, msg string) error {
	d.sent = append(d.sent, msg)
	return d.col.wait(ctx, fmt.Sprintf("frame %d, %q", len(d.sent), msg), func() bool {
		return len(d.col.recs) >= len(d.sent)
	})
}

// show prints the records received since the last call, and returns them.
func (d *demo) show() []record {
	recs := d.col.records()[d.shown:]
	d.shown += len(recs)
	tw := tabwriter.NewWriter(d.w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  conn\thandshake\twriter\tmessage")
	for _, r := range recs {
		writer := "-"
		if r.writer != 0 {
			writer = d.name(r.writer)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%q\n", r.conn, d.name(r.pid), writer, r.msg)
	}
	tw.Flush()
	return recs
}

func (d *demo) name(pid int32) string {
	if role, ok := d.names[pid]; ok {
		return fmt.Sprintf("%d %s", pid, role)
	}
	return fmt.Sprint(pid)
}

// conclude prints what the records show: yes if ok holds, as the article
// says; otherwise no, which fails the demo.
func (d *demo) conclude(ok bool, yes, no string) {
	if ok {
		fmt.Fprintln(d.w, yes)
		return
	}
	fmt.Fprintln(d.w, "UNEXPECTED:", no)
	d.failed = append(d.failed, no)
}

// summary prints what was sent and received, and returns an error if a
// frame was lost or torn, or an experiment went otherwise.
func (d *demo) summary() error {
	recs := d.col.records()
	want := map[string]int{}
	for _, m := range d.sent {
		want[m]++
	}
	received, torn := 0, 0
	for _, r := range recs {
		switch {
		case r.flags&logsock.FlagMixedWriters != 0 || want[r.msg] == 0:
			torn++ // spliced from the bytes of several frames, or never sent
		default:
			want[r.msg]--
			received++
		}
	}
	torn += d.col.brokenConns()
	fmt.Fprintf(d.w, "\nSummary: %d processes sent %d frames on %d connections.\n"+
		"The collector received %d: %d lost, %d torn.\n", len(d.names), len(d.sent), d.col.srv.Stats().Accepted, len(recs), len(d.sent)-received, torn)
	if lost := len(d.sent) - received; lost > 0 || torn > 0 || len(d.failed) > 0 {
		return fmt.Errorf("%d frames lost, %d torn, %d experiments unlike the article's", lost, torn, len(d.failed))
	}
	return nil
}

func conns(recs []record) map[uint64]bool {
	m := map[uint64]bool{}
	for _, r := range recs {
		m[r.conn] = true
	}
	return m
}

func msgs(recs []record) []string {
	var m []string
	for _, r := range recs {
		m = append(m, r.msg)
	}
	return m
}

// ownFrames reports whether the kernel, where it tells the writer of a
// frame, names the process that the message names.
func ownFrames(recs []record) bool {
	for _, r := range recs {
		if r.writer != 0 && r.msg != message(int(r.writer), "") {
			return false
		}
	}
	return true
}

// goChild is a child process, this program run again, that shares a
// connection and logs when told to.
type goChild struct {
	pid  int32
	in   io.WriteCloser
	out  *bufio.Scanner
	stop func() error // ends its input, and waits for it to exit; idempotent
}

func (d *demo) startChild(ctx context.Context, ls *logsock.LogSocket) (*goChild, error) {
	// os.Executable, not os.Args[0]: the same binary whatever PATH and the
	// working directory say.
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := ls.Start(cmd); err != nil {
		return nil, err
	}
	c := &goChild{pid: int32(cmd.Process.Pid), in: in, out: bufio.NewScanner(out)}
	c.stop = sync.OnceValue(func() error {
		in.Close()
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("child %d: %w", c.pid, err)
		}
		return nil
	})
	d.names[c.pid] = "child"
	return c, nil
}

// log has the child log message(its pid, label), and returns once the
// frame is written.
func (c *goChild) log(label string) error {
	if _, err := fmt.Fprintln(c.in, label); err != nil {
		return fmt.Errorf("child %d: %w", c.pid, err)
	}
	if !c.out.Scan() {
		return fmt.Errorf("child %d: no answer (%v)", c.pid, c.out.Err())
	}
	if answer := c.out.Text(); answer != "ok" {
		return fmt.Errorf("child %d: %s", c.pid, answer)
	}
	return nil
}

// record is what the collector keeps of a frame.
type record struct {
	conn        uint64
	pid, writer int32 // the handshake's; the writer's, 0 if unknown
	flags       logsock.Flags
	msg         string
}

// collector is the demo's collector: a logsock.Server that keeps what it
// receives, and the connections it accepts, to drop one (experiment 2).
type collector struct {
	srv       logsock.Server
	tcp, unix string        // the addresses to dial
	changed   chan struct{} // receives a value after each record or end, if there is room
	serving   sync.WaitGroup
	stop      func() // shuts the Server down; idempotent

	mu    sync.Mutex // guards the fields below
	recs  []record
	ends  map[uint64]logsock.ConnInfo
	conns []net.Conn // accepted, in order
}

// startCollector serves on 127.0.0.1 and on the Unix socket path.
func startCollector(path string) (*collector, error) {
	c := &collector{changed: make(chan struct{}, 1), ends: map[uint64]logsock.ConnInfo{}}
	c.srv = logsock.Server{Handler: c.record, ConnClosed: c.closed}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ul, err := net.Listen("unix", path)
	if err != nil {
		tl.Close()
		return nil, err
	}
	c.tcp, c.unix = tl.Addr().String(), path
	for _, l := range []net.Listener{tl, ul} {
		k := &keepConns{listener: l.(listener), c: c, ready: make(chan struct{})}
		c.serving.Go(func() { c.srv.Serve(k) })
		// Serve sets SO_PASSCRED on a Unix listener before its first
		// accept; a socket connected before that would carry no writer
		// pid for the frames sent before the Server sets it on the socket.
		<-k.ready
	}
	c.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c.srv.Shutdown(ctx)
		c.serving.Wait()
	})
	return c, nil
}

func (c *collector) shutdown() { c.stop() }

func (c *collector) record(rec *logsock.Record) {
	c.mu.Lock()
	c.recs = append(c.recs, record{rec.Conn, rec.Pid, rec.WriterPid, rec.Flags, string(rec.Msg)})
	c.mu.Unlock()
	c.signal()
}

func (c *collector) closed(info logsock.ConnInfo, _ error) {
	c.mu.Lock()
	c.ends[info.Conn] = info
	c.mu.Unlock()
	c.signal()
}

func (c *collector) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// wait waits until cond, called with c.mu held, is true.
func (c *collector) wait(ctx context.Context, what string, cond func() bool) error {
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-c.changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("the collector did not receive %s within %v", what, waitTimeout)
		}
	}
}

func (c *collector) records() []record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]record(nil), c.recs...)
}

// drop closes, under the Server, every connection accepted so far, as a
// collector that goes away would, and waits until the Server has seen the
// end of connection id. In experiment 2 the shared connection, id, is the
// only one open. (The Server numbers the connections of both listeners in
// one sequence, so the net.Conn of an id is not known for sure.)
func (c *collector) drop(ctx context.Context, id uint64) error {
	c.mu.Lock()
	for _, nc := range c.conns {
		// The frames sent have all been read: this cuts the connection
		// between two frames.
		nc.Close()
	}
	c.conns = nil
	c.mu.Unlock()
	return c.wait(ctx, fmt.Sprintf("the end of conn %d", id), func() bool {
		_, ok := c.ends[id]
		return ok
	})
}

// brokenConns counts the connections that ended inside a frame or with a
// frame header that no writer sent whole.
func (c *collector) brokenConns() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, info := range c.ends {
		switch info.Reason {
		case logsock.ReasonTruncated, logsock.ReasonBadLength, logsock.ReasonFrameTooLarge:
			n++
		}
	}
	return n
}

// listener is what the Server needs of a listener to set SO_PASSCRED on
// it and to drain it at Shutdown: TCP and Unix listeners have both.
type listener interface {
	net.Listener
	syscall.Conn
}

// keepConns gives its collector each connection it accepts.
type keepConns struct {
	listener
	c     *collector
	ready chan struct{} // closed at the first call of Accept
	once  sync.Once
}

func (k *keepConns) Accept() (net.Conn, error) {
	k.once.Do(func() { close(k.ready) })
	nc, err := k.listener.Accept()
	if err == nil {
		k.c.mu.Lock()
		k.c.conns = append(k.c.conns, nc)
		k.c.mu.Unlock()
	}
	return nc, err
}
