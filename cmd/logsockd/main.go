//go:build unix

// Command logsockd is the logsock collector daemon: it accepts logsock
// streams on TCP (plain or TLS) and Unix sockets and writes one line a
// record to standard output or a file, forwards every record to a syslog
// server, or both.
//
//	go run ./cmd/logsockd                   # 127.0.0.1:39999, text on standard output
//	logsockd -listen unix:///run/logsock.sock -mode 0660 -json -o /var/log/logsock.jsonl
//	logsockd -listen tcp://0.0.0.0:39999 -forward syslog+tcp://relay.example:514
//	logsockd -listen tls://0.0.0.0:39998 -tls-cert host.pem -tls-key host-key.pem -tls-client-ca clients.pem \
//	         -forward syslog+tls://relay.example:6514 -forward-ca relay-ca.pem
//
// # Records
//
// A text line is
//
//	TIME [V2] run=ID conn=N pid=N [remote=ADDR] [peer=N uid=N gid=N] [writer=N] [flags=F] MESSAGE
//
// where V2, for a client of protocol v2 (acknowledged delivery), is
//
//	client_time=TIME session=HEX/SEQ level=LEVEL tag=TAG
//
// and a JSON line (-json) has the keys time, run, conn, pid, msg; for a v2
// client, client_time, session, seq, level and tag just after time; remote,
// the client's address, for TCP; on Unix sockets on Linux peer_pid, peer_uid
// and peer_gid (the process that connected) and writer_pid (the one that
// wrote the frame); flags when one is set. TIME is the receive time, in
// UTC, RFC 3339 with nanoseconds; client_time, as precise, is when the
// client logged the record. session is the v2 client's session, 32
// hexadecimal digits, and seq the record's number in it: a record sent
// again after a reconnect keeps both. level is the client's (emerg,
// alert, crit, err, warning, notice, info, debug), tag its name. A v1
// client's records have none of them. ID is this run's id, 16 random
// hexadecimal digits that logsockd logs at start: connections are
// numbered from 1 in each run, so that in a file that several runs
// appended to, a connection is its run and its number. One trailing newline, which slog, log
// and zap end every record with, is not part of the printed message; the
// JSON msg keeps the exact bytes otherwise, with U+FFFD for bytes that
// are not UTF-8, and then msg_base64 holds all the bytes as they came.
// With -json-msg, a message that is a JSON object is written as one (on
// one line, its white space dropped), not as a string, if jq, Python's
// json and the like all read it as the same value: RFC 8259 JSON in
// UTF-8, nested at most 64 deep (jq 1.6 and serde_json refuse objects
// more than 128 deep), no name twice in an object, no lone surrogate
// (\ud800), numbers within float64's range. Any other message stays a
// string. Text prints the message as it is, but
// writes control characters (except tab) as \n, \r or \xHH, C1 controls
// and U+2028 and U+2029 as \uHHHH, and bytes that are not UTF-8 as \xHH,
// so that a record stays on one line; a backslash stays as it is.
//
// Lines are written in large writes of whole records: a buffer is written
// when it is full or -flush-delay after its first record, whichever comes
// first, and a short write is continued.
//
// # Outputs
//
// -o FILE appends to FILE, created with mode -o-mode (0640) if absent; -o -
// is standard output, the default unless -forward is given.
//
// logsockd takes protocol v1 and v2 clients on the same sockets. A v2
// client holds each record until logsockd acknowledges it, and sends
// again what was not acknowledged after a reconnect. logsockd
// acknowledges a record once the write(2) that holds it has returned, so
// a crash of logsockd loses nothing that a client let go of; with -fsync,
// once fsync(2) of the file has returned too, so that a crash of the
// host does not either. -fsync costs one fsync a write (a buffer of up to
// 256 KiB, or what -flush-delay gathered), not one a record; each makes
// the writer wait for the disk, and meanwhile the buffers fill and the
// connections wait. Measured on ext4 on a virtual disk (2 cores, 300,000
// records of 100 bytes from one v2 client over a Unix socket, medians of
// 3): batching, 1.06M records/s without -fsync, 0.48M with (0.45x);
// direct, 0.19M and 0.13M (0.68x).
// Without -o (with -forward alone), a record is acknowledged once the
// forwarder holds it. A record that the output cannot write (it has
// failed, or the drain's deadline passed) is not acknowledged: its client
// sends it to the next logsockd.
//
// With -o FILE, logsockd reads the last 64 MiB of FILE at start, before it
// listens, for each v2 session's last record there, so that what a
// client sends again after a crash (what it had not had acknowledged) is
// dropped, not written twice. A client's unacknowledged records fit in
// its buffer (4 MiB by default): a session whose last record in FILE is
// older than those 64 MiB has its records sent again written again. The
// tail scan reads the fields where logsockd writes them, in JSON or text. SIGHUP reopens
// the file, between two writes, so that logrotate needs no copytruncate. A
// file deleted or renamed without SIGHUP is noticed within a second and
// reopened too, and said so; what was written into a deleted file since
// the last look is copied to the new one.
//
// A last line without its newline, which a crash in the middle of a
// write leaves, is cut from FILE when it is opened (at start and on each
// reopen), appended with a newline to FILE.torn beside it, and logged, so
// that every line of FILE parses; where that fails, it is ended with a
// newline, so that the records after it do. A file that another logsockd
// holds open is not cut (each holds a shared flock on its file, and cuts
// only under an exclusive one).
//
// A full disk (ENOSPC, or EDQUOT) is waited out: logsockd keeps the
// records it holds and stops reading its connections, whose clients hold
// their records in their own buffers and wait or drop by their policy; it
// tries the write again, at least once a second, and goes on where the
// write stopped when there is space. It logs once when it begins to wait,
// and once when it writes again, with how long it waited. A record goes
// to -forward once the output has taken it: forwarding waits too. With
// -on-output-error exit, a full disk fails the output instead, as any
// other write error (EPIPE, EIO) does: the error is reported on standard
// error; then logsockd stops accepting, drains its connections (into
// -forward, if given; the records that cannot be written are counted),
// cuts from FILE the start of a record that the failed write left, and
// exits 1. SIGPIPE does not kill it.
//
// -forward syslog+tcp://HOST:PORT sends every record to a syslog server
// as RFC 5424 in octet-counted framing (RFC 6587), facility user and
// severity informational (<14>): the receive time (to the microsecond),
// this host's name, -app-name, PROCID the writer's pid where known (the
// handshake pid otherwise), structured data [logsock@32473 run conn pid
// remote peer_pid peer_uid peer_gid session seq writer_pid flags] where
// known, and the message's bytes unchanged. A v2 client's record has its
// level as the severity (PRI 8 plus the level: <11> for err), the
// client's time as TIMESTAMP and its tag as APP-NAME; its session and
// seq in the structured data name it across resends (rsyslog drops one trailing newline on
// reception unless parser.dropTrailingLFOnReception is off).
// -forward syslog+tls://HOST:PORT sends the same over TLS (RFC 5425): see
// TLS below.
//
// The forwarder has the logsock client's delivery properties: a buffer of
// -forward-buffer bytes (64 MiB: a 30 s outage at 1.9 MB/s of records),
// the oldest records dropped (and counted) when it is full; reconnects with
// jitter, at most a second apart, so that a server that is back gets the
// records within a second; a message whose write failed sent again whole.
// A server that is slow, or holds back, is waited for on the connection it
// has: its records arrive in order. The connection is given up only when
// the server has taken nothing for -forward-timeout (30 s): no
// acknowledgement, or a receive window held at zero (TCP_USER_TIMEOUT on
// Linux). What its kernel and ours then hold is the bound of what a stall
// that long costs: this host's kernel drops what it held for the
// connection (up to net.ipv4.tcp_wmem's maximum, 4 MiB by default), and
// what the server's kernel holds (up to its tcp_rmem maximum) reaches the
// server, if it resumes, after the records of the next connection. Each
// connection given up counts in SIGUSR1's reconnects.
//
// And the limit of syslog over TCP: there are no acknowledgements, so what
// the syslog server's kernel has taken and the server has not read when it
// stops is lost, uncounted. rsyslogd does not always read its sockets dry
// when it stops: a restart under load can lose up to what its socket's
// receive buffer held (thousands of records;
// TestLogsockdForwardRestartUnderLoad bounds it). A restart while the
// forwarder is quiet, or an outage, loses nothing: the forwarder holds the
// records until the server is back.
//
// # TLS
//
// -listen tls://HOST:PORT serves logsock clients on other hosts over TLS
// (a LogSocket with Config.TLS), with the certificate and key of
// -tls-cert and -tls-key; with -tls-client-ca, a client must present a
// certificate that one of its authorities signed. The handshake counts in
// -handshake-timeout. A refused handshake ends that connection, logged
// with its cause, after 0 frames.
//
// -forward syslog+tls://HOST:PORT checks the syslog server's certificate
// against the authorities of -forward-ca (the system's by default) for
// HOST, and presents the certificate of -forward-cert and -forward-key,
// if given. Both sides take TLS 1.2 or later. A refusal, either way, fails
// the connection attempt: the forwarder holds the records and tries again;
// at exit it says why it could not deliver.
//
// # Signals and logs
//
// SIGINT or SIGTERM stops accepting, drains the connections (for up to
// 5 s), writes and flushes every record, delivers what the forwarder holds
// (for up to 5 s) and exits. A wait for space ends with the drain: the
// records not written by then are dropped and counted, and the exit
// status is 1. A standard output that has stopped reading
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
// # Metrics and health
//
// -metrics HOST:PORT serves over HTTP /metrics, in the Prometheus text
// format: every counter that SIGUSR1 prints (logsockd_*: connections
// accepted, open, and ended by reason; frames and bytes received; v2
// frames dropped as duplicates, and the v2 sessions known; the
// output's records, bytes, drops, reopens, waits for space and torn lines;
// the forwarder's records, bytes, held records, drops, reconnects and
// time without a connection), and the states: each listener's, the
// output's (writing, waiting for space, failed), the run id. And
// /healthz: 200 while the output writes and every listener accepts, 503
// while the output waits for space or has failed, a listener is down, or
// logsockd is stopping, with a line for each check.
//
// # systemd
//
// Started by systemd with sockets (a socket unit's ListenStream=, passed
// as LISTEN_FDS), logsockd serves them, and the -listen addresses as
// well if any are given: the default address only when there are
// neither. The socket files are systemd's, and stay: they queue the
// connections while logsockd restarts. A passed socket of another kind (a
// datagram socket) is refused, exit 1. With NOTIFY_SOCKET (Type=notify),
// it sends READY=1 once it listens, RELOADING=1 and READY=1 around
// SIGHUP's reopen, STOPPING=1 when it stops. The directory systemd beside
// this file holds a unit and a socket file, sandboxed.
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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/logsock/logsock"
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
	outErrExit bool // -on-output-error exit
	fsync      bool
	flushDelay time.Duration
	fwd        forwardFlags
	tls        tlsFlags
	appName    string
	metrics    string         // host:port of -metrics, or ""
	srv        logsock.Server // with the limits of the flags; run sets the callbacks
}

const usageHead = `usage: logsockd [flags]

logsockd receives logsock streams on TCP (plain or TLS) and Unix sockets and
writes one line a record to standard output or a file (-o), forwards the
records to a syslog server (-forward), or both. SIGINT and SIGTERM drain the
connections and exit, SIGHUP reopens the -o file, SIGUSR1 prints the counters
on standard error; -metrics serves them for Prometheus at /metrics, and a
health check at /healthz. Under systemd it serves the sockets it is passed
(LISTEN_FDS) besides any -listen, and says when it is ready, reloading and
stopping (NOTIFY_SOCKET).

logsockd takes protocol v1 and v2 clients on the same sockets. A v2 client's
record is acknowledged once it is written (write(2), and with -fsync the
file's fsync: one a write, not a record); with -o FILE, logsockd reads the
file's last 64 MiB at start for each v2 session's last record, so that what
clients send again after a crash is not written twice.

The -o file holds whole lines: a last line that a crash cut short is moved to
FILE.torn when the file is opened. A full disk is waited out: logsockd stops
reading its connections, retries, and resumes when there is space
(-on-output-error). A file deleted or renamed without SIGHUP is reopened within
a second.

examples:
  logsockd -listen unix:///run/logsock.sock -mode 0660 -json -o /var/log/logsock.jsonl
  logsockd -listen tcp://0.0.0.0:39999 -forward syslog+tcp://relay.example:514
  logsockd -listen tls://0.0.0.0:39998 -tls-cert host.pem -tls-key host-key.pem \
           -tls-client-ca clients.pem -forward syslog+tls://relay.example:6514 -forward-ca relay-ca.pem

forwarding: a v2 record's level is the severity, its tag APP-NAME, its
client's time TIMESTAMP (v1: user.info, -app-name, the receive time). The
records go in order, over one connection, which is kept while
the syslog server is slow; it is given up when the server takes nothing for
-forward-timeout. Meanwhile the forwarder holds -forward-buffer bytes of
records, and drops the oldest (counted) beyond. A server that is back gets
them within a second.

text:  TIME [V2] run=ID conn=N pid=N [remote=ADDR] [peer=N uid=N gid=N] [writer=N] [flags=F] MESSAGE
json:  {"time"[,V2],"run","conn","pid"[,"remote"][,"peer_pid","peer_uid","peer_gid"]
        [,"writer_pid"][,"flags"],"msg"[,"msg_base64"]}
V2, for clients of protocol v2 (acknowledged delivery): in text
  client_time=TIME session=HEX/SEQ level=LEVEL tag=TAG, in JSON
  "client_time","session","seq","level","tag": the client's time, its
  session (32 hex digits), the record's number in it, its level (err, info...)
  and the client's name. TIME is the receive time.
ID is this run's id, random, logged at start: conn counts from 1 in each run,
and run tells apart two "conn 1" in a file that several runs appended to.
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
	flags.Func("listen", "address to listen on, repeatable: tcp://host:port, host:port, tls://host:port (see -tls-cert) or unix:///path (default 127.0.0.1:39999, unless systemd passes sockets)", func(s string) error {
		network, addr, err := parseListen(s)
		cfg.listen = append(cfg.listen, address{network, addr})
		return err
	})
	// Unset, the umask decides, as for any file the collector creates: a
	// default of 0660 would open the socket to the group where the usual
	// umask 022 leaves it to the owner (on Linux, connect needs write
	// permission on the file).
	flags.Var(&cfg.mode, "mode", "permissions of the Unix sockets, in octal, such as 0660 (default: what the umask leaves)")
	flags.BoolVar(&cfg.json, "json", false, "write JSON Lines instead of text")
	flags.BoolVar(&cfg.jsonMsg, "json-msg", false, "with -json, write a message that is a JSON object as an object, not a string, if every common parser reads it alike: RFC 8259, at most 64 deep, no name twice, no lone surrogate, numbers within float64")
	flags.StringVar(&cfg.out, "o", "", "append the records to this file (reopened on SIGHUP, and when it is deleted or renamed; a torn last line is moved to FILE.torn); - is standard output (default: standard output, unless -forward is given)")
	flags.Var(&cfg.outMode, "o-mode", "permissions of the -o file, in octal, if logsockd creates it")
	flags.Func("on-output-error", "on a full disk (ENOSPC, EDQUOT): wait (stop reading the connections, retry, resume when there is space) or exit (drain, dropping the records, and exit 1, as other write errors do) (default wait)", func(s string) error {
		switch s {
		case "wait", "exit":
			cfg.outErrExit = s == "exit"
			return nil
		}
		return fmt.Errorf("%q: want wait or exit", s)
	})
	flags.BoolVar(&cfg.fsync, "fsync", false, "with -o FILE, sync the file to disk after each write, before acknowledging the write's v2 records (one fsync a write, not a record)")
	flags.DurationVar(&cfg.flushDelay, "flush-delay", 5*time.Millisecond, "longest time a record waits in the buffer before it is written")
	cfg.tls.register(flags)
	cfg.fwd.register(flags)
	flags.StringVar(&cfg.appName, "app-name", "logsockd", "APP-NAME of the forwarded messages of v1 clients (a v2 client's is its tag)")
	flags.Func("metrics", "serve Prometheus metrics at http://HOST:PORT/metrics and a health check at /healthz", func(s string) error {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return errors.New("want HOST:PORT, such as 127.0.0.1:9539")
		}
		cfg.metrics = s
		return nil
	})

	srv := &cfg.srv
	flags.IntVar(&srv.MaxFrame, "max-frame", logsock.DefaultMaxFrame, "largest message accepted, in bytes")
	flags.BoolVar(&srv.CodePoints, "codepoints", false, "lengths count code points (the article's Python client)")
	flags.TextVar(&srv.Order, "order", logsock.LittleEndian, "byte order: little or big")
	flags.IntVar(&srv.MaxConns, "max-conns", 10000, "most connections served at once; beyond, new ones wait in the listen backlog until one ends (negative: no limit)")
	flags.IntVar(&srv.MaxConnsPerPeer, "max-conns-per-peer", 0, "most connections served at once for one peer, a user on a Unix socket or an IP address over TCP; beyond, a new one is read, then closed (0: half of -max-conns; negative: no limit)")
	flags.IntVar(&srv.MaxMemory, "max-memory", 128<<20, "bytes of read buffers for busy connections and frames being received; beyond, a connection that needs more pauses until some frees (negative: no limit)")
	flags.DurationVar(&srv.HandshakeTimeout, "handshake-timeout", 10*time.Second, "how long a new connection may take to send its handshake")
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
	if err := cfg.fwd.check(); err != nil {
		usage("%v", err)
	}
	if cfg.flushDelay <= 0 {
		usage("-flush-delay %v: want a positive duration", cfg.flushDelay)
	}
	if err := cfg.tls.check(slices.ContainsFunc(cfg.listen, func(a address) bool { return a.network == "tls" })); err != nil {
		usage("%v", err)
	}
	if cfg.out == "" && cfg.fwd.url == "" {
		cfg.out = "-"
	}
	if cfg.fsync && (cfg.out == "" || cfg.out == "-") {
		usage("-fsync goes with -o FILE")
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
	cfg       *config
	srv       *logsock.Server
	out       *output    // nil with -forward alone
	fwd       *forwarder // nil without -forward
	fail      chan error // a Serve's error, or the output's
	run       string     // this run's id (newRunID)
	start     time.Time
	inherited []net.Listener   // passed by systemd
	listeners []*listenerState // set before -metrics starts, then fixed
	notify    *notifier        // nil without NOTIFY_SOCKET
	stopping  atomic.Bool      // a signal or a failure has come: /healthz says 503
	metrics   *metricsServer   // nil without -metrics
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

	inherited, err := activatedListeners()
	if err != nil {
		log.Print(err)
		return 1
	}
	notify, err := newNotifier()
	if err != nil {
		log.Print(err)
		return 1
	}
	if len(cfg.listen) == 0 && len(inherited) == 0 {
		cfg.listen = []address{{"tcp", "127.0.0.1:39999"}}
	}
	// One slot per sender, so that none blocks.
	d := &daemon{cfg: cfg, srv: &cfg.srv, fail: make(chan error, len(inherited)+len(cfg.listen)+1),
		run: newRunID(), start: time.Now(), inherited: inherited, notify: notify}
	log.Printf("run %s: each record carries this id (conn counts from 1 in each run)", d.run)
	if cfg.tls.cert != "" {
		if err := cfg.tls.load(); err != nil {
			log.Print(err)
			return 1
		}
	}
	if cfg.fwd.url != "" {
		// New checks the configuration and connects later: the
		// collector starts while the syslog server is away.
		w, err := newSyslog(&cfg.fwd, cfg.srv.MaxFrame)
		if err != nil {
			log.Printf("forward %s: %v", cfg.fwd.addr, err)
			return 1
		}
		host, _ := os.Hostname() // "" becomes "-", the nil HOSTNAME
		d.fwd = newForwarder(cfg.fwd.addr, host, cfg.appName, w)
		d.fwd.run = d.run
		log.Printf("forwarding to %s", cfg.fwd.url)
	}
	if cfg.out != "" {
		path := cfg.out
		if path == "-" {
			path = ""
		}
		f := newFormatter(cfg.json, cfg.jsonMsg)
		f.run = d.run
		ocfg := outputConfig{path: path, perm: cfg.outMode.perm, delay: cfg.flushDelay,
			exitOnError: cfg.outErrExit, fsync: cfg.fsync, maxLine: maxLine(cfg.srv.MaxFrame)}
		if d.out, err = newOutput(ocfg, f, d.fail); err != nil {
			log.Print(err)
			if d.fwd != nil {
				d.fwd.Close() // it has sent nothing
			}
			return 1
		}
		d.out.resume(d.srv)
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
	if d.metrics != nil {
		d.metrics.Close()
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
		d.out.connClosed(info.Conn)
	}
	if d.fwd != nil {
		d.fwd.connClosed(info.Conn)
	}
}

// serve listens on the configured addresses, serves them and the sockets
// that systemd passed until a signal or a failure, drains the
// connections, and removes the socket files it created, on every way out.
// It returns the failure, if any.
func (d *daemon) serve(sig <-chan os.Signal) (err error) {
	// The sockets that systemd passed are its own to remove: they outlive
	// this process and queue the connections until the next one.
	listeners := d.inherited
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
	if n := len(d.inherited); n > 0 {
		log.Printf("socket activation: %d listening sockets passed", n)
	}
	for _, l := range d.inherited {
		d.listening(l.Addr().Network(), l)
	}
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
		} else if a.network == "tls" {
			if l, err = d.cfg.tls.listen(a.address); err != nil {
				return err
			}
		} else if l, err = net.Listen(a.network, a.address); err != nil {
			return err
		}
		listeners = append(listeners, l)
		d.listening(a.network, l)
	}
	if d.cfg.metrics != "" {
		if d.metrics, err = d.startMetrics(d.cfg.metrics); err != nil {
			return err
		}
	}

	var wg sync.WaitGroup
	for i, l := range listeners {
		wg.Go(func() {
			err := d.srv.Serve(l)
			d.listeners[i].up.Store(false)
			if !errors.Is(err, logsock.ErrServerClosed) {
				d.fail <- err
			}
		})
	}
	// Ready once every socket listens: a client that connects from now on
	// is queued, if not yet accepted.
	d.sdNotify(fmt.Sprintf("READY=1\nSTATUS=listening on %d sockets", len(listeners)))

wait:
	for {
		select {
		case s := <-sig:
			switch s {
			case syscall.SIGHUP:
				d.sdNotify(reloading())
				if d.out == nil {
					log.Print("SIGHUP: no output to reopen")
				} else if err := d.out.Reopen(); err != nil {
					log.Printf("SIGHUP: %v", err)
				}
				d.sdNotify("READY=1")
			case syscall.SIGUSR1:
				d.logStats()
			default:
				break wait
			}
		case err = <-d.fail:
			break wait
		}
	}
	d.stopping.Store(true)
	d.sdNotify("STOPPING=1")
	// The socket files go first, while the listeners pin them (see
	// above): clients then find no collector rather than one that is
	// going away, and what they had queued is still drained.
	for _, f := range files {
		f.remove()
	}
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if d.out != nil {
		// A handler waits while the output waits for space: it must
		// give up in time for the drain to end.
		deadline, _ := ctx.Deadline()
		d.out.drainBy(deadline)
	}
	if err := d.srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
	}
	wg.Wait()
	return err
}

// listening logs that l listens, and adds it to d.listeners, up.
func (d *daemon) listening(network string, l net.Listener) {
	st := &listenerState{addr: network + "://" + l.Addr().String()}
	st.up.Store(true)
	d.listeners = append(d.listeners, st)
	log.Printf("listening on %s", st.addr)
}

// sdNotify tells systemd state, if it asked (NOTIFY_SOCKET), and logs a
// failure: the records flow on whatever systemd hears.
func (d *daemon) sdNotify(state string) {
	if err := d.notify.notify(state); err != nil {
		log.Print(err)
	}
}

// logConnEnd logs the end of a connection, and why.
func logConnEnd(info logsock.ConnInfo, err error) {
	from := ""
	if remote := remoteString(info.Remote); remote != "" {
		from = " from " + remote
	}
	msg := fmt.Sprintf("conn %d (pid %d%s) closed after %d frames: %s", info.Conn, info.Pid, from, info.Frames, info.Reason)
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
	log.Printf("server: accepted=%d active=%d frames=%d bytes=%d invalid_utf8=%d pid_mismatch=%d mixed_writers=%d cut=%d duplicates=%d sessions=%d memory=%d paused=%d ends:%s",
		st.Accepted, st.Active, st.Frames, st.Bytes, st.InvalidUTF8, st.PidMismatch, st.MixedWriters, st.Cut, st.Duplicates, st.Sessions, st.Memory, st.Paused, ends.String())
	if d.out != nil {
		o := d.out.Stats()
		log.Printf("output %s: records=%d bytes=%d dropped=%d reopens=%d waits=%d torn=%d waiting=%t failed=%t",
			d.out.name, o.Records, o.Bytes, o.Dropped, o.Reopens, o.Waits, o.Torn, o.Waiting, o.Failed)
	}
	if d.fwd != nil {
		f := d.fwd.w.Stats()
		log.Printf("forward %s: frames=%d bytes=%d held=%d held_bytes=%d dropped=%d reconnects=%d errors=%d",
			d.fwd.addr, f.Frames, f.Bytes, f.Held, f.HeldBytes, f.Dropped, f.Reconnects, f.Errors)
	}
}
