// Command collector is the article's log server done properly: it accepts
// logsock streams on TCP and Unix sockets and prints one line a record.
//
//	go run ./examples/collector                      # 127.0.0.1:39999
//	go run ./examples/collector -json -listen unix:///tmp/log.sock -mode 0660
//
// Flags: -listen (repeatable: tcp://host:port, host:port or unix:///path),
// -mode (permissions of the Unix sockets, in octal, such as 0660; by
// default what the umask leaves), -json (JSON Lines with keys time, conn,
// pid, msg; on Unix sockets on Linux also peer_pid and peer_uid, the
// process that connected, and writer_pid, the one that wrote the frame;
// flags when one is set; msg_base64 for a message that is not UTF-8),
// -order little|big, -max-frame (bytes), -codepoints (lengths
// count code points, as the article's Python client sends them),
// -max-conns, -handshake-timeout, -idle-timeout and -reject-pid-mismatch
// (the logsock.Server fields of those names). It prints
// where it listens, and each connection's end, on standard error. SIGINT or
// SIGTERM drains the connections and exits.
//
// A Unix socket path that names a stale socket, one that nobody accepts on
// (as a killed collector leaves it), is replaced. A path in use by a running
// collector, or that names anything but a socket, is refused and left alone.
// On exit the collector removes the socket files it created, unless the path
// has since been given to another file.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

// modeFlag is the -mode flag: permission bits, or unset.
type modeFlag struct {
	perm fs.FileMode
	set  bool
}

func (m *modeFlag) String() string {
	if m == nil || !m.set {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(m.perm))
}

func (m *modeFlag) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || n&^0o777 != 0 {
		return errors.New("want permission bits in octal, such as 0660")
	}
	m.perm, m.set = fs.FileMode(n), true
	return nil
}

func main() {
	var listen listFlag
	flag.Var(&listen, "listen", "address to listen on, repeatable: tcp://host:port or unix:///path (default 127.0.0.1:39999)")
	// Unset, the umask decides, as for any file the collector creates: a
	// default of 0660 would open the socket to the group where the usual
	// umask 022 leaves it to the owner (on Linux, connect needs write
	// permission on the file).
	var mode modeFlag
	flag.Var(&mode, "mode", "permissions of the Unix sockets, in octal, such as 0660 (default: what the umask leaves)")
	jsonOut := flag.Bool("json", false, "print JSON Lines instead of text")
	maxFrame := flag.Int("max-frame", logsock.DefaultMaxFrame, "largest message accepted, in bytes")
	codePoints := flag.Bool("codepoints", false, "lengths count code points (the article's Python client)")
	var order logsock.ByteOrder
	flag.TextVar(&order, "order", logsock.LittleEndian, "byte order: little or big")
	maxConns := flag.Int("max-conns", logsock.DefaultMaxConns, "most connections open at once (negative: no limit)")
	handshakeTimeout := flag.Duration("handshake-timeout", logsock.DefaultHandshakeTimeout, "how long a new connection may take to send its handshake")
	idleTimeout := flag.Duration("idle-timeout", 0, "close a connection that sends nothing for this long (0: never)")
	rejectMismatch := flag.Bool("reject-pid-mismatch", false, "close a Unix connection whose handshake pid is not the connecting process's (wrong inside pid namespaces)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("collector: ")
	if len(listen) == 0 {
		listen = listFlag{"127.0.0.1:39999"}
	}

	// A failure anywhere, a Serve's or a write to standard output, comes
	// here rather than to log.Fatal, which would skip the removal of the
	// socket files; one slot per sender, so that none blocks.
	fail := make(chan error, len(listen)+1)
	out := &printer{w: bufio.NewWriter(os.Stdout), json: *jsonOut, fail: fail}
	srv := &logsock.Server{
		Handler:           out.record,
		Order:             order,
		MaxFrame:          *maxFrame,
		CodePoints:        *codePoints,
		MaxConns:          *maxConns,
		HandshakeTimeout:  *handshakeTimeout,
		IdleTimeout:       *idleTimeout,
		RejectPidMismatch: *rejectMismatch,
		ConnClosed: func(info logsock.ConnInfo, err error) {
			if err == nil || errors.Is(err, logsock.ErrServerClosed) {
				log.Printf("conn %d (pid %d) closed after %d frames", info.ID, info.Pid, info.Frames)
				return
			}
			log.Printf("conn %d (pid %d) closed after %d frames: %s: %v", info.ID, info.Pid, info.Frames, info.Reason, err)
		},
	}
	var perm *fs.FileMode
	if mode.set {
		perm = &mode.perm
	}
	if err := run(srv, listen, perm, fail); err != nil {
		out.flush()
		log.Fatal(err)
	}
	if err := out.flush(); err != nil {
		log.Fatal(err)
	}
}

// run listens on addrs, serves until a signal or a failure, drains the
// connections, and removes the socket files it created, on every way out.
// perm, if not nil, is the Unix sockets' mode.
func run(srv *logsock.Server, addrs []string, perm *fs.FileMode, fail chan error) (err error) {
	type address struct{ network, address string }
	var parsed []address
	for _, a := range addrs {
		network, addr, err := netaddr.Parse(a)
		if err != nil {
			return err
		}
		parsed = append(parsed, address{network, addr})
	}

	// Catch the signals before the first socket file exists: their
	// default action would end the process and leave the file behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)

	var listeners []net.Listener
	var files []*socketFile
	defer func() {
		// Remove before Close: an open listener pins its file's inode, so
		// that the number cannot pass to another file meanwhile (ext4 gives
		// a freed number to the next file at once, as the tests saw).
		for _, f := range files {
			f.remove()
		}
		for _, l := range listeners {
			l.Close() // Serve has closed it, unless it never ran: either is fine
		}
	}()
	for _, a := range parsed {
		var l net.Listener
		if a.network == "unix" {
			ul, f, err := listenUnix(a.address, perm)
			if err != nil {
				return err
			}
			l = ul
			files = append(files, f)
		} else if l, err = net.Listen(a.network, a.address); err != nil {
			return err
		}
		listeners = append(listeners, l)
		log.Printf("listening on %s", netaddr.Format(a.network, l.Addr().String()))
	}

	var wg sync.WaitGroup
	for _, l := range listeners {
		wg.Go(func() {
			if err := srv.Serve(l); !errors.Is(err, logsock.ErrServerClosed) {
				fail <- err
			}
		})
	}

	select {
	case <-sig:
	case err = <-fail:
	}
	// The socket files go first, while the listeners pin them (see
	// above): clients then find no collector rather than one that is
	// going away, and what they had queued is still drained.
	for _, f := range files {
		f.remove()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	wg.Wait()
	return err // main's flush reports a write that failed during the drain
}

// listenUnix listens on a Unix socket at path, after removing a stale
// socket file there, with the permissions perm if it is not nil. It leaves
// the file to the caller: the listener does not remove it on Close.
func listenUnix(path string, perm *fs.FileMode) (*net.UnixListener, *socketFile, error) {
	if err := removeStale(path); err != nil {
		return nil, nil, err
	}
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	var l *net.UnixListener
	var err error
	if perm == nil {
		l, err = net.ListenUnix("unix", addr)
	} else {
		// bind(2) creates the file with mode 0777 &^ umask, so a umask set
		// around it gives the file its mode from the start, where a chmod
		// after bind would leave it open to connect in between, and a bind
		// to a temporary name renamed into place would replace whatever
		// took the path meanwhile, a live socket included. systemd's
		// socket units set the umask too. The umask is the process's, which
		// is safe here: nothing else of ours creates files yet.
		old := syscall.Umask(int(0o777 &^ *perm))
		l, err = net.ListenUnix("unix", addr)
		syscall.Umask(old)
	}
	if err != nil {
		return nil, nil, err
	}
	// Close would unlink the path whatever it names by then, another
	// collector's socket included: socketFile.remove checks first.
	l.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		l.Close()
		return nil, nil, err
	}
	// A socket that took the path between bind and Lstat would pass for
	// ours: no system call names the file that a socket is bound to.
	f := &socketFile{path: path, fi: fi}
	if fi.Mode().Type() != fs.ModeSocket {
		// Replaced between bind and Lstat: not ours, and not to remove.
		l.Close()
		return nil, nil, fmt.Errorf("%s: replaced by %s as the collector listened", path, describe(fi))
	}
	if perm != nil && fi.Mode().Perm() != *perm {
		// A default ACL on the directory takes the umask's place.
		f.remove()
		l.Close()
		return nil, nil, fmt.Errorf("%s: created with mode %04o, want %04o (a default ACL on the directory?)",
			path, uint32(fi.Mode().Perm()), uint32(*perm))
	}
	return l, f, nil
}

// removeStale removes the file at path if it is a stale socket, one that
// nobody accepts on, as a collector killed by SIGKILL leaves it. It returns
// an error, and removes nothing, if a process accepts on the socket, if the
// file is not a socket, or if it cannot tell.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("%s is %s, not a socket: not removing it", path, describe(fi))
	}
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err == nil {
		c.Close() // the collector there logs a connection of 0 frames
		return fmt.Errorf("%s is already in use by a running collector", path)
	}
	// Only a refusal means that nobody listens. A live listener whose
	// queue is full answers EAGAIN, and a datagram socket EPROTOTYPE.
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("%s: cannot tell whether the socket is stale: %w", path, err)
	}
	// Remove the file only if it is still the one that refused. A window
	// remains between this Lstat and the unlink, as no system call unlinks
	// a path only if it names a given inode: a second collector that
	// replaced the stale socket in between would lose its file (it keeps
	// listening, but unreachable). Only a lock beside the socket would
	// close that window.
	again, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// Nothing pins the stale file's inode, and its number can pass to a
	// new file at once: the time tells them apart.
	if !os.SameFile(fi, again) || !fi.ModTime().Equal(again.ModTime()) {
		return fmt.Errorf("%s changed while the collector checked whether it was stale", path)
	}
	// syscall.Unlink, not os.Remove, which would remove a directory too.
	if err := syscall.Unlink(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return &fs.PathError{Op: "unlink", Path: path, Err: err}
	}
	log.Printf("removed stale socket %s", path)
	return nil
}

// describe says what kind of file fi is, for an error message.
func describe(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t.IsRegular():
		return "a regular file"
	case t.IsDir():
		return "a directory"
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return fmt.Sprintf("a file of type %v", t)
	}
}

// socketFile is a socket file that the collector created, as Lstat saw it
// just after the bind.
type socketFile struct {
	path    string
	fi      fs.FileInfo
	removed bool
}

// remove unlinks the file once, if the path still names it: another
// collector may have taken the path since (after someone removed the
// file), and its socket must stay.
func (f *socketFile) remove() {
	if f.removed {
		return
	}
	f.removed = true
	fi, err := os.Lstat(f.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		log.Printf("not removing %s: %v", f.path, err)
		return
	case !os.SameFile(f.fi, fi):
		log.Printf("not removing %s: it is no longer the socket this collector created", f.path)
		return
	}
	// The same window as in removeStale, between Lstat and unlink.
	if err := syscall.Unlink(f.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		log.Printf("removing %s: %v", f.path, err)
	}
}

// printer writes records to standard output; handlers of different
// connections call it concurrently.
type printer struct {
	mu   sync.Mutex // guards w, buf and err
	w    *bufio.Writer
	json bool
	buf  []byte
	err  error        // the first write error: records after it are dropped
	fail chan<- error // receives err, so that the collector drains and exits
}

// jsonRecord is a line of -json. The peer and writer keys come on Unix
// sockets on Linux only, where the kernel tells them; flags only when a
// flag is set, and msg_base64 only for a message that is not UTF-8 (msg
// then shows it with U+FFFD in place of the bad bytes).
type jsonRecord struct {
	Time      string   `json:"time"`
	Conn      uint64   `json:"conn"`
	Pid       int32    `json:"pid"`
	PeerPid   int32    `json:"peer_pid,omitempty"`
	PeerUid   *uint32  `json:"peer_uid,omitempty"`
	WriterPid int32    `json:"writer_pid,omitempty"`
	Flags     []string `json:"flags,omitempty"`
	Msg       string   `json:"msg"`
	MsgBase64 []byte   `json:"msg_base64,omitempty"`
}

func (p *printer) record(rec *logsock.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return
	}
	ts := rec.Time.UTC().Format(time.RFC3339Nano)
	if p.json {
		jr := jsonRecord{Time: ts, Conn: rec.Conn, Pid: rec.Pid, PeerPid: rec.PeerPid, WriterPid: rec.WriterPid, Msg: string(rec.Msg)}
		if rec.PeerPid != 0 {
			jr.PeerUid = &rec.PeerUid // uid 0 is root, not unknown
		}
		if rec.Flags != 0 {
			jr.Flags = strings.Split(rec.Flags.String(), "|")
		}
		if rec.Flags&logsock.FlagInvalidUTF8 != 0 {
			jr.MsgBase64 = rec.Msg
		}
		b, err := json.Marshal(jr)
		if err != nil {
			p.failed(err)
			return
		}
		p.w.Write(b)
		p.w.WriteByte('\n')
	} else {
		p.buf = fmt.Appendf(p.buf[:0], "%s conn=%d pid=%d ", ts, rec.Conn, rec.Pid)
		if rec.PeerPid != 0 {
			p.buf = fmt.Appendf(p.buf, "peer=%d uid=%d ", rec.PeerPid, rec.PeerUid)
		}
		if rec.WriterPid != 0 {
			p.buf = fmt.Appendf(p.buf, "writer=%d ", rec.WriterPid)
		}
		if rec.Flags != 0 {
			p.buf = fmt.Appendf(p.buf, "flags=%s ", rec.Flags)
		}
		p.buf = appendText(p.buf, rec.Msg)
		p.w.Write(append(p.buf, '\n'))
	}
	// Flush each record: a log line should show up as it arrives.
	if err := p.w.Flush(); err != nil {
		p.failed(err)
	}
}

// failed records the first write error and passes it on; p.mu is held.
func (p *printer) failed(err error) {
	p.err = fmt.Errorf("standard output: %w", err)
	p.fail <- p.err // once only: later records are dropped
}

// flush flushes what is left, and returns the first error.
func (p *printer) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		if err := p.w.Flush(); err != nil {
			p.err = fmt.Errorf("standard output: %w", err)
		}
	}
	return p.err
}

// appendText appends msg as it is when it is printable UTF-8 on one line,
// and quoted otherwise, so that a record is always one line.
func appendText(dst, msg []byte) []byte {
	if utf8.Valid(msg) && strconv.CanBackquote(string(msg)) {
		return append(dst, msg...)
	}
	return strconv.AppendQuote(dst, string(msg))
}
