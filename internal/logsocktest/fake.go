package logsocktest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
)

// FakeMode is what a FakeCollector does with the connections it accepts.
type FakeMode int

const (
	// FakeDecode reads each connection's handshake and frames into
	// records: Conn is the connection's number, from 1 in the order of
	// accept, and Pid its handshake's.
	FakeDecode FakeMode = iota
	// FakeDiscard reads everything and keeps nothing: for benchmarks.
	FakeDiscard
	// FakeClose closes each connection at once: a load balancer with no
	// backend. (On TCP the close is a RST if the handshake has already
	// arrived, unread.)
	FakeClose
	// FakeHandshakeClose reads the 4-byte handshake, then closes.
	FakeHandshakeClose
	// FakeStall never reads, until Resume: a stalled collector. The
	// kernel still accepts connections and buffers what they send, until
	// the buffers are full.
	FakeStall
	// FakeBacklog never accepts, and its accept queue is full. On TCP a
	// dial hangs: the kernel drops the SYN, and the client sends it again
	// after 1 s, 3 s, 7 s... until its own timeout. On a Unix socket a
	// dial fails at once with EAGAIN: Go's connect is non-blocking, and
	// the kernel then does not wait for room in the queue. Each Start
	// checks that a further dial does what is said here.
	FakeBacklog
	// FakeSyslog reads syslog's octet-counted frames (RFC 6587), with no
	// handshake, into records of Pid 0: a syslog server, for
	// Config.Framing OctetCounted.
	FakeSyslog
)

// fakeBacklogCheck is how long the check of a full backlog lets a TCP
// dial hang. A dial into a queue with room takes well under a millisecond
// on loopback (measured); the SYN's first retransmission comes after 1 s.
const fakeBacklogCheck = 100 * time.Millisecond

// FakeCollector is a collector for the clients' tests, unhappy as its
// mode says, on "tcp" (127.0.0.1) or "unix" (a socket in a short
// temporary directory). It counts the connections it accepts; it can drop
// them all (a graceful restart), one (CloseConn, ShutConn, ResetConn),
// stop accepting, and go down and up again on the same address (Stop,
// Start). Tests wait for what it sees with its Sink's Wait, WaitRecords
// and WaitEnds (the reasons connections ended; nil for a clean EOF), and
// with WaitConns, WaitHandshake and WaitConnEnd. Everything it starts is
// closed and joined when the test ends.
type FakeCollector struct {
	*Sink
	Network    string
	Addr       string // where it listens, the same across restarts
	mode       FakeMode
	resumed    chan struct{} // closed by Resume, once
	resumeOnce func()
	wg         sync.WaitGroup

	mu    sync.Mutex // guards the fields below
	l     net.Listener
	done  chan struct{} // closed when the accept loop of l has returned
	fills []net.Conn    // FakeBacklog: the connections that fill the queue
	conns []*FakeConn
}

// FakeConn is what a FakeCollector knows of one connection.
type FakeConn struct {
	ID       uint64    // from 1, in the order of accept, across restarts
	Accepted time.Time // when Accept returned it
	Pid      int32     // the handshake's, once shook
	Shook    bool
	Ended    bool  // the collector has seen its end, and closed it
	Err      error // why it ended: nil at a clean EOF

	nc      net.Conn
	dropped bool          // the collector closed nc first
	stop    chan struct{} // closed with dropped: it ends a stall
}

// NewFakeCollector starts a FakeCollector of mode on network.
func NewFakeCollector(t testing.TB, network string, mode FakeMode) *FakeCollector {
	t.Helper()
	f := &FakeCollector{Sink: NewSink(), Network: network, mode: mode, resumed: make(chan struct{})}
	f.resumeOnce = sync.OnceFunc(func() { close(f.resumed) })
	var l net.Listener
	var err error
	if network == "unix" {
		l, err = net.Listen("unix", SocketPath(t))
	} else {
		l, err = testenv.ListenTCP() // a port that a restart can bind again
	}
	if err != nil {
		t.Fatal(err)
	}
	f.Addr = l.Addr().String()
	t.Cleanup(f.Stop)
	f.serve(t, l)
	return f
}

// FakeDown is a FakeCollector of mode on network that is down: nothing
// listens on its address (a Unix path with no socket; for TCP a port that
// was bound, then closed) until Start.
func FakeDown(t testing.TB, network string, mode FakeMode) *FakeCollector {
	t.Helper()
	f := NewFakeCollector(t, network, mode)
	f.Stop()
	return f
}

// Start listens on the address again, after Stop.
func (f *FakeCollector) Start(t testing.TB) {
	t.Helper()
	l, err := net.Listen(f.Network, f.Addr)
	if err != nil {
		t.Fatalf("fake collector: listening again: %v", err)
	}
	f.serve(t, l)
}

func (f *FakeCollector) serve(t testing.TB, l net.Listener) {
	t.Helper()
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	if f.mode == FakeBacklog {
		f.fillBacklog(t)
		return
	}
	done := make(chan struct{})
	f.mu.Lock()
	f.done = done
	f.mu.Unlock()
	f.wg.Go(func() {
		defer close(done)
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			c := &FakeConn{ID: uint64(len(f.conns) + 1), Accepted: time.Now(), nc: nc, stop: make(chan struct{})}
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.signal()
			f.wg.Go(func() { f.end(c, f.read(c)) })
		}
	})
}

// fillBacklog sets the listener's backlog to 1 (listen again on a
// listening socket sets it, on Linux) and fills the queue: Linux finds it
// full when it holds one more than the backlog (sk_acceptq_is_full,
// unix_recvq_full). Then it checks that one more dial hangs (TCP), or
// fails with EAGAIN (Unix).
func (f *FakeCollector) fillBacklog(t testing.TB) {
	t.Helper()
	SetBacklog(t, f.l, 1)
	for range 2 {
		c, err := net.Dial(f.Network, f.Addr)
		if err != nil {
			t.Fatalf("fake collector: filling the backlog: %v", err)
		}
		f.mu.Lock()
		f.fills = append(f.fills, c)
		f.mu.Unlock()
	}
	start := time.Now()
	c, err := net.DialTimeout(f.Network, f.Addr, fakeBacklogCheck)
	if err == nil {
		c.Close()
	}
	var ne net.Error
	switch {
	case f.Network == "unix" && errors.Is(err, syscall.EAGAIN):
	case f.Network != "unix" && errors.As(err, &ne) && ne.Timeout() && time.Since(start) >= fakeBacklogCheck:
	default:
		t.Fatalf("fake collector: a dial into the full backlog returned %v after %v", err, time.Since(start))
	}
}

// read does what the mode says with c, and returns why it stopped.
func (f *FakeCollector) read(c *FakeConn) error {
	switch f.mode {
	case FakeDiscard:
		_, err := io.Copy(io.Discard, c.nc)
		return err
	case FakeClose:
		return nil
	case FakeHandshakeClose:
		pid, err := ReadPid(c.nc, logsock.LittleEndian)
		if err == nil {
			f.shake(c, pid)
		}
		return err
	case FakeStall:
		select {
		case <-f.resumed:
		case <-c.stop:
			return net.ErrClosed
		}
	case FakeSyslog:
		return f.readSyslog(c)
	}
	// FakeDecode, and FakeStall once resumed.
	d := logsock.NewDecoder(c.nc, nil)
	pid, err := d.Handshake()
	if err != nil {
		return err
	}
	f.shake(c, pid)
	rec := logsock.Record{Origin: logsock.Origin{Conn: c.ID, Pid: pid}}
	for {
		if rec.Msg, err = d.Next(); err != nil {
			return err
		}
		rec.Time = time.Now()
		f.Handle(&rec)
	}
}

// readSyslog reads octet-counted frames from c into records, as
// rsyslog's imptcp does: digits, a space, then that many bytes. A frame
// that breaks the format ends the connection with an error.
func (f *FakeCollector) readSyslog(c *FakeConn) error {
	r := bufio.NewReader(c.nc)
	rec := logsock.Record{Origin: logsock.Origin{Conn: c.ID}}
	for {
		count, err := r.ReadString(' ')
		if err != nil {
			if err == io.EOF && count != "" {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		n, err := strconv.Atoi(count[:len(count)-1])
		if err != nil || n < 0 || count[0] == '+' || count[0] == '-' {
			return fmt.Errorf("octet count %q: not a length", count)
		}
		rec.Msg = make([]byte, n)
		if _, err := io.ReadFull(r, rec.Msg); err != nil {
			return fmt.Errorf("frame of %d bytes: %w", n, err)
		}
		rec.Time = time.Now()
		f.Handle(&rec)
	}
}

func (f *FakeCollector) shake(c *FakeConn, pid int32) {
	f.mu.Lock()
	c.Pid, c.Shook = pid, true
	f.mu.Unlock()
	f.signal()
}

// end closes c and records why it ended.
func (f *FakeCollector) end(c *FakeConn, err error) {
	c.nc.Close()
	if err == io.EOF {
		err = nil
	}
	f.mu.Lock()
	c.Ended, c.Err = true, err
	f.mu.Unlock()
	f.ConnClosed(logsock.ConnInfo{Origin: logsock.Origin{Conn: c.ID, Pid: c.Pid}}, err)
}

// Resume makes a FakeStall collector read its connections, and those it
// accepts later, as FakeDecode does.
func (f *FakeCollector) Resume() { f.resumeOnce() }

// CloseConn closes connection id, which must have been accepted,
// gracefully (a FIN, if all it sent was read).
func (f *FakeCollector) CloseConn(id uint64) { f.drop(f.conn(id), false) }

// ShutConn drops connection id, which must have been accepted, and loses
// nothing: it shuts down its sending side and reads on. The clients' peek
// sees the end and stops writing on it; once they have closed it, its
// reader sees theirs.
func (f *FakeCollector) ShutConn(t testing.TB, id uint64) {
	t.Helper()
	if err := f.conn(id).nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("fake collector: shutting down connection %d: %v", id, err)
	}
}

// ResetConn closes connection id abortively: a RST on TCP (SO_LINGER 0),
// a plain close on a Unix socket.
func (f *FakeCollector) ResetConn(id uint64) { f.drop(f.conn(id), true) }

// DropAll closes every connection: a graceful restart, as the clients see
// it. The collector goes on accepting.
func (f *FakeCollector) DropAll() {
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		f.drop(c, false)
	}
}

func (f *FakeCollector) conn(id uint64) *FakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[id-1]
}

func (f *FakeCollector) drop(c *FakeConn, reset bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.dropped {
		return
	}
	c.dropped = true
	if tc, ok := c.nc.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	c.nc.Close()
	close(c.stop)
}

// StopAccepting closes the listener, so that dials fail (on a Unix
// socket, its file goes too), and returns how many connections it
// accepted in all. Those it accepted go on.
func (f *FakeCollector) StopAccepting() int {
	f.mu.Lock()
	l, done, fills := f.l, f.done, f.fills
	f.l, f.done, f.fills = nil, nil, nil
	f.mu.Unlock()
	if l != nil {
		l.Close()
	}
	if done != nil {
		<-done
	}
	for _, c := range fills {
		c.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.conns)
}

// Stop takes the collector down: it stops accepting, closes every
// connection, and waits until it has seen each end. Start brings it up
// again on the same address.
func (f *FakeCollector) Stop() {
	f.StopAccepting()
	f.DropAll()
	f.wg.Wait()
}

// Connections returns what the collector knows of its connections so far.
func (f *FakeCollector) Connections() []FakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]FakeConn, len(f.conns))
	for i, c := range f.conns {
		out[i] = FakeConn{ID: c.ID, Accepted: c.Accepted, Pid: c.Pid, Shook: c.Shook, Ended: c.Ended, Err: c.Err}
	}
	return out
}

// WindowClosed reports whether connection id, which must have been
// accepted, advertises a zero receive window (see the function
// WindowClosed): true on a Unix socket.
func (f *FakeCollector) WindowClosed(t testing.TB, id uint64) bool {
	t.Helper()
	closed, err := WindowClosed(f.conn(id).nc)
	if err != nil {
		t.Fatalf("fake collector: the window of connection %d: %v", id, err)
	}
	return closed
}

// WaitConns waits until the collector has accepted n connections, and
// returns what it knows of them.
func (f *FakeCollector) WaitConns(t testing.TB, n int) []FakeConn {
	t.Helper()
	var conns []FakeConn
	f.Wait(t, fmt.Sprintf("%d connections", n), func([]logsock.Record, []error) bool {
		conns = f.Connections()
		return len(conns) >= n
	})
	return conns
}

// WaitConn waits until connection id has been accepted and ok holds for
// it, and returns it.
func (f *FakeCollector) WaitConn(t testing.TB, id uint64, what string, ok func(FakeConn) bool) FakeConn {
	t.Helper()
	var c FakeConn
	f.Wait(t, fmt.Sprintf("connection %d: %s", id, what), func([]logsock.Record, []error) bool {
		conns := f.Connections()
		if uint64(len(conns)) < id {
			return false
		}
		c = conns[id-1]
		return ok(c)
	})
	return c
}

// WaitHandshake waits for the handshake of connection id and returns its
// pid.
func (f *FakeCollector) WaitHandshake(t testing.TB, id uint64) int32 {
	t.Helper()
	return f.WaitConn(t, id, "its handshake", func(c FakeConn) bool { return c.Shook }).Pid
}

// WaitConnEnd waits until connection id has ended, and returns it.
func (f *FakeCollector) WaitConnEnd(t testing.TB, id uint64) FakeConn {
	t.Helper()
	return f.WaitConn(t, id, "its end", func(c FakeConn) bool { return c.Ended })
}

// OneConnMsgs waits until connection 1 has ended, and returns the
// messages of its records, checking that each came on it and that its
// handshake named pid: a client that logged on one connection, then
// closed it.
func (f *FakeCollector) OneConnMsgs(t testing.TB, pid int) []string {
	t.Helper()
	f.WaitConnEnd(t, 1)
	var msgs []string
	for _, r := range f.WaitRecords(t, 0) {
		if r.Conn != 1 || int(r.Pid) != pid {
			t.Errorf("record %q: conn %d pid %d, want conn 1 pid %d", r.Msg, r.Conn, r.Pid, pid)
		}
		msgs = append(msgs, string(r.Msg))
	}
	return msgs
}
