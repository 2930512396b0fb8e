package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logsock/logsock"
)

// The collector test runs its clients in a child process, this program
// started again with childEnv set: the 10,000 connections then cost the
// collector's process one descriptor each, not two, and its memory figures
// hold only the collector's side.
const (
	childEnv   = "LOGSOCK_BENCH_CLIENTS" // the collector's TCP address
	childConns = "LOGSOCK_BENCH_CONNS"
	childSize  = "LOGSOCK_BENCH_SIZE"
	ingestSize = 100
)

type ingestResult struct {
	conns    int
	frames   int     // frames a run
	rate     float64 // median frames/s
	idleHeap float64 // bytes a connection, Go heap + stacks, idle after the handshake
	idleRSS  float64 // bytes a connection, RSS, idle after the handshake
	usedHeap float64 // bytes a connection, Go heap + stacks, idle again after the runs
	err      error
}

func maxConns(rs []ingestResult) *ingestResult {
	var best *ingestResult
	for i := range rs {
		if rs[i].err == nil && (best == nil || rs[i].conns > best.conns) {
			best = &rs[i]
		}
	}
	return best
}

func runCollector(opt options) []ingestResult {
	var res []ingestResult
	for _, conns := range opt.conns {
		r := ingest(opt, conns)
		if r.err != nil {
			progressDone()
			fmt.Fprintf(os.Stderr, "collector, %d connections: %v\n", conns, r.err)
		}
		res = append(res, r)
	}
	progressDone()
	return res
}

// counter counts the frames of each connection, and notes when every
// connection has reached the target of the round.
type counter struct {
	perConn   []paddedCount // by Record.Conn, which counts from 1
	target    atomic.Uint64 // frames a connection, cumulative, that ends the round
	remaining atomic.Int64  // connections below target
	round     atomic.Pointer[round]
	extra     atomic.Uint64 // frames of connection ids out of range (none expected)
}

type paddedCount struct {
	n uint64 // written by the connection's goroutine only
	_ [56]byte
}

type round struct {
	done chan struct{} // closed when the last connection reaches target, after at is set
	at   time.Time
}

// handle is the Server's Handler: a connection's records come from its
// own goroutine, in order, so its count needs no atomic operation.
func (c *counter) handle(rec *logsock.Record) {
	if rec.Conn >= uint64(len(c.perConn)) {
		c.extra.Add(1)
		return
	}
	p := &c.perConn[rec.Conn]
	p.n++
	if p.n == c.target.Load() && c.remaining.Add(-1) == 0 {
		r := c.round.Load()
		r.at = time.Now()
		close(r.done)
	}
}

// countingListener counts the connections accepted. Embedding the
// *net.TCPListener keeps SetDeadline and SyscallConn, which Shutdown uses.
type countingListener struct {
	*net.TCPListener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.TCPListener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

type memSample struct {
	heapStack uint64 // HeapAlloc + StackInuse after a GC
	rss       uint64 // VmRSS
}

func sampleMemory() memSample {
	// Two collections: the first moves what sync.Pools hold (read buffers
	// given back by idle connections) to their victim caches, the second
	// frees it, as a server's steady state would.
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heapStack: ms.HeapAlloc + ms.StackInuse, rss: readRSS()}
}

// readRSS returns VmRSS from /proc/self/status in bytes, 0 where there is
// no such file.
func readRSS() uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func perConn(after, before uint64, conns int) float64 {
	return (float64(after) - float64(before)) / float64(conns)
}

// ingest runs the collector test with conns connections.
func ingest(opt options, conns int) (res ingestResult) {
	res.conns = conns
	per := max(1, opt.ingest/conns)
	res.frames = per * conns
	if need := uint64(conns + 100); fileLimit() < need {
		res.err = fmt.Errorf("open file limit %d, want %d", fileLimit(), need)
		return res
	}

	cnt := &counter{perConn: make([]paddedCount, conns+1)}
	// No connection limit: this measures ingest, and 10,000 clients sit
	// at the default limit, past which a reconnecting client is refused.
	srv := &logsock.Server{Handler: cnt.handle, MaxConns: -1}
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		res.err = err
		return res
	}
	l := &countingListener{TCPListener: tl}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		if err := <-served; !errors.Is(err, logsock.ErrServerClosed) && res.err == nil {
			res.err = err
		}
	}()

	progress("collector: %d connections: opening", conns)
	before := sampleMemory()
	ch, err := startClients(l.Addr().String(), conns)
	if err != nil {
		res.err = err
		return res
	}
	defer func() {
		if err := ch.stop(); err != nil && res.err == nil {
			res.err = err
		}
	}()
	if err := ch.expect("ready", 2*time.Minute); err != nil {
		res.err = err
		return res
	}
	for deadline := time.Now().Add(30 * time.Second); l.accepted.Load() < int64(conns); {
		if time.Now().After(deadline) {
			res.err = fmt.Errorf("accepted %d of %d connections", l.accepted.Load(), conns)
			return res
		}
		time.Sleep(time.Millisecond)
	}
	// The handshakes are in the sockets already: let each connection's
	// goroutine read its own and block for the first frame.
	time.Sleep(500 * time.Millisecond)
	idle := sampleMemory()
	res.idleHeap = perConn(idle.heapStack, before.heapStack, conns)
	res.idleRSS = perConn(idle.rss, before.rss, conns)

	var rates []float64
	for run := range opt.runs {
		progress("collector: %d connections: run %d/%d", conns, run+1, opt.runs)
		rd := &round{done: make(chan struct{})}
		cnt.round.Store(rd)
		cnt.remaining.Store(int64(conns))
		cnt.target.Store(uint64((run + 1) * per))
		runtime.GC()
		start := time.Now()
		if err := ch.send(fmt.Sprintf("send %d", per)); err != nil {
			res.err = err
			return res
		}
		select {
		case <-rd.done:
		case <-time.After(time.Minute):
			res.err = fmt.Errorf("run %d: %d connections still short of %d frames", run+1, cnt.remaining.Load(), (run+1)*per)
			return res
		}
		rates = append(rates, float64(res.frames)/rd.at.Sub(start).Seconds())
		if err := ch.expect("sent", time.Minute); err != nil {
			res.err = err
			return res
		}
	}
	res.rate = median(rates)
	if n := cnt.extra.Load(); n > 0 {
		res.err = fmt.Errorf("%d frames from unexpected connection ids", n)
	}
	used := sampleMemory()
	res.usedHeap = perConn(used.heapStack, before.heapStack, conns)
	return res
}

// clients is the child process that holds the client connections.
type clients struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string // the child's standard output, closed at its end
}

func startClients(addr string, conns int) (*clients, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+addr, childConns+"="+strconv.Itoa(conns), childSize+"="+strconv.Itoa(ingestSize))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &clients{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
	}()
	return c, nil
}

func (c *clients) send(cmd string) error {
	_, err := fmt.Fprintln(c.in, cmd)
	return err
}

func (c *clients) expect(want string, timeout time.Duration) error {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return errors.New("client process ended")
		}
		if line != want {
			return fmt.Errorf("client process said %q, want %q", line, want)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("client process silent for %v, waiting for %q", timeout, want)
	}
}

// stop tells the child to close its connections and exit, and waits for
// it; a child stuck for a minute is killed.
func (c *clients) stop() error {
	t := time.AfterFunc(time.Minute, func() { c.cmd.Process.Kill() })
	defer t.Stop()
	c.send("quit")
	c.in.Close()
	for range c.lines {
	}
	return c.cmd.Wait()
}

// runClients is the child process: it dials LOGSOCK_BENCH_CONNS batching
// LogSockets to the collector, says "ready", then for each line "send K"
// on its input sends K frames on every connection, flushes them, and says
// "sent". On "quit" it closes the connections and returns; at the end of
// its input without "quit" (the parent died) it exits at once, without
// trying to deliver to a collector that has gone with the parent.
func runClients() error {
	addr := os.Getenv(childEnv)
	conns, err1 := strconv.Atoi(os.Getenv(childConns))
	size, err2 := strconv.Atoi(os.Getenv(childSize))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	socks := make([]*logsock.LogSocket, conns)
	cfg := &logsock.Config{Batching: true}
	if err := parallel(conns, 32, func(i int) (err error) {
		socks[i], err = logsock.Dial("tcp", addr, cfg)
		return err
	}); err != nil {
		return err
	}
	defer parallel(conns, 64, func(i int) error { return socks[i].Close() })
	fmt.Println("ready")

	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
			if sc.Text() == "quit" {
				return
			}
		}
		fmt.Fprintln(os.Stderr, "bench clients: input ended without quit")
		os.Exit(1)
	}()

	msg := message(size)
	for cmd := range cmds {
		if cmd == "quit" {
			return nil
		}
		var k int
		if _, err := fmt.Sscanf(cmd, "send %d", &k); err != nil {
			return fmt.Errorf("command %q: %v", cmd, err)
		}
		var wg sync.WaitGroup
		errs := make(chan error, conns)
		for _, ls := range socks {
			wg.Go(func() {
				for range k {
					if err := ls.Log(msg); err != nil {
						errs <- err
						return
					}
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := ls.Flush(ctx); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		fmt.Println("sent")
	}
	return nil
}

// parallel runs f(0) to f(n-1) on up to workers goroutines and returns the
// first error.
func parallel(n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range min(n, workers) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return first
}

func printCollector(w io.Writer, rs []ingestResult) {
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nCollector: a logsock.Server on TCP loopback whose Handler counts frames; batching clients in a child process, %s messages\n", sizeName(ingestSize))
	tw := table(w)
	fmt.Fprintln(tw, "connections\tframes a run\tframes/s\tMB/s\t/ 1 conn\tidle KiB/conn (heap+stacks)\tidle KiB/conn (RSS)\tafter traffic KiB/conn (heap+stacks)\t")
	var one float64
	for _, r := range rs {
		if r.conns == 1 {
			one = r.rate
		}
	}
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%d\t%d\terror: %v\t\t\t\t\t\t\n", r.conns, r.frames, r.err)
			continue
		}
		mem := func(v float64) string {
			if r.conns < 100 {
				return "-" // too few connections to see past the noise
			}
			return fmt.Sprintf("%.2f", v/1024)
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t\n", r.conns, r.frames, rate(r.rate),
			r.rate*ingestSize/1e6, ratio(r.rate, one), mem(r.idleHeap), mem(r.idleRSS), mem(r.usedHeap))
	}
	tw.Flush()
	fmt.Fprintln(w, "Memory: the collector process's growth divided by the connections, after two GCs; idle = open, only the handshake sent;")
	fmt.Fprintln(w, "after traffic = idle again after the runs. Not shown below 100 connections, where noise dominates.")
}
