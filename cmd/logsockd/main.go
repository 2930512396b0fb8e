//go:build unix

// Command logsockd is the logsock collector daemon: it accepts logsock
// streams on TCP and Unix sockets and writes one line a record to
// standard output or a file, forwards every record to a syslog server, or
// both.
//
//	go run ./cmd/logsockd                   # 127.0.0.1:39999, text on standard output
//	logsockd -listen unix:///run/logsock.sock -mode 0660 -json -o /var/log/logsock.jsonl
//	logsockd -listen tcp://0.0.0.0:39999 -forward syslog+tcp://relay.example:514
//
// # Records
//
// A text line is
//
//	TIME conn=N pid=N [remote=ADDR] [peer=N uid=N gid=N] [writer=N] [flags=F] MESSAGE
//
// and a JSON line (-json) has the keys time, conn, pid, msg; remote, the
// client's address, for TCP; on Unix sockets on Linux peer_pid, peer_uid
// and peer_gid (the process that connected) and writer_pid (the one that
// wrote the frame); flags when one is set. TIME is the receive time, in
// UTC, RFC 3339 with nanoseconds. One trailing newline, which slog, log
// and zap end every record with, is not part of the printed message; the
// JSON msg keeps the exact bytes otherwise, with U+FFFD for bytes that
// are not UTF-8, and then msg_base64 holds all the bytes as they came.
// With -json-msg, a message that is a JSON object is written as one (on
// one line), not as a string. Text prints the message as it is, but
// writes control characters (except tab) as \n, \r or \xHH, C1 controls
// and U+2028 and U+2029 as \uHHHH, and bytes that are not UTF-8 as \xHH,
// so that a record stays on one line; a backslash stays as it is.
//
// Lines are written in large writes: a buffer is written when it is full
// or -flush-delay after its first record, whichever comes first.
//
// # Outputs
//
// -o FILE appends to FILE, created with mode -o-mode (0640) if absent; -o -
// is standard output, the default unless -forward is given. SIGHUP reopens
// the file, between two writes, so that logrotate needs no copytruncate.
// A write that fails (EPIPE, ENOSPC) is reported on standard error; then
// logsockd stops accepting, drains its connections (into -forward, if
// given; the records that cannot be written are counted) and exits 1.
// SIGPIPE does not kill it.
//
// -forward syslog+tcp://HOST:PORT sends every record to a syslog server
// as RFC 5424 in octet-counted framing (RFC 6587), facility user and
// severity informational (<14>): the receive time (to the microsecond),
// this host's name, -app-name, PROCID the writer's pid where known (the
// handshake pid otherwise), structured data [logsock@32473 conn pid remote
// peer_pid peer_uid peer_gid writer_pid flags] where known, and the
// message's bytes unchanged (rsyslog drops one trailing newline on
// reception unless parser.dropTrailingLFOnReception is off). It has the
// logsock client's delivery properties: a buffer of -forward-buffer
// bytes, the oldest records dropped (and counted) when it is full,
// reconnects with capped backoff and jitter, a message whose write failed
// sent again whole. And its limit: syslog over TCP has no
// acknowledgements, so what the syslog server's kernel has taken and the
// server has not read when it stops is lost, uncounted. rsyslogd does not
// always read its sockets dry when it stops: a restart under load can
// lose up to what its socket's receive buffer held (thousands of records;
// TestLogsockdForwardRestartUnderLoad bounds it). A restart while the
// forwarder is quiet, or an outage, loses nothing: the forwarder holds the
// records until the server is back.
//
// # Signals and logs
//
// SIGINT or SIGTERM stops accepting, drains the connections (for up to
// 5 s), writes and flushes every record, delivers what the forwarder holds
// (for up to 5 s) and exits. A standard output that has stopped reading
// (a stalled pipe) holds that exit up until it reads again, since every
// record delivered is written first: a service manager's stop timeout
// ends it then. SIGUSR1 prints the counters. logsockd logs,
// on standard error, where it listens, each connection's end and why,
// output errors, and its counters at exit. Exit status: 0 after a signal,
// 1 after a failure, 2 for a bad command line.
//
// logsockd runs on Unix only, which has these signals; the logsock
// package itself builds for Windows too.
//
// # Limits
//
// At -max-conns logsockd stops accepting, so that new connections wait in
// the listen backlog with what their clients sent, rather than be closed
// with it. One peer (a user on a Unix socket, an IP address over TCP)
// cannot take every slot: past -max-conns-per-peer (by default half of
// -max-conns) its new connection is refused, after what it sent has been
// read (a logsock client sees the close before it writes more, keeps its
// records and reconnects later). Over TCP every local client is the same
// peer, 127.0.0.1; a Unix socket tells local users apart. -max-memory
// bounds the read buffers of busy connections and of the frames being
// received (each such frame's full length, 1 MiB at most by default):
// beyond it, the connections that need more are not read until memory
// frees, and what they free goes back to the system at once.
//
// # Unix sockets
//
// A Unix socket path that names a stale socket, one that nobody accepts on
// (as a killed collector leaves it), is replaced. A path in use by a running
// collector, or that names anything but a socket, is refused and left alone.
// On exit logsockd removes the socket files it created, unless the path
// has since been given to another file.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"maps"
	"net"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/netaddr"
)

// drainTimeout bounds Server.Shutdown's drain at exit.
const drainTimeout = 5 * time.Second

// address is a -listen address, parsed.
type address struct{ network, address string }

// config is the command line.
type config struct {
	listen     []address
	mode       modeFlag
	json       bool
	jsonMsg    bool
	out        string // "-" for standard output, "" for none
	outMode    modeFlag
	flushDelay time.Duration
	forward    string // host:port, or ""
	appName    string
	fwdBuffer  int
	srv        logsock.Server // with the limits of the flags; run sets the callbacks
}

const usageHead = `usage: logsockd [flags]

logsockd receives logsock streams on TCP and Unix sockets and writes one line
a record to standard output or a file (-o), forwards the records to a syslog
server (-forward), or both. SIGINT and SIGTERM drain the connections and exit,
SIGHUP reopens the -o file, SIGUSR1 prints the counters on standard error.

examples:
  logsockd -listen unix:///run/logsock.sock -mode 0660 -json -o /var/log/logsock.jsonl
  logsockd -listen tcp://0.0.0.0:39999 -forward syslog+tcp://relay.example:514

text:  TIME conn=N pid=N [remote=ADDR] [peer=N uid=N gid=N] [writer=N] [flags=F] MESSAGE
json:  {"time","conn","pid"[,"remote"][,"peer_pid","peer_uid","peer_gid"]
        [,"writer_pid"][,"flags"],"msg"[,"msg_base64"]}
One trailing newline is not part of the printed message. Text writes control
characters (except tab) as \n, \r or \xHH, C1 controls, U+2028 and U+2029 as
\uHHHH, bytes that are not UTF-8 as \xHH, and the rest as it is (backslashes
too): use -json for the exact bytes (msg, and msg_base64 for a message that is
not UTF-8).

limits: at -max-conns, logsockd stops accepting: new connections wait in the
listen backlog with what they sent, until one ends. A peer (a user on a Unix
socket, an IP address over TCP: every local TCP client is 127.0.0.1) at
-max-conns-per-peer is refused a new connection: what it sent is read, then it
is closed (a logsock client keeps its other records and reconnects later), and
the refusal is logged (conn_limit). Beyond -max-memory of read buffers, the
connections that need more stop being read until memory frees; the others go
on. SIGUSR1 shows the memory in use and the connections paused.

flags:
`

// parseFlags parses the command line; on an error it exits 2.
func parseFlags(flags *flag.FlagSet, args []string) *config {
	cfg := &config{outMode: modeFlag{perm: 0o640, set: true}}
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usageHead)
		flags.PrintDefaults()
	}
	flags.Func("listen", "address to listen on, repeatable: tcp://host:port, host:port or unix:///path (default 127.0.0.1:39999)", func(s string) error {
		network, addr, err := netaddr.Parse(s)
		cfg.listen = append(cfg.listen, address{network, addr})
		return err
	})
	// Unset, the umask decides, as for any file the collector creates: a
	// default of 0660 would open the socket to the group where the usual
	// umask 022 leaves it to the owner (on Linux, connect needs write
	// permission on the file).
	flags.Var(&cfg.mode, "mode", "permissions of the Unix sockets, in octal, such as 0660 (default: what the umask leaves)")
	flags.BoolVar(&cfg.json, "json", false, "write JSON Lines instead of text")
	flags.BoolVar(&cfg.jsonMsg, "json-msg", false, "with -json, write a message that is a JSON object as an object, not a string")
	flags.StringVar(&cfg.out, "o", "", "append the records to this file (reopened on SIGHUP); - is standard output (default: standard output, unless -forward is given)")
	flags.Var(&cfg.outMode, "o-mode", "permissions of the -o file, in octal, if logsockd creates it")
	flags.DurationVar(&cfg.flushDelay, "flush-delay", 5*time.Millisecond, "longest time a record waits in the buffer before it is written")
	flags.Func("forward", "send every record to a syslog server, RFC 5424 in octet-counted framing: syslog+tcp://HOST:PORT", func(s string) error {
		hostport, err := parseForward(s)
		cfg.forward = hostport
		return err
	})
	flags.StringVar(&cfg.appName, "app-name", "logsockd", "APP-NAME of the forwarded messages")
	flags.IntVar(&cfg.fwdBuffer, "forward-buffer", logsock.DefaultBufferBytes, "bytes of messages the forwarder holds while the syslog server is slow or away; beyond, the oldest are dropped")

	srv := &cfg.srv
	flags.IntVar(&srv.MaxFrame, "max-frame", logsock.DefaultMaxFrame, "largest message accepted, in bytes")
	flags.BoolVar(&srv.CodePoints, "codepoints", false, "lengths count code points (the article's Python client)")
	flags.TextVar(&srv.Order, "order", logsock.LittleEndian, "byte order: little or big")
	flags.IntVar(&srv.MaxConns, "max-conns", logsock.DefaultMaxConns, "most connections served at once; beyond, new ones wait in the listen backlog until one ends (negative: no limit)")
	flags.IntVar(&srv.MaxConnsPerPeer, "max-conns-per-peer", 0, "most connections served at once for one peer, a user on a Unix socket or an IP address over TCP; beyond, a new one is read, then closed (0: half of -max-conns; negative: no limit)")
	flags.IntVar(&srv.MaxMemory, "max-memory", logsock.DefaultMaxMemory, "bytes of read buffers for busy connections and frames being received; beyond, a connection that needs more pauses until some frees (negative: no limit)")
	flags.DurationVar(&srv.HandshakeTimeout, "handshake-timeout", logsock.DefaultHandshakeTimeout, "how long a new connection may take to send its handshake")
	flags.DurationVar(&srv.IdleTimeout, "idle-timeout", 0, "close a connection that sends nothing for this long (0: never)")
	flags.BoolVar(&srv.RejectPidMismatch, "reject-pid-mismatch", false, "close a Unix connection whose handshake pid is not the connecting process's (wrong inside pid namespaces)")

	flags.Parse(args) // ExitOnError: exits 2
	usage := func(format string, args ...any) {
		fmt.Fprintf(flags.Output(), "logsockd: "+format+"\n", args...)
		flags.Usage()
		os.Exit(2)
	}
	if flags.NArg() > 0 {
		usage("unexpected argument %q: logsockd takes flags only", flags.Arg(0))
	}
	if err := checkAppName(cfg.appName); err != nil {
		usage("-app-name: %v", err)
	}
	if srv.MaxFrame <= 0 {
		usage("-max-frame %d: want a positive number of bytes", srv.MaxFrame)
	}
	if cfg.fwdBuffer <= 0 {
		usage("-forward-buffer %d: want a positive number of bytes", cfg.fwdBuffer)
	}
	if cfg.flushDelay <= 0 {
		usage("-flush-delay %v: want a positive duration", cfg.flushDelay)
	}
	if len(cfg.listen) == 0 {
		cfg.listen = []address{{"tcp", "127.0.0.1:39999"}}
	}
	if cfg.out == "" && cfg.forward == "" {
		cfg.out = "-"
	}
	return cfg
}

func main() {
	cfg := parseFlags(flag.CommandLine, os.Args[1:])
	log.SetFlags(0)
	log.SetPrefix("logsockd: ")
	os.Exit(run(cfg))
}

// daemon is a run of logsockd: the Server and where its records go.
type daemon struct {
	cfg  *config
	srv  *logsock.Server
	out  *output    // nil with -forward alone
	fwd  *forwarder // nil without -forward
	fail chan error // a Serve's error, or the output's
}

// run runs the daemon until a signal or a failure, and returns the exit
// status.
func run(cfg *config) int {
	// A write to a closed pipe must fail with EPIPE, which the output
	// reports, rather than kill the process: Go kills a program that
	// writes to a broken standard output unless it is notified of SIGPIPE
	// (os/signal, "SIGPIPE"). The channel is never read.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	// Caught before the first socket file exists: their default action
	// would end the process and leave the file behind.
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)

	// One slot per sender, so that none blocks.
	d := &daemon{cfg: cfg, srv: &cfg.srv, fail: make(chan error, len(cfg.listen)+1)}
	if cfg.forward != "" {
		// New checks the configuration and connects later: the
		// collector starts while the syslog server is away.
		w, err := newSyslog(cfg.forward, cfg.srv.MaxFrame, cfg.fwdBuffer)
		if err != nil {
			log.Printf("forward %s: %v", cfg.forward, err)
			return 1
		}
		host, _ := os.Hostname() // "" becomes "-", the nil HOSTNAME
		d.fwd = newForwarder(cfg.forward, host, cfg.appName, w)
		log.Printf("forwarding to %s%s", forwardScheme, cfg.forward)
	}
	if cfg.out != "" {
		path := cfg.out
		if path == "-" {
			path = ""
		}
		var err error
		if d.out, err = newOutput(path, cfg.outMode.perm, cfg.flushDelay, newFormatter(cfg.json, cfg.jsonMsg), d.fail); err != nil {
			log.Print(err)
			if d.fwd != nil {
				d.fwd.Close() // it has sent nothing
			}
			return 1
		}
	}
	d.srv.Handler = d.record
	d.srv.ConnClosed = d.connClosed

	code := 0
	if err := d.serve(sig); err != nil {
		log.Print(err)
		code = 1
	}
	// Shutdown has returned: no handler runs any more.
	if d.out != nil {
		if err := d.out.Close(); err != nil {
			code = 1 // logged when it happened
		}
	}
	if d.fwd != nil {
		if err := d.fwd.Close(); err != nil {
			log.Print(err)
		}
	}
	d.logStats()
	return code
}

func (d *daemon) record(rec *logsock.Record) {
	if d.out != nil {
		d.out.record(rec)
	}
	if d.fwd != nil {
		d.fwd.record(rec)
	}
}

func (d *daemon) connClosed(info logsock.ConnInfo, err error) {
	logConnEnd(info, err)
	if d.out != nil {
		d.out.connClosed(info.ID)
	}
	if d.fwd != nil {
		d.fwd.connClosed(info.ID)
	}
}

// serve listens on the configured addresses, serves until a signal or a
// failure, drains the connections, and removes the socket files it
// created, on every way out. It returns the failure, if any.
func (d *daemon) serve(sig <-chan os.Signal) (err error) {
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
	var perm *fs.FileMode
	if d.cfg.mode.set {
		perm = &d.cfg.mode.perm
	}
	for _, a := range d.cfg.listen {
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
			if err := d.srv.Serve(l); !errors.Is(err, logsock.ErrServerClosed) {
				d.fail <- err
			}
		})
	}

wait:
	for {
		select {
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				if d.out == nil {
					log.Print("SIGHUP: no output to reopen")
				} else if err := d.out.Reopen(); err != nil {
					log.Printf("SIGHUP: %v", err)
				}
			case syscall.SIGUSR1:
				d.logStats()
			default:
				break wait
			}
		case err = <-d.fail:
			break wait
		}
	}
	// The socket files go first, while the listeners pin them (see
	// above): clients then find no collector rather than one that is
	// going away, and what they had queued is still drained.
	for _, f := range files {
		f.remove()
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	wg.Wait()
	return err
}

// logConnEnd logs the end of a connection, and why.
func logConnEnd(info logsock.ConnInfo, err error) {
	from := ""
	if remote := remoteString(info.Remote); remote != "" {
		from = " from " + remote
	}
	msg := fmt.Sprintf("conn %d (pid %d%s) closed after %d frames: %s", info.ID, info.Pid, from, info.Frames, info.Reason)
	if err != nil && !errors.Is(err, logsock.ErrServerClosed) {
		msg += ": " + err.Error()
	}
	log.Print(msg)
}

// logStats logs the counters of the Server, the output and the forwarder.
func (d *daemon) logStats() {
	st := d.srv.Stats()
	var ends strings.Builder
	for _, r := range slices.Sorted(maps.Keys(st.Ends)) {
		fmt.Fprintf(&ends, " %s=%d", r, st.Ends[r])
	}
	log.Printf("server: accepted=%d active=%d frames=%d bytes=%d invalid_utf8=%d pid_mismatch=%d mixed_writers=%d cut=%d memory=%d paused=%d ends:%s",
		st.Accepted, st.Active, st.Frames, st.Bytes, st.InvalidUTF8, st.PidMismatch, st.MixedWriters, st.Cut, st.Memory, st.Paused, ends.String())
	if d.out != nil {
		o := d.out.Stats()
		log.Printf("output %s: records=%d bytes=%d dropped=%d reopens=%d", d.out.name, o.Records, o.Bytes, o.Dropped, o.Reopens)
	}
	if d.fwd != nil {
		f := d.fwd.w.Stats()
		log.Printf("forward %s: frames=%d bytes=%d held=%d held_bytes=%d dropped=%d reconnects=%d errors=%d",
			d.fwd.addr, f.Frames, f.Bytes, f.Held, f.HeldBytes, f.Dropped, f.Reconnects, f.Errors)
	}
}
