//go:build unix

package faultlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

const (
	// startTimeout bounds the wait for a collector's "listening" line.
	startTimeout = 20 * time.Second
	// stopTimeout bounds a graceful stop: the collector drains for up to
	// 5 s (its own limit), then exits.
	stopTimeout = 20 * time.Second
	// rebindFor is how long a restart keeps trying to bind the address
	// that another socket still holds.
	rebindFor = 5 * time.Second
)

// Record is one record that a collector printed.
type Record struct {
	Seq    int    // the sequence number, or -1 if the message has none
	Intact bool   // the message is exactly Message(Seq, len)
	Len    int    // message length in bytes
	Conn   uint64 // the collector's connection id (per start)
	Pid    int    // the handshake pid
	Start  int    // which start of the collector printed it, from 1
}

// Collector runs the collector program, cmd/logsockd, as a child process, on
// one address that stays the same across restarts, and keeps every record
// that any of its runs printed. It can be stopped gracefully (SIGTERM: the
// collector drains its connections and exits), killed, stopped and
// continued (SIGSTOP, SIGCONT), and started again.
//
// Its methods are not safe for concurrent use, except Records,
// WaitRecords and Count, which may be called from any goroutine.
type Collector struct {
	Network string // "tcp" or "unix"
	Address string // what to dial: 127.0.0.1:PORT or a socket path

	bin    string
	dir    string // the temporary directory of a Unix socket
	proc   *process
	stderr *textLog
	starts int
	paused bool

	mu      sync.Mutex // guards recs
	recs    []Record
	changed chan struct{} // receives a value after each record, if there is room
}

// NewCollector chooses an address for the collector binary bin on network
// ("tcp": a free port on 127.0.0.1; "unix": a socket in a new short
// temporary directory, as sun_path holds 108 bytes) without starting it.
// Close releases what it holds.
func NewCollector(bin, network string) (*Collector, error) {
	addr, dir, err := newAddress(network)
	if err != nil {
		return nil, err
	}
	return &Collector{Network: network, Address: addr, bin: bin, dir: dir, changed: make(chan struct{}, 1)}, nil
}

// newAddress returns a free address on network, and the temporary
// directory that holds a Unix socket.
func newAddress(network string) (addr, dir string, err error) {
	switch network {
	case "tcp":
		port, err := testenv.FreePort()
		if err != nil {
			return "", "", err
		}
		return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), "", nil
	case "unix":
		dir, err := os.MkdirTemp("", "fl")
		if err != nil {
			return "", "", err
		}
		return filepath.Join(dir, "c.sock"), dir, nil
	}
	return "", "", fmt.Errorf("faultlab: network %q: want tcp or unix", network)
}

// StartCollector is NewCollector followed by Start.
func StartCollector(bin, network string) (*Collector, error) {
	c, err := NewCollector(bin, network)
	if err != nil {
		return nil, err
	}
	if err := c.Start(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Start starts the collector on its address and waits until it says that
// it listens. A stale socket file, left by a killed collector, is removed
// first. If the TCP port is still held by another socket, Start tries again
// for a few seconds.
func (c *Collector) Start() error {
	if c.proc != nil && !c.proc.exited() {
		return errors.New("faultlab: collector already running")
	}
	listen := "tcp://" + c.Address
	if c.Network == "unix" {
		listen = "unix://" + c.Address
		// A SIGKILLed collector leaves its socket file; a new bind would
		// fail with EADDRINUSE.
		if err := os.Remove(c.Address); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	deadline := time.Now().Add(rebindFor)
	for {
		err := c.start(listen)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			return err
		}
		// Another socket holds the port: it has no signal to wait for.
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *Collector) start(listen string) error {
	c.starts++
	start := c.starts
	stdout := &lineSink{fn: func(line []byte) { c.record(start, line) }}
	stderr := newTextLog()
	p, err := startProcess(nil, stdout, &lineSink{fn: stderr.add}, c.bin, "-json", "-listen", listen)
	if err != nil {
		return err
	}
	const prefix = "logsockd: listening on "
	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	for {
		if addr, ok := stderr.find(prefix); ok {
			if addr != listen {
				p.kill()
				return fmt.Errorf("faultlab: collector listens on %s, want %s", addr, listen)
			}
			c.proc, c.stderr, c.paused = p, stderr, false
			return nil
		}
		select {
		case <-stderr.changed:
		case <-p.done:
			if _, ok := stderr.find(prefix); ok {
				continue // it listened, then exited: reported by the next call
			}
			err := fmt.Errorf("faultlab: collector exited before listening (%v): %s", p.err, stderr)
			if strings.Contains(stderr.String(), "address already in use") {
				err = fmt.Errorf("%w: %w", err, syscall.EADDRINUSE)
			}
			return err
		case <-timeout.C:
			p.kill()
			return fmt.Errorf("faultlab: collector did not listen within %v: %s", startTimeout, stderr)
		}
	}
}

// record parses one line of the collector's JSON output.
func (c *Collector) record(start int, line []byte) {
	var j struct {
		Conn uint64 `json:"conn"`
		Pid  int    `json:"pid"`
		Msg  string `json:"msg"`
	}
	r := Record{Seq: -1, Start: start}
	if err := json.Unmarshal(line, &j); err == nil {
		r.Conn, r.Pid, r.Len = j.Conn, j.Pid, len(j.Msg)
		if seq, intact, ok := Parse(j.Msg); ok {
			r.Seq, r.Intact = seq, intact
		}
	}
	c.mu.Lock()
	c.recs = append(c.recs, r)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Running reports whether a collector process is running (or stopped by
// SIGSTOP).
func (c *Collector) Running() bool { return c.proc != nil && !c.proc.exited() }

// Pid returns the pid of the running collector, or 0.
func (c *Collector) Pid() int {
	if !c.Running() {
		return 0
	}
	return c.proc.pid()
}

// Stop stops the collector gracefully: SIGTERM, after which it drains its
// connections and exits. Stop waits for the exit, so that every record it
// printed has been read, and fails unless it exits 0.
func (c *Collector) Stop() error {
	if !c.Running() {
		return errors.New("faultlab: collector not running")
	}
	if err := c.resume(); err != nil {
		return err
	}
	if err := c.proc.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := c.proc.wait(stopTimeout); err != nil {
		c.proc.kill()
		return fmt.Errorf("faultlab: collector stop: %w; stderr:\n%s", err, c.stderr)
	}
	return nil
}

// Kill kills the collector with SIGKILL and waits for it: what it had read
// and not yet printed, and what its sockets held, is lost.
func (c *Collector) Kill() error {
	if !c.Running() {
		return errors.New("faultlab: collector not running")
	}
	c.proc.kill()
	return nil
}

// Pause stops the collector with SIGSTOP: its connections stay open and
// the kernel keeps accepting (into the backlog) and buffering for it, but
// nothing is read.
func (c *Collector) Pause() error {
	if !c.Running() {
		return errors.New("faultlab: collector not running")
	}
	if err := c.proc.signal(syscall.SIGSTOP); err != nil {
		return err
	}
	c.paused = true
	return nil
}

// Resume continues a collector stopped by Pause.
func (c *Collector) Resume() error {
	if !c.Running() {
		return errors.New("faultlab: collector not running")
	}
	return c.resume()
}

func (c *Collector) resume() error {
	if !c.paused {
		return nil
	}
	c.paused = false
	return c.proc.signal(syscall.SIGCONT)
}

// Close kills a running collector, waits for it, and removes the socket's
// directory. It is safe to call more than once.
func (c *Collector) Close() {
	if c.proc != nil {
		c.proc.kill() // SIGKILL ends a stopped process too
	}
	if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// Records returns a copy of every record printed so far, in the order the
// collector runs printed them.
func (c *Collector) Records() []Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Record(nil), c.recs...)
}

// Count returns how many records have been printed so far.
func (c *Collector) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.recs)
}

// WaitRecords waits until n records have been printed in all, or ctx is
// done.
func (c *Collector) WaitRecords(ctx context.Context, n int) error {
	for {
		if got := c.Count(); got >= n {
			return nil
		}
		select {
		case <-c.changed:
		case <-ctx.Done():
			return fmt.Errorf("faultlab: waiting for %d records, have %d: %w", n, c.Count(), ctx.Err())
		}
	}
}

// WaitSeq waits until a record of sequence number seq has been printed,
// or ctx is done, and returns it.
func (c *Collector) WaitSeq(ctx context.Context, seq int) (Record, error) {
	seen := 0
	for {
		c.mu.Lock()
		recs := c.recs[seen:]
		seen = len(c.recs)
		for _, r := range recs {
			if r.Seq == seq {
				c.mu.Unlock()
				return r, nil
			}
		}
		c.mu.Unlock()
		select {
		case <-c.changed:
		case <-ctx.Done():
			return Record{}, fmt.Errorf("faultlab: waiting for record %d: %w", seq, ctx.Err())
		}
	}
}

// WaitConnClosed waits until the running collector reports the end of its
// connection id (its stderr line "logsockd: conn ID (pid P ...) closed ..."),
// or ctx is done. A graceful stop drains the connections that the
// collector has accepted, but not those still in the listen backlog: to
// be sure that a client's last frames are in, wait for the end of its
// connection before Stop.
func (c *Collector) WaitConnClosed(ctx context.Context, id uint64) error {
	if !c.Running() {
		return errors.New("faultlab: collector not running")
	}
	prefix := fmt.Sprintf("logsockd: conn %d (", id)
	for {
		if _, ok := c.stderr.find(prefix); ok {
			return nil
		}
		select {
		case <-c.stderr.changed:
		case <-c.proc.done:
			return fmt.Errorf("faultlab: collector exited: %v", c.proc.err)
		case <-ctx.Done():
			return fmt.Errorf("faultlab: waiting for the end of conn %d: %w", id, ctx.Err())
		}
	}
}
