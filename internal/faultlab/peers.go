//go:build unix

package faultlab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// The peers: other clients put through GracefulIdle, to compare.
const (
	// ArticlePeer is the article's reconnecting Python client
	// (testdata/fault_article_reconnect_client.py).
	ArticlePeer = "article.py"
	// SyslogPeer is Go's log/syslog over a stream socket, against
	// LineServer.
	SyslogPeer = "log/syslog"
)

// LineServer is a small collector for newline-terminated messages, as
// log/syslog sends them over TCP: it keeps every line that any of its runs
// read, and can be closed and started again on the same address.
type LineServer struct {
	Network string
	Address string

	dir string // the temporary directory of a Unix socket

	mu       sync.Mutex // guards the fields below
	l        net.Listener
	conns    map[net.Conn]bool
	lines    []string
	open     int           // connections being read
	accepted int           // connections accepted, in all runs
	changed  chan struct{} // receives a value after each change, if there is room
	wg       sync.WaitGroup
}

// NewLineServer chooses an address on network as NewCollector does,
// without listening yet.
func NewLineServer(network string) (*LineServer, error) {
	addr, dir, err := newAddress(network)
	if err != nil {
		return nil, err
	}
	return &LineServer{Network: network, Address: addr, dir: dir, changed: make(chan struct{}, 1)}, nil
}

// Start listens on the address and serves connections until Stop.
func (s *LineServer) Start() error {
	deadline := time.Now().Add(rebindFor)
	var l net.Listener
	for {
		var err error
		if l, err = net.Listen(s.Network, s.Address); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond) // the port is held: no signal to wait for
	}
	s.mu.Lock()
	s.l, s.conns = l, make(map[net.Conn]bool)
	s.mu.Unlock()
	s.wg.Add(1)
	go s.accept(l)
	return nil
}

func (s *LineServer) accept(l net.Listener) {
	defer s.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			return // closed by Stop
		}
		s.mu.Lock()
		s.conns[c] = true
		s.open++
		s.accepted++
		s.mu.Unlock()
		s.wg.Add(1)
		go s.read(c)
	}
}

func (s *LineServer) read(c net.Conn) {
	defer s.wg.Done()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		s.mu.Lock()
		s.lines = append(s.lines, sc.Text())
		s.mu.Unlock()
		s.signal()
	}
	c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.open--
	s.mu.Unlock()
	s.signal()
}

func (s *LineServer) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// Stop closes the listener and every connection, as a collector that shuts
// down while its clients are idle, and waits for its goroutines.
func (s *LineServer) Stop() {
	s.mu.Lock()
	if s.l != nil {
		s.l.Close()
		s.l = nil
	}
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Close stops the server and removes the socket's directory.
func (s *LineServer) Close() {
	s.Stop()
	if s.dir != "" {
		os.RemoveAll(s.dir)
	}
}

// has reports whether a line with sequence number seq has been read.
func (s *LineServer) has(seq int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, line := range s.lines {
		if n, _, ok := Parse(line); ok && n == seq {
			return true
		}
	}
	return false
}

// Lines returns a copy of the lines read so far.
func (s *LineServer) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Wait waits until cond holds for the number of lines read and of
// connections still open, or ctx is done.
func (s *LineServer) Wait(ctx context.Context, what string, cond func(lines, open int) bool) error {
	for {
		s.mu.Lock()
		lines, open := len(s.lines), s.open
		s.mu.Unlock()
		if cond(lines, open) {
			return nil
		}
		select {
		case <-s.changed:
		case <-ctx.Done():
			return fmt.Errorf("faultlab: waiting for %s (%d lines, %d connections open): %w", what, lines, open, ctx.Err())
		}
	}
}

// RunPeer runs GracefulIdle with a peer client over network: Burst
// messages, a pause, a graceful restart of the server, a pause, Burst more.
// Only the tally, the connections and the notes of the Result are filled.
func RunPeer(ctx context.Context, env *Env, peer, network string, p Params) (*Result, error) {
	p = p.WithDefaults()
	began := time.Now()
	var res *Result
	var err error
	switch peer {
	case ArticlePeer:
		res, err = runArticle(ctx, env, network, p)
	case SyslogPeer:
		res, err = runSyslog(ctx, network, p)
	default:
		return nil, fmt.Errorf("faultlab: unknown peer %q", peer)
	}
	if err != nil {
		return nil, fmt.Errorf("faultlab: %s %s/%s: %w", peer, GracefulIdle, network, err)
	}
	res.Client, res.Scenario, res.Network, res.Peek = peer, GracefulIdle, network, "-"
	if res.Missing > 0 {
		res.note("missing %s", shortRanges(res.MissingSeqs))
	}
	res.Elapsed = time.Since(began)
	env.logf("%s", res.Line())
	return res, nil
}

// runArticle drives the article's client through stdin, one line a
// message, and waits for its "ok N" after each.
func runArticle(ctx context.Context, env *Env, network string, p Params) (*Result, error) {
	if env.Python == "" {
		return nil, fmt.Errorf("python3 not available: %w", errSkipped)
	}
	col, err := StartCollector(env.Collector, network)
	if err != nil {
		return nil, err
	}
	defer col.Close()

	script := filepath.Join(env.Root, "testdata", "fault_article_reconnect_client.py")
	args := []string{script, "--unix", col.Address}
	if network == "tcp" {
		host, port, _ := net.SplitHostPort(col.Address)
		args = []string{script, host, port}
	}
	stdin, w := io.Pipe()
	acks := newTextLog()
	stderr := newTextLog()
	py, err := startProcess(stdin, &lineSink{fn: acks.add}, &lineSink{fn: stderr.add}, env.Python, args...)
	if err != nil {
		return nil, err
	}
	defer py.kill()
	defer w.Close()

	sent := 0
	logBurst := func() error {
		for range p.Burst {
			if _, err := fmt.Fprintf(w, "%s\n", Message(sent, p.Size)); err != nil {
				return fmt.Errorf("article client's stdin: %w; stderr: %s", err, stderr)
			}
			sent++
			if err := waitLine(ctx, py, acks, fmt.Sprintf("ok %d", sent)); err != nil {
				return fmt.Errorf("%w; stderr: %s", err, stderr)
			}
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, p.Settle)
	defer cancel()
	if err := logBurst(); err != nil {
		return nil, err
	}
	if err := col.WaitRecords(wctx, p.Burst); err != nil {
		return nil, err
	}
	if err := pause(ctx, p.Idle); err != nil {
		return nil, err
	}
	if err := col.Stop(); err != nil {
		return nil, err
	}
	if err := col.Start(); err != nil {
		return nil, err
	}
	if err := pause(ctx, p.Idle); err != nil {
		return nil, err
	}
	if err := logBurst(); err != nil {
		return nil, err
	}
	w.Close()
	res := &Result{}
	if err := py.wait(p.Settle); err != nil {
		res.note("article client: %v: %s", err, stderr)
	}
	// The collector does not drain a connection still in its listen
	// backlog: wait until it has the last message, if it is coming, and
	// has seen its connection end.
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
	if rec, err := col.WaitSeq(lctx, sent-1); err == nil && rec.Start == col.starts {
		col.WaitConnClosed(lctx, rec.Conn)
	}
	lcancel()
	if err := col.Stop(); err != nil {
		return nil, err
	}
	recs := col.Records()
	res.Tally = Check(sent, p.Size, recs)
	res.Conns = countConns(recs)
	return res, nil
}

// waitLine waits until the child p has written the line want to out.
func waitLine(ctx context.Context, p *process, out *textLog, want string) error {
	for {
		if _, ok := out.find(want); ok {
			return nil
		}
		select {
		case <-out.changed:
		case <-p.done:
			if _, ok := out.find(want); ok {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before %q", filepath.Base(p.cmd.Args[1]), p.err, want)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", want, ctx.Err())
		}
	}
}

// runSyslog drives log/syslog against a LineServer.
func runSyslog(ctx context.Context, network string, p Params) (*Result, error) {
	srv, err := NewLineServer(network)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	if err := srv.Start(); err != nil {
		return nil, err
	}
	w, err := syslog.Dial(network, srv.Address, syslog.LOG_INFO|syslog.LOG_USER, "faultlab")
	if err != nil {
		return nil, err
	}
	defer w.Close()

	res := &Result{}
	sent := 0
	logBurst := func() {
		for range p.Burst {
			// Info retries once, on a new connection, when its write
			// fails; an error means that the retry failed too.
			if err := w.Info(Message(sent, p.Size)); err != nil {
				res.LogErrs++
				if res.LogErr == nil {
					res.LogErr = err
				}
			}
			sent++
		}
	}
	wctx, cancel := context.WithTimeout(ctx, p.Settle)
	defer cancel()
	logBurst()
	if err := srv.Wait(wctx, "the first burst", func(lines, _ int) bool { return lines >= p.Burst }); err != nil {
		return nil, err
	}
	if err := pause(ctx, p.Idle); err != nil {
		return nil, err
	}
	srv.Stop()
	if err := srv.Start(); err != nil {
		return nil, err
	}
	if err := pause(ctx, p.Idle); err != nil {
		return nil, err
	}
	logBurst()
	if err := w.Close(); err != nil {
		res.note("Close: %v", err)
	}
	// The last message, if it is coming, then the end of every connection
	// are the signal that all has been read. (Stop does not read a
	// connection still in the listen backlog.)
	lctx, lcancel := context.WithTimeout(ctx, 2*time.Second)
	srv.Wait(lctx, "the last message", func(int, int) bool { return srv.has(sent - 1) })
	lcancel()
	if err := srv.Wait(wctx, "the connections to end", func(_, open int) bool { return open == 0 }); err != nil {
		return nil, err
	}
	srv.Stop()
	var recs []Record
	for _, line := range srv.Lines() {
		r := Record{Seq: -1}
		if seq, _, ok := Parse(line); ok {
			// A syslog line has a header before the message: the
			// message is what follows it, intact if it is all there.
			msg := line[strings.Index(line, seqPrefix):]
			_, intact, _ := Parse(msg)
			r = Record{Seq: seq, Intact: intact, Len: len(msg)}
		}
		recs = append(recs, r)
	}
	res.Tally = Check(sent, p.Size, recs)
	srv.mu.Lock()
	res.Conns = srv.accepted
	srv.mu.Unlock()
	if res.LogErrs > 0 {
		res.note("%d Info errors, first: %v", res.LogErrs, res.LogErr)
	}
	return res, nil
}

// PeerNetworks lists the networks each peer runs on.
var PeerNetworks = map[string][]string{
	ArticlePeer: {"tcp", "unix"},
	SyslogPeer:  {"tcp", "unix"},
}

// Peers lists the peers in report order.
var Peers = []string{ArticlePeer, SyslogPeer}
