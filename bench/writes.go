package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/logsock/logsock"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// A contender is one way of sending log messages to a collector.
type contender struct {
	name    string
	lines   bool // newline-terminated records (syslog, zap): the reader counts lines, not bytes
	tcpOnly bool
	open    func(network, addr, msg string, goroutines int) (*session, error)
}

// A session is a contender's connection, ready to send msg.
type session struct {
	log   func() error // sends msg once; safe for the session's goroutines
	flush func() error // after the last message: pushes out what is buffered; may be nil
	close func() error
	conn  net.Conn // the raw connection, where there is one
}

var contenders = []contender{
	{name: "logsock direct", open: openLogsock(nil, false)},
	{name: "logsock batching", open: openLogsock(&logsock.Config{Batching: true}, false)},
	{name: "logsock shared direct", open: openLogsock(nil, true)},
	{name: "logsock shared batching", open: openLogsock(&logsock.Config{Batching: true}, true)},
	{name: "raw write", open: openRawWrite},
	// Not a goal's baseline: what the kernel's coalescing gives the same
	// loop, for the choice of the direct mode's default (issue 5).
	{name: "raw write, Nagle on", tcpOnly: true, open: openRawWriteNagle},
	{name: "raw bufio", open: openRawBufio},
	{name: "article 2 writes", open: openArticle},
	{name: "log/syslog", lines: true, open: openSyslog},
	{name: "zap buffered", lines: true, open: openZap},
}

const flushTimeout = 30 * time.Second

// openLogsock dials a LogSocket with cfg. If shared, the connection is
// first passed to a second LogSocket in this process (SendConn on one end
// of a socket pair, ReceiveConn on the other), which makes it shared: from
// then on every frame, or every batch, is written under the cross-process
// lock. The messages go through the first LogSocket.
func openLogsock(cfg *logsock.Config, shared bool) func(network, addr, msg string, _ int) (*session, error) {
	return func(network, addr, msg string, _ int) (*session, error) {
		ls, err := logsock.Dial(network, addr, cfg)
		if err != nil {
			return nil, err
		}
		s := &session{log: func() error { return ls.Log(msg) }, close: ls.Close}
		if cfg != nil && cfg.Batching {
			s.flush = func() error {
				ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
				defer cancel()
				return ls.Flush(ctx)
			}
		}
		if shared {
			peer, err := shareInProcess(ls)
			if err != nil {
				ls.Close()
				return nil, err
			}
			// The sender first: closing the peer's lock file would drop
			// this process's POSIX locks on it.
			s.close = func() error { return errors.Join(ls.Close(), peer.Close()) }
		}
		return s, nil
	}
}

// shareInProcess passes ls's connection over a Unix socket pair and
// returns the LogSocket that adopts it.
func shareInProcess(ls *logsock.LogSocket) (*logsock.LogSocket, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	a, errA := fileUnixConn(fds[0])
	b, errB := fileUnixConn(fds[1])
	defer func() {
		for _, c := range []*net.UnixConn{a, b} {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err := errors.Join(errA, errB); err != nil {
		return nil, err
	}
	if err := ls.SendConn(a); err != nil {
		return nil, err
	}
	return logsock.ReceiveConn(b, nil)
}

// fileUnixConn makes a *net.UnixConn of fd, and closes fd.
func fileUnixConn(fd int) (*net.UnixConn, error) {
	f := os.NewFile(uintptr(fd), "socketpair")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("socketpair gave a %T", c)
	}
	return uc, nil
}

// dialRaw dials, sends the handshake as logsock does, and returns the
// connection and msg as a prebuilt frame.
func dialRaw(network, addr, msg string) (net.Conn, []byte, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Write(appendHandshake(nil, int32(os.Getpid()))); err != nil {
		c.Close()
		return nil, nil, err
	}
	return c, appendFrame(nil, []byte(msg)), nil
}

// locked serializes f when more than one goroutine calls it.
func locked(goroutines int, f func() error) func() error {
	if goroutines == 1 {
		return f
	}
	var mu sync.Mutex
	return func() error {
		mu.Lock()
		defer mu.Unlock()
		return f()
	}
}

// openRawWrite is the floor of an unbatched client: one write a prebuilt
// frame. net.Conn serializes concurrent writes itself.
func openRawWrite(network, addr, msg string, _ int) (*session, error) {
	c, frame, err := dialRaw(network, addr, msg)
	if err != nil {
		return nil, err
	}
	return &session{
		log:   func() error { _, err := c.Write(frame); return err },
		close: c.Close,
		conn:  c,
	}, nil
}

// openRawWriteNagle is openRawWrite with Nagle's algorithm left on, as the
// article's Python client has it: Go sets TCP_NODELAY on every TCP
// connection.
func openRawWriteNagle(network, addr, msg string, goroutines int) (*session, error) {
	s, err := openRawWrite(network, addr, msg, goroutines)
	if err != nil {
		return nil, err
	}
	return s, s.conn.(*net.TCPConn).SetNoDelay(false)
}

// openRawBufio is the floor of a batching client: frames appended to a
// 64 KiB bufio.Writer (under a mutex when goroutines share it), flushed at
// the end.
func openRawBufio(network, addr, msg string, goroutines int) (*session, error) {
	c, frame, err := dialRaw(network, addr, msg)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(c, 64<<10)
	return &session{
		log:   locked(goroutines, func() error { _, err := bw.Write(frame); return err }),
		flush: bw.Flush,
		close: c.Close,
	}, nil
}

// openArticle is the article's Python client: the header and the body in
// two writes. Its goroutines take a mutex for the pair, which the article
// does not: without it they tear each other's frames.
func openArticle(network, addr, msg string, goroutines int) (*session, error) {
	c, frame, err := dialRaw(network, addr, msg)
	if err != nil {
		return nil, err
	}
	hdr, body := frame[:headerLen], frame[headerLen:]
	return &session{
		log: locked(goroutines, func() error {
			if _, err := c.Write(hdr); err != nil {
				return err
			}
			_, err := c.Write(body)
			return err
		}),
		close: c.Close,
	}, nil
}

// openSyslog is Go's log/syslog on a stream connection: one write a
// newline-terminated record.
func openSyslog(network, addr, msg string, _ int) (*session, error) {
	w, err := syslog.Dial(network, addr, syslog.LOG_INFO, "bench")
	if err != nil {
		return nil, err
	}
	return &session{log: func() error { return w.Info(msg) }, close: w.Close}, nil
}

// openZap is zap's JSON encoder over a BufferedWriteSyncer (defaults:
// 256 KiB, flushed every 30 s) on the connection.
func openZap(network, addr, msg string, _ int) (*session, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	ws := &zapcore.BufferedWriteSyncer{WS: zapcore.AddSync(c)}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), ws, zapcore.InfoLevel)
	lg := zap.New(core)
	return &session{
		log:   func() error { lg.Info(msg); return nil },
		flush: lg.Sync,
		close: func() error { return errors.Join(ws.Stop(), c.Close()) },
	}, nil
}

// writeCase is one cell of the matrix.
type writeCase struct {
	network    string
	size       int
	goroutines int
}

func (k writeCase) String() string {
	return fmt.Sprintf("%s/%s/%dg", k.network, sizeName(k.size), k.goroutines)
}

type writeResults struct {
	n          int
	cases      []writeCase
	contenders []string
	rates      map[string]map[writeCase][]float64 // frames/s of each run
	errs       map[string]map[writeCase]error
}

// rate returns the median frames/s of a contender in a case, 0 if it
// was not measured or failed.
func (r *writeResults) rate(name string, k writeCase) float64 {
	if r == nil || r.errs[name][k] != nil {
		return 0
	}
	return median(slices.Clone(r.rates[name][k]))
}

// ran reports whether any contender ran in case k.
func (r *writeResults) ran(k writeCase) bool {
	for _, name := range r.contenders {
		if len(r.rates[name][k]) > 0 || r.errs[name][k] != nil {
			return true
		}
	}
	return false
}

func (r *writeResults) ratio(a, b string, k writeCase) float64 {
	return safeDiv(r.rate(a, k), r.rate(b, k))
}

// runWrites measures every contender in every case, opt.runs times. The
// runs are the outer loop, so that a slow spell of the machine hits every
// contender alike.
func runWrites(opt options) *writeResults {
	res := &writeResults{n: opt.n, rates: map[string]map[writeCase][]float64{}, errs: map[string]map[writeCase]error{}}
	for _, network := range networks {
		for _, size := range sizes {
			for _, g := range goroutines {
				res.cases = append(res.cases, writeCase{network, size, g})
			}
		}
	}
	// -only matches "contender network/size/goroutines", for example
	// "logsock direct tcp/100 B/8g".
	chosen := func(c contender, k writeCase) bool {
		return opt.only.MatchString(c.name+" "+k.String()) && !(c.tcpOnly && k.network != "tcp")
	}
	for _, c := range contenders {
		for _, k := range res.cases {
			if chosen(c, k) {
				res.contenders = append(res.contenders, c.name)
				res.rates[c.name] = map[writeCase][]float64{}
				res.errs[c.name] = map[writeCase]error{}
				break
			}
		}
	}
	// Each run takes the contenders of a case in a new order, so that no
	// contender always follows the same other one (whose garbage, timers
	// or socket buffers it would inherit) or runs at the same point of a
	// drift in the machine's load.
	order := slices.Clone(contenders)
	rng := rand.New(rand.NewPCG(1, 2))
	for run := range opt.runs {
		for _, k := range res.cases {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			for _, c := range order {
				if !chosen(c, k) || res.errs[c.name][k] != nil {
					continue
				}
				progress("writers: run %d/%d %s %s", run+1, opt.runs, k, c.name)
				d, err := measureWrite(c, k, opt.n, opt.tempDir)
				if err != nil {
					res.errs[c.name][k] = err
					progressDone()
					fmt.Fprintf(os.Stderr, "%s %s: %v\n", c.name, k, err)
					continue
				}
				res.rates[c.name][k] = append(res.rates[c.name][k], float64(opt.n)/d.Seconds())
			}
		}
	}
	progressDone()
	return res
}

var socketSeq atomic.Int64

// listen opens a listener on 127.0.0.1 or on a Unix socket in dir.
func listen(network, dir string) (net.Listener, string, error) {
	if network == "unix" {
		path := filepath.Join(dir, fmt.Sprintf("%d.sock", socketSeq.Add(1)))
		l, err := net.Listen("unix", path)
		return l, path, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	return l, l.Addr().String(), nil
}

// measureWrite sends n messages of case k with contender c and returns the
// time from the first message to the last byte received.
func measureWrite(c contender, k writeCase, n int, dir string) (time.Duration, error) {
	l, addr, err := listen(k.network, dir)
	if err != nil {
		return 0, err
	}
	target := int64(headerLen + n*(headerLen+k.size)) // handshake, frames
	if c.lines {
		target = int64(n)
	}
	rd := startReader(l, c.lines, target)
	defer rd.stop()

	s, err := c.open(k.network, addr, message(k.size), k.goroutines)
	if err != nil {
		return 0, err
	}
	runtime.GC() // the garbage of the last measure is not this one's to collect

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, k.goroutines)
	for g := range k.goroutines {
		share := n / k.goroutines
		if g == 0 {
			share += n % k.goroutines
		}
		wg.Go(func() {
			for range share {
				if err := s.log(); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	err = <-errs
	if err == nil && s.flush != nil {
		err = s.flush()
	}
	var elapsed time.Duration
	if err == nil {
		select {
		case <-rd.full:
		case <-rd.done: // full too, if the reader stopped after the target
		case <-time.After(flushTimeout):
		}
		select {
		case <-rd.full:
			elapsed = rd.at.Sub(start)
		default:
			err = fmt.Errorf("reader got %d of %d (%v)", rd.got.Load(), target, rd.err)
		}
	}
	if cerr := s.close(); err == nil {
		err = cerr
	}
	return elapsed, err
}

// reader drains one connection and notes when target bytes (or lines)
// have arrived.
type reader struct {
	l    net.Listener
	full chan struct{} // closed when target is reached, after at is set
	at   time.Time
	got  atomic.Int64
	done chan struct{} // closed when the reader has stopped, after err is set
	err  error

	mu sync.Mutex // guards c
	c  net.Conn
}

func startReader(l net.Listener, lines bool, target int64) *reader {
	r := &reader{l: l, full: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		c, err := l.Accept()
		if err != nil {
			r.err = err
			return
		}
		defer c.Close()
		r.mu.Lock()
		r.c = c
		r.mu.Unlock()
		buf := make([]byte, 256<<10)
		var got int64
		reached := false
		for {
			k, err := c.Read(buf)
			if lines {
				got += int64(bytes.Count(buf[:k], []byte{'\n'}))
			} else {
				got += int64(k)
			}
			if got >= target && !reached {
				reached = true
				r.at = time.Now()
				close(r.full)
			}
			r.got.Store(got)
			if err != nil {
				if err != io.EOF {
					r.err = err
				}
				return
			}
		}
	}()
	return r
}

// stop waits for the writer's close to end the stream, a little, then
// ends it.
func (r *reader) stop() {
	r.l.Close()
	r.mu.Lock()
	if r.c != nil {
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	}
	r.mu.Unlock()
	<-r.done
}

// message returns size bytes of printable ASCII, without a newline.
func message(size int) string {
	const text = "the quick brown fox jumps over the lazy dog 0123456789 "
	b := make([]byte, size)
	for i := range b {
		b[i] = text[i%len(text)]
	}
	return string(b)
}

func printWrites(w io.Writer, r *writeResults) {
	if len(r.contenders) == 0 {
		return
	}
	fmt.Fprintf(w, "Writers: %d messages a measure, from the first message to the last byte received\n", r.n)
	tw := table(w)
	fmt.Fprintln(tw, "contender\tnetwork\tsize\tgoroutines\tframes/s\tMB/s\t/ raw write\t/ raw bufio\t")
	first := true
	for _, k := range r.cases {
		if !r.ran(k) {
			continue
		}
		if !first {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t")
		}
		first = false
		for _, name := range r.contenders {
			if len(r.rates[name][k]) == 0 && r.errs[name][k] == nil {
				continue // not run in this case
			}
			v := r.rate(name, k)
			mbs := "-"
			if v > 0 {
				mbs = fmt.Sprintf("%.1f", v*float64(k.size)/1e6)
			}
			if err := r.errs[name][k]; err != nil {
				mbs = "error"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t\n", name, k.network, sizeName(k.size), k.goroutines,
				rate(v), mbs, ratio(v, r.rate("raw write", k)), ratio(v, r.rate("raw bufio", k)))
		}
	}
	tw.Flush()
	fmt.Fprintln(w, "MB/s counts message bytes only, no headers. With 8 goroutines, raw bufio and the article's client take a mutex (the article's")
	fmt.Fprintln(w, "client has none, and tears frames); log/syslog and zap lock inside. Go's TCP connections have TCP_NODELAY set, except \"Nagle on\".")
}
