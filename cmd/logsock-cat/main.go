// Command logsock-cat sends lines to a logsock collector, as logger and
// systemd-cat do for syslog and the journal: each line of its standard
// input, or each line that a command writes on its standard output or
// standard error, becomes one frame.
//
//	go run ./cmd/logsockd &
//	printf 'backup done\n' | go run ./cmd/logsock-cat
//	go run ./cmd/logsock-cat -- sh -c 'echo out; echo err >&2; exit 3'
//
// A line is the bytes before a newline, sent as they are (any bytes; the
// frame's length counts bytes), without the newline; a last line without
// one is sent too, and an empty line is an empty frame. A line longer than
// -max-frame is split into frames of -max-frame bytes, in order, each sent
// (a multi-byte character can be cut). The handshake names logsock-cat's
// pid, not the command's.
//
// logsock-cat starts while the collector is down (it connects at the first
// line) and holds the lines, up to 4 MiB, until the collector is up; it
// says on standard error when it begins to hold them. Beyond that the
// oldest lines are dropped, and it says so once; reading never waits for
// the collector. At the end it tries for up to -timeout to deliver what it
// holds, then says on standard error how many frames it dropped or could
// not deliver, and exits 1.
//
// With -acks it speaks protocol v2: the collector (logsockd) acknowledges
// each line once it has written it, and logsock-cat holds every line until
// then, sending again after a reconnect what was not acknowledged; each
// line carries its time, its -tag and its level (-level, and -stderr-level
// for a command's standard error). Without -acks the collector
// acknowledges nothing: a frame written into a connection that the
// collector then closes unread is lost unseen, so logsock-cat warns when a
// connection was lost.
//
// Exit status: with a command, the command's (128+N if signal N ended it;
// 127 if it was not found, 126 if it could not be run), or 1 if it was 0
// and frames were dropped or not delivered; without one, 0 if every frame
// was written to a connection, 1 if not, 128+N after signal N; 2 for a bad
// command line.
// SIGTERM and SIGHUP are passed on to the command. SIGINT and SIGQUIT,
// which a terminal sends to the command too, are not; logsock-cat waits for
// the command to exit, and sends its last lines. Without a command,
// SIGINT, SIGTERM and SIGHUP stop the reading, and the lines read are sent.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/logsock/logsock"
)

const usage = `usage: logsock-cat [flags]
       logsock-cat [flags] -- command [arg...]

logsock-cat sends each line of its standard input to a logsock collector as
one frame; or it runs command, sends each line that the command writes on its
standard output and standard error, and exits with the command's status.

examples:
  printf 'backup done\n' | logsock-cat -addr unix:///run/logsock.sock
  logsock-cat -- make -j4
  logsock-cat -acks -tag backup -stderr-level err -- ./backup.sh

A line is sent as its bytes, without the newline. A line longer than -max-frame
bytes is split into frames of -max-frame bytes, in order. logsock-cat starts
while the collector is down, and holds lines (up to 4 MiB, then it drops the
oldest) until it is up; at the end it tries for -timeout to deliver them, then
says on standard error how many frames it dropped or could not deliver.

With -acks (logsockd speaks it), the collector acknowledges each line once
written, and what it did not acknowledge is sent again after a reconnect;
lines carry their time, -tag and level.

Exit status: the command's, if it is not 0; else 1 if frames were dropped or
not delivered, 0 if all were written to a connection (with -acks: all were
acknowledged); 2 for a bad command line.

flags:
`

func main() {
	log.SetFlags(0)
	log.SetPrefix("logsock-cat: ")
	ls, lv, addr, command := parseFlags(flag.CommandLine, os.Args[1:])
	s := &sender{ls: ls, acks: lv.acks, levels: lv, addr: addr, stop: make(chan struct{}), watched: make(chan struct{})}
	go s.watch()
	if command == nil {
		os.Exit(s.stdin())
	}
	os.Exit(s.run(command))
}

// parseFlags parses the command line, and returns the LogSocket, the
// collector's address as given, and the command, if any. On an error it
// exits 2.
func parseFlags(flags *flag.FlagSet, args []string) (*logsock.LogSocket, levels, string, []string) {
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
	}
	addr := flags.String("addr", "127.0.0.1:39999", "collector address: host:port, tcp://host:port or unix:///path")
	// Batching with DropOldest: a line is queued, never waited for, so
	// that neither the input nor a signal waits on the collector.
	cfg := logsock.Config{Batching: true, Overflow: logsock.DropOldest}
	flags.TextVar(&cfg.Order, "order", logsock.LittleEndian, "byte order: little or big")
	flags.IntVar(&cfg.MaxFrame, "max-frame", logsock.DefaultMaxFrame, "longest frame, in bytes: a longer line is split (keep it within the collector's limit)")
	flags.DurationVar(&cfg.CloseTimeout, "timeout", 5*time.Second, "how long to try, at the end, to deliver the lines held")
	flags.BoolVar(&cfg.Acks, "acks", false, "protocol v2: the collector acknowledges each line; what it did not is sent again")
	flags.StringVar(&cfg.Tag, "tag", "", "with -acks, the name the lines carry (default the command's name, or logsock-cat)")
	var lv levels
	flags.TextVar(&lv.out, "level", logsock.LevelInfo, "with -acks, the level of the lines: emerg, alert, crit, err, warning, notice, info or debug")
	flags.TextVar(&lv.err, "stderr-level", logsock.LevelInfo, "with -acks, the level of the lines of a command's standard error (default -level's)")
	flags.Parse(args) // ExitOnError: exits 2
	fail := func(format string, args ...any) {
		log.Printf(format, args...)
		flags.Usage()
		os.Exit(2)
	}
	// The flag package stops at "--", and at the first argument that is not
	// a flag: only the first may start a command.
	command := flags.Args()
	if n := len(args) - len(command); len(command) > 0 && (n == 0 || args[n-1] != "--") {
		fail("unexpected argument %q: put a command after --", command[0])
	}
	if len(args) > 0 && args[len(args)-1] == "--" && len(command) == 0 {
		fail("no command after --")
	}
	if len(command) == 0 {
		command = nil
	}
	if cfg.MaxFrame <= 0 {
		fail("-max-frame %d: want a positive number of bytes", cfg.MaxFrame)
	}
	if cfg.CloseTimeout <= 0 {
		fail("-timeout %v: want a positive duration", cfg.CloseTimeout)
	}
	set := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range []string{"tag", "level", "stderr-level"} {
		if set[name] && !cfg.Acks {
			fail("-%s: protocol v2's: give -acks too (a v1 frame carries the message alone)", name)
		}
	}
	if !set["stderr-level"] {
		lv.err = lv.out
	}
	lv.acks = cfg.Acks
	// Checked here, not left to New, whose error would name -addr.
	if cfg.Tag != "" && cleanTag(cfg.Tag) != cfg.Tag {
		fail("-tag %q: want 1-48 printable US-ASCII characters, no space", cfg.Tag)
	}
	if cfg.Acks && cfg.Tag == "" {
		cfg.Tag = "logsock-cat"
		if command != nil {
			cfg.Tag = tagOf(command[0])
		}
	}
	network, address, err := logsock.ParseAddress(*addr)
	if err != nil {
		fail("-addr: %v", err)
	}
	// New, not Dial: it connects at the first line, and holds the lines
	// while the collector is down.
	ls, err := logsock.New(network, address, &cfg)
	if err != nil {
		fail("-addr %s: %v", *addr, err)
	}
	return ls, lv, *addr, command
}

// levels are the levels of the lines: of standard input and a command's
// standard output, and of a command's standard error.
type levels struct {
	out, err logsock.Level
	acks     bool // -acks: the levels travel
}

// tagOf makes a tag of a command's name: its base name, cleaned.
func tagOf(command string) string {
	if tag := cleanTag(filepath.Base(command)); tag != "" {
		return tag
	}
	return "logsock-cat"
}

// cleanTag returns the printable ASCII bytes of s, no space, cut to the 48
// that a tag may hold.
func cleanTag(s string) string {
	var b []byte
	for _, c := range []byte(s) {
		if c > ' ' && c < 127 && len(b) < 48 {
			b = append(b, c)
		}
	}
	return string(b)
}

// sender sends lines through its LogSocket.
type sender struct {
	ls      *logsock.LogSocket
	acks    bool // -acks
	levels  levels
	addr    string
	stop    chan struct{} // closed by finish: watch returns
	watched chan struct{} // closed when watch has returned

	// watch's own:
	outage   time.Duration // Stats.Outage at the last look
	holding  bool          // frames were held, in an outage, at the last look
	dropping bool          // frames have been dropped for room: said once
}

// stdin sends the lines of standard input, and returns the exit status.
func (s *sender) stdin() int {
	lw := logsock.NewLineWriter(s.ls)
	lw.SetLevel(s.levels.out)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(lw, os.Stdin)
		copied <- err
	}()
	status := 0
	select {
	case err := <-copied:
		if err != nil {
			log.Printf("reading standard input: %v", err)
			status = 1
		}
	case got := <-sig:
		// The read in progress is abandoned; the lines read so far go out.
		status = 128 + int(got.(syscall.Signal))
	}
	lw.Flush() // the last line, if no newline ended it
	return s.finish(status)
}

// run runs command, sends the lines of its output, and returns the exit
// status.
func (s *sender) run(command []string) int {
	// Two LineWriters: a line that the command has begun on standard
	// output must not take in what it writes on standard error meanwhile.
	stdout, stderr := logsock.NewLineWriter(s.ls), logsock.NewLineWriter(s.ls)
	stdout.SetLevel(s.levels.out)
	stderr.SetLevel(s.levels.err)
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin = os.Stdin
	cmd.Stdout, cmd.Stderr = stdout, stderr
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		log.Print(err)
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			return s.finish(127) // as a shell says it
		}
		return s.finish(126)
	}
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		for got := range sig {
			// A terminal sends SIGINT and SIGQUIT to its whole foreground
			// process group: the command has them already.
			if got == syscall.SIGTERM || got == syscall.SIGHUP {
				cmd.Process.Signal(got)
			}
		}
	}()
	err := cmd.Wait() // and for the copying of its output, to its end
	signal.Stop(sig)
	close(sig)
	<-forwarded
	stdout.Flush()
	stderr.Flush()
	return s.finish(exitStatus(cmd.ProcessState, err))
}

// exitStatus returns the status that a shell would give for the command.
func exitStatus(ps *os.ProcessState, err error) int {
	if ps == nil {
		log.Print(err)
		return 1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// finish closes the LogSocket, which delivers what it holds for up to
// -timeout, and says what was not delivered. It returns status, or 1 if
// status is 0 and frames were not delivered.
func (s *sender) finish(status int) int {
	close(s.stop)
	<-s.watched
	err := s.ls.Close()
	st := s.ls.Stats()
	if st.Reconnects > 0 && !s.acks {
		log.Printf("the connection to %s was lost %d times: a collector acknowledges nothing, so lines written just before a loss may be lost", s.addr, st.Reconnects)
	}
	total := st.Frames + st.Dropped
	if s.acks {
		// Frames counts the writes: a frame written and not acknowledged
		// is in it, and in Dropped.
		total = st.Acked + st.Dropped
	}
	switch {
	case st.Dropped > 0 && err != nil:
		log.Printf("%d of %d frames not delivered to %s: %v", st.Dropped, total, s.addr, err)
	case st.Dropped > 0:
		log.Printf("%d of %d frames not delivered to %s: the oldest dropped while the buffer was full", st.Dropped, total, s.addr)
	case err != nil:
		log.Print(err)
	default:
		return status
	}
	if status == 0 {
		status = 1
	}
	return status
}

// watchEvery is how often watch looks at the LogSocket's counters.
const watchEvery = 100 * time.Millisecond

// watch says on standard error when the LogSocket begins to hold frames
// because the collector cannot be reached, and when it begins to drop
// them: nothing else would show it, since a line is only queued. Frames
// are also held for an instant while the writer connects; an outage is
// told apart by its time, which Stats.Outage counts while it lasts.
func (s *sender) watch() {
	defer close(s.watched)
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			s.look()
		case <-s.stop:
			return
		}
	}
}

func (s *sender) look() {
	st := s.ls.Stats()
	holding := st.Held > 0 && st.Outage > s.outage
	s.outage = st.Outage
	if holding && !s.holding {
		log.Printf("cannot reach the collector at %s: holding the lines until it is up", s.addr)
	}
	s.holding = holding
	if st.Dropped > 0 && !s.dropping {
		s.dropping = true
		log.Printf("the buffer of lines held is full: dropping the oldest")
	}
}
