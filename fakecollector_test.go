package logsock_test

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/testenv"
)

// fakeMode is what a fakeCollector does with the connections it accepts.
type fakeMode int

const (
	// fakeDecode reads each connection's handshake and frames into
	// records: Conn is the connection's number, from 1 in the order of
	// accept, and Pid its handshake's.
	fakeDecode fakeMode = iota
	// fakeDiscard reads everything and keeps nothing: for benchmarks.
	fakeDiscard
	// fakeClose closes each connection at once: a load balancer with no
	// backend. (On TCP the close is a RST if the handshake has already
	// arrived, unread.)
	fakeClose
	// fakeHandshakeClose reads the 4-byte handshake, then closes.
	fakeHandshakeClose
	// fakeStall never reads, until resume: a stalled collector. The
	// kernel still accepts connections and buffers what they send, until
	// the buffers are full.
	fakeStall
	// fakeBacklog never accepts, and its accept queue is full. On TCP a
	// dial hangs: the kernel drops the SYN, and the client sends it again
	// after 1 s, 3 s, 7 s... until its own timeout. On a Unix socket a
	// dial fails at once with EAGAIN: Go's connect is non-blocking, and
	// the kernel then does not wait for room in the queue. Each start
	// checks that a further dial does what is said here.
	fakeBacklog
	// fakeSyslog reads syslog's octet-counted frames (RFC 6587), with no
	// handshake, into records of Pid 0: a syslog server, for
	// Config.Framing OctetCounted.
	fakeSyslog
)

// fakeBacklogCheck is how long the check of a full backlog lets a TCP
// dial hang. A dial into a queue with room takes well under a millisecond
// on loopback (measured); the SYN's first retransmission comes after 1 s.
const fakeBacklogCheck = 100 * time.Millisecond

// fakeCollector is a collector for the client's tests, unhappy as its
// mode says, on "tcp" (127.0.0.1) or "unix" (a socket in a short
// temporary directory). It counts the connections it accepts; it can drop
// them all (a graceful restart), one (closeConn, resetConn), stop
// accepting, and go down and up again on the same address (stop, start).
// Tests wait for what it sees with the sink's wait, waitRecords and
// waitEnds (the reasons connections ended; nil for a clean EOF), and with
// waitConns, waitHandshake and waitConnEnd. Everything it starts is
// closed and joined when the test ends.
type fakeCollector struct {
	*sink
	network    string
	addr       string // where it listens, the same across restarts
	mode       fakeMode
	resumed    chan struct{} // closed by resume, once
	resumeOnce func()
	wg         sync.WaitGroup

	mu    sync.Mutex // guards the fields below
	l     net.Listener
	done  chan struct{} // closed when the accept loop of l has returned
	fills []net.Conn    // fakeBacklog: the connections that fill the queue
	conns []*fakeConn
}

// fakeConn is what a fakeCollector knows of one connection.
type fakeConn struct {
	id       uint64    // from 1, in the order of accept, across restarts
	accepted time.Time // when Accept returned it
	pid      int32     // the handshake's, once shook
	shook    bool
	ended    bool  // the collector has seen its end, and closed it
	err      error // why it ended: nil at a clean EOF

	nc      net.Conn
	dropped bool          // the collector closed nc first
	stop    chan struct{} // closed with dropped: it ends a stall
}

// newFakeCollector starts a fakeCollector of mode on network.
func newFakeCollector(t testing.TB, network string, mode fakeMode) *fakeCollector {
	t.Helper()
	f := &fakeCollector{sink: newSink(), network: network, mode: mode, resumed: make(chan struct{})}
	f.resumeOnce = sync.OnceFunc(func() { close(f.resumed) })
	var l net.Listener
	var err error
	if network == "unix" {
		l, err = net.Listen("unix", socketPath(t))
	} else {
		l, err = testenv.ListenTCP() // a port that a restart can bind again
	}
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	t.Cleanup(f.stop)
	f.serve(t, l)
	return f
}

// fakeDown is a fakeCollector of mode on network that is down: nothing
// listens on its address (a Unix path with no socket; for TCP a port that
// was bound, then closed) until start.
func fakeDown(t testing.TB, network string, mode fakeMode) *fakeCollector {
	t.Helper()
	f := newFakeCollector(t, network, mode)
	f.stop()
	return f
}

// start listens on the address again, after stop.
func (f *fakeCollector) start(t testing.TB) {
	t.Helper()
	l, err := net.Listen(f.network, f.addr)
	if err != nil {
		t.Fatalf("fake collector: listening again: %v", err)
	}
	f.serve(t, l)
}

func (f *fakeCollector) serve(t testing.TB, l net.Listener) {
	t.Helper()
	f.mu.Lock()
	f.l = l
	f.mu.Unlock()
	if f.mode == fakeBacklog {
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
			c := &fakeConn{id: uint64(len(f.conns) + 1), accepted: time.Now(), nc: nc, stop: make(chan struct{})}
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
func (f *fakeCollector) fillBacklog(t testing.TB) {
	t.Helper()
	setBacklog(t, f.l, 1)
	for range 2 {
		c, err := net.Dial(f.network, f.addr)
		if err != nil {
			t.Fatalf("fake collector: filling the backlog: %v", err)
		}
		f.mu.Lock()
		f.fills = append(f.fills, c)
		f.mu.Unlock()
	}
	start := time.Now()
	c, err := net.DialTimeout(f.network, f.addr, fakeBacklogCheck)
	if err == nil {
		c.Close()
	}
	var ne net.Error
	switch {
	case f.network == "unix" && errors.Is(err, syscall.EAGAIN):
	case f.network != "unix" && errors.As(err, &ne) && ne.Timeout() && time.Since(start) >= fakeBacklogCheck:
	default:
		t.Fatalf("fake collector: a dial into the full backlog returned %v after %v", err, time.Since(start))
	}
}

// read does what the mode says with c, and returns why it stopped.
func (f *fakeCollector) read(c *fakeConn) error {
	switch f.mode {
	case fakeDiscard:
		_, err := io.Copy(io.Discard, c.nc)
		return err
	case fakeClose:
		return nil
	case fakeHandshakeClose:
		pid, err := readPid(c.nc, logsock.LittleEndian)
		if err == nil {
			f.shake(c, pid)
		}
		return err
	case fakeStall:
		select {
		case <-f.resumed:
		case <-c.stop:
			return net.ErrClosed
		}
	case fakeSyslog:
		return f.readSyslog(c)
	}
	// fakeDecode, and fakeStall once resumed.
	d := logsock.NewDecoder(c.nc, nil)
	pid, err := d.Handshake()
	if err != nil {
		return err
	}
	f.shake(c, pid)
	rec := logsock.Record{Origin: logsock.Origin{Conn: c.id, Pid: pid}}
	for {
		if rec.Msg, err = d.Next(); err != nil {
			return err
		}
		rec.Time = time.Now()
		f.record(&rec)
	}
}

// readSyslog reads octet-counted frames from c into records, as
// rsyslog's imptcp does: digits, a space, then that many bytes. A frame
// that breaks the format ends the connection with an error.
func (f *fakeCollector) readSyslog(c *fakeConn) error {
	r := bufio.NewReader(c.nc)
	rec := logsock.Record{Origin: logsock.Origin{Conn: c.id}}
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
		f.record(&rec)
	}
}

func (f *fakeCollector) shake(c *fakeConn, pid int32) {
	f.mu.Lock()
	c.pid, c.shook = pid, true
	f.mu.Unlock()
	f.signal()
}

// end closes c and records why it ended.
func (f *fakeCollector) end(c *fakeConn, err error) {
	c.nc.Close()
	if err == io.EOF {
		err = nil
	}
	f.mu.Lock()
	c.ended, c.err = true, err
	f.mu.Unlock()
	f.closed(logsock.ConnInfo{Origin: logsock.Origin{Conn: c.id, Pid: c.pid}}, err)
}

// resume makes a fakeStall collector read its connections, and those it
// accepts later, as fakeDecode does.
func (f *fakeCollector) resume() { f.resumeOnce() }

// closeConn closes connection id, which must have been accepted,
// gracefully (a FIN, if all it sent was read).
func (f *fakeCollector) closeConn(id uint64) { f.drop(f.conn(id), false) }

// shutConn drops connection id, which must have been accepted, and loses
// nothing: it shuts down its sending side and reads on. The clients' peek
// sees the end and stops writing on it; once they have closed it, its
// reader sees theirs.
func (f *fakeCollector) shutConn(t testing.TB, id uint64) {
	t.Helper()
	if err := f.conn(id).nc.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("fake collector: shutting down connection %d: %v", id, err)
	}
}

// resetConn closes connection id abortively: a RST on TCP (SO_LINGER 0),
// a plain close on a Unix socket.
func (f *fakeCollector) resetConn(id uint64) { f.drop(f.conn(id), true) }

// dropAll closes every connection: a graceful restart, as the clients see
// it. The collector goes on accepting.
func (f *fakeCollector) dropAll() {
	f.mu.Lock()
	conns := f.conns
	f.mu.Unlock()
	for _, c := range conns {
		f.drop(c, false)
	}
}

func (f *fakeCollector) conn(id uint64) *fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns[id-1]
}

func (f *fakeCollector) drop(c *fakeConn, reset bool) {
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

// stopAccepting closes the listener, so that dials fail (on a Unix
// socket, its file goes too), and returns how many connections it
// accepted in all. Those it accepted go on.
func (f *fakeCollector) stopAccepting() int {
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

// stop takes the collector down: it stops accepting, closes every
// connection, and waits until it has seen each end. start brings it up
// again on the same address.
func (f *fakeCollector) stop() {
	f.stopAccepting()
	f.dropAll()
	f.wg.Wait()
}

// connections returns what the collector knows of its connections so far.
func (f *fakeCollector) connections() []fakeConn {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fakeConn, len(f.conns))
	for i, c := range f.conns {
		out[i] = fakeConn{id: c.id, accepted: c.accepted, pid: c.pid, shook: c.shook, ended: c.ended, err: c.err}
	}
	return out
}

// windowClosed reports whether connection id, which must have been
// accepted, advertises a zero receive window (see the function
// windowClosed): true on a Unix socket.
func (f *fakeCollector) windowClosed(t testing.TB, id uint64) bool {
	t.Helper()
	closed, err := windowClosed(f.conn(id).nc)
	if err != nil {
		t.Fatalf("fake collector: the window of connection %d: %v", id, err)
	}
	return closed
}

// waitConns waits until the collector has accepted n connections, and
// returns what it knows of them.
func (f *fakeCollector) waitConns(t testing.TB, n int) []fakeConn {
	t.Helper()
	var conns []fakeConn
	f.wait(t, fmt.Sprintf("%d connections", n), func([]logsock.Record, []error) bool {
		conns = f.connections()
		return len(conns) >= n
	})
	return conns
}

// waitConn waits until connection id has been accepted and ok holds for
// it, and returns it.
func (f *fakeCollector) waitConn(t testing.TB, id uint64, what string, ok func(fakeConn) bool) fakeConn {
	t.Helper()
	var c fakeConn
	f.wait(t, fmt.Sprintf("connection %d: %s", id, what), func([]logsock.Record, []error) bool {
		conns := f.connections()
		if uint64(len(conns)) < id {
			return false
		}
		c = conns[id-1]
		return ok(c)
	})
	return c
}

// waitHandshake waits for the handshake of connection id and returns its
// pid.
func (f *fakeCollector) waitHandshake(t testing.TB, id uint64) int32 {
	t.Helper()
	return f.waitConn(t, id, "its handshake", func(c fakeConn) bool { return c.shook }).pid
}

// waitConnEnd waits until connection id has ended, and returns it.
func (f *fakeCollector) waitConnEnd(t testing.TB, id uint64) fakeConn {
	t.Helper()
	return f.waitConn(t, id, "its end", func(c fakeConn) bool { return c.ended })
}

// TestFakeCollector checks that each mode does what the tests that use
// the fake collector rely on.
func TestFakeCollector(t *testing.T) {
	t.Parallel()
	pid := int32(os.Getpid())
	for _, network := range []string{"tcp", "unix"} {
		// What a dial meets where nothing listens.
		refused := map[string]error{"tcp": errConnRefused, "unix": syscall.ENOENT}[network]
		mustRead := func(t *testing.T, c net.Conn, want error) {
			t.Helper()
			if n, err := c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, want) {
				t.Errorf("client read %d, %v; want %v", n, err, want)
			}
		}
		t.Run(network+"/decode", func(t *testing.T) {
			f := newFakeCollector(t, network, fakeDecode)
			before := time.Now()
			c1 := rawConn(t, network, f.addr, frames(0, pid, "one", "two"))
			c2 := rawConn(t, network, f.addr, frames(0, pid+1, "three"))
			recs := f.waitRecords(t, 3)
			conns := f.waitConns(t, 2)
			if at := conns[0].accepted; at.Before(before) || at.After(time.Now()) || conns[1].accepted.Before(at) {
				t.Errorf("accepted at %v and %v, test began %v", at, conns[1].accepted, before)
			}
			slices.SortFunc(recs, func(a, b logsock.Record) int { return cmp.Compare(a.Conn, b.Conn) })
			if fmt.Sprint(msgs(recs)) != "[one two three]" || recs[0].Conn != 1 || recs[1].Conn != 1 || recs[2].Conn != 2 ||
				recs[0].Pid != pid || recs[2].Pid != pid+1 {
				t.Errorf("records %s", formatRecords(recs))
			}
			f.closeConn(1)
			mustRead(t, c1, io.EOF)
			if end := f.waitConnEnd(t, 1); !errors.Is(end.err, net.ErrClosed) {
				t.Errorf("connection 1 ended with %v, want net.ErrClosed", end.err)
			}
			f.dropAll()
			mustRead(t, c2, io.EOF)
			if n := f.stopAccepting(); n != 2 {
				t.Errorf("stopAccepting: %d accepted, want 2", n)
			}
			if _, err := net.Dial(network, f.addr); !errors.Is(err, refused) {
				t.Errorf("dial after stopAccepting: %v, want %v", err, refused)
			}
		})
		t.Run(network+"/flapping", func(t *testing.T) {
			f := fakeDown(t, network, fakeDecode)
			for round := range 2 {
				if _, err := net.Dial(network, f.addr); !errors.Is(err, refused) {
					t.Errorf("dial while down: %v, want %v", err, refused)
				}
				f.start(t)
				c := rawConn(t, network, f.addr, frames(0, pid, fmt.Sprint("up ", round)))
				if r := f.waitRecords(t, round+1)[round]; string(r.Msg) != fmt.Sprint("up ", round) || r.Conn != uint64(round+1) {
					t.Errorf("record %+v", r)
				}
				f.stop()
				mustRead(t, c, io.EOF)
			}
		})
		t.Run(network+"/discard", func(t *testing.T) {
			f := newFakeCollector(t, network, fakeDiscard)
			c := rawConn(t, network, f.addr, frames(0, pid), make([]byte, 1<<20))
			c.Close()
			if end := f.waitConnEnd(t, 1); end.err != nil || len(f.waitRecords(t, 0)) != 0 {
				t.Errorf("end %v, records %d: want a clean end, none", end.err, len(f.waitRecords(t, 0)))
			}
		})
		t.Run(network+"/close", func(t *testing.T) {
			f := newFakeCollector(t, network, fakeClose)
			c := rawConn(t, network, f.addr)
			mustRead(t, c, io.EOF)
			f.waitConnEnd(t, 1)
		})
		t.Run(network+"/handshake-close", func(t *testing.T) {
			f := newFakeCollector(t, network, fakeHandshakeClose)
			c := rawConn(t, network, f.addr, frames(0, pid))
			if got := f.waitHandshake(t, 1); got != pid {
				t.Errorf("handshake %d, want %d", got, pid)
			}
			mustRead(t, c, io.EOF)
		})
		t.Run(network+"/stall", func(t *testing.T) {
			// 24 MiB of 64 KiB frames: more than the kernel buffers of a
			// loopback connection hold (tcp_rmem and tcp_wmem are 6 MiB
			// and 4 MiB at most by default; a Unix socket's, 208 KiB).
			const size, n = 64 << 10, 384
			f := newFakeCollector(t, network, fakeStall)
			stream := frames(0, pid)
			for range n {
				stream = logsock.AppendFrame(stream, logsock.LittleEndian, make([]byte, size))
			}
			c := rawConn(t, network, f.addr)
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			written, err := c.Write(stream)
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("write to a stalled collector: %d of %d bytes, %v; want a timeout", written, len(stream), err)
			}
			f.resume()
			whole := (written - logsock.HeaderLen) / (logsock.HeaderLen + size)
			if whole == 0 {
				t.Fatalf("%d bytes written: not one whole frame", written)
			}
			if recs := f.waitRecords(t, whole); len(recs[0].Msg) != size {
				t.Errorf("record of %d bytes, want %d", len(recs[0].Msg), size)
			}
		})
		t.Run(network+"/backlog", func(t *testing.T) {
			f := newFakeCollector(t, network, fakeBacklog) // checks the dial too
			if conns := f.connections(); len(conns) != 0 {
				t.Errorf("%d connections accepted", len(conns))
			}
			f.stop()
			if _, err := net.Dial(network, f.addr); !errors.Is(err, refused) {
				t.Errorf("dial after stop: %v, want %v", err, refused)
			}
		})
	}
}
