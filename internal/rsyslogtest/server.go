//go:build unix

package rsyslogtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

const (
	// pollInterval is how often Start and Restart look for the listening
	// socket and WaitLines reads the output file.
	pollInterval = 2 * time.Millisecond
	// startTimeout bounds the wait for the listening socket, whatever the
	// context: rsyslogd listens within 8-15 ms here.
	startTimeout = 10 * time.Second
	// stopTimeout bounds a graceful stop. rsyslogd gives its main queue
	// 1.5 s to drain (queue.timeoutShutdown), then its actions their own.
	stopTimeout = 10 * time.Second
)

// Server is an rsyslogd started by Start. Its methods are for one
// goroutine at a time, except Addr and Output, which never change.
type Server struct {
	exe, dir, conf, pidFile, out string
	port                         int
	proc                         *process // the running rsyslogd; nil after Stop and Close
	closed                       bool
}

// process is one run of rsyslogd.
type process struct {
	cmd    *exec.Cmd
	stderr *tail
	done   chan struct{} // closed once Wait has returned
	err    error         // Wait's result, set before done is closed
}

// Start starts rsyslogd on a free port of 127.0.0.1 and returns once it
// listens there. Its files are in a new directory inside dir, which the
// caller removes (t.TempDir). The caller must Close the Server.
func Start(ctx context.Context, dir string, tmpl Template) (*Server, error) {
	return StartWith(ctx, dir, Options{Template: tmpl})
}

// Options are what StartWith can change of the Server that Start makes.
type Options struct {
	// Template is how the output file shows each message: Lines or JSON.
	Template Template
	// TLS, if not nil, makes the listener syslog over TLS (RFC 5425):
	// imtcp with the gtls driver, instead of imptcp.
	TLS *TLS
	// Ordered gives rsyslogd's main queue one worker thread, so that the
	// output file keeps the order in which each connection's messages came.
	// With more, the workers write their batches in any order: after a
	// stall, rsyslogd 8.2302 wrote some of a single connection's messages
	// out of order (5,632 of 395,000 here). The bench leaves rsyslogd as
	// configured by default.
	Ordered bool
}

// TLS is a listener's TLS: PEM files of the authority that signs the
// clients' certificates, and of the server's certificate and key.
type TLS struct {
	CAFile, CertFile, KeyFile string
	// ClientAuth requires a client certificate signed by the authority
	// (gtls's x509/certvalid); without it, any client is served (anon).
	ClientAuth bool
}

// StartWith is Start with Options.
func StartWith(ctx context.Context, dir string, opt Options) (*Server, error) {
	exe, _, err := Lookup()
	if err != nil {
		return nil, err
	}
	if opt.TLS != nil {
		if err := LookupTLS(); err != nil {
			return nil, err
		}
	}
	tmpl := opt.Template
	if tmpl.def == "" {
		return nil, errors.New("rsyslogtest: the zero Template: use Lines or JSON")
	}
	dir, err = os.MkdirTemp(dir, "rsyslogd")
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	// The paths go into the configuration inside double quotes.
	paths := []string{dir}
	if opt.TLS != nil {
		tls := *opt.TLS
		for _, p := range []*string{&tls.CAFile, &tls.CertFile, &tls.KeyFile} {
			if *p, err = filepath.Abs(*p); err != nil {
				return nil, err
			}
			paths = append(paths, *p)
		}
		opt.TLS = &tls
	}
	for _, p := range paths {
		if strings.ContainsAny(p, "\"\\\n$") {
			return nil, fmt.Errorf("rsyslogtest: path %q: a quote, backslash, newline or $ would need escaping in rsyslog's configuration", p)
		}
	}
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		exe:     exe,
		dir:     dir,
		conf:    filepath.Join(dir, "rsyslog.conf"),
		pidFile: filepath.Join(dir, "rsyslogd.pid"),
		out:     filepath.Join(dir, "out.log"),
		port:    port,
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.conf, []byte(config(work, s.out, port, opt)), 0o600); err != nil {
		return nil, err
	}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr returns the address rsyslogd listens on, "127.0.0.1:port"; it stays
// the same across Restart.
func (s *Server) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Output returns the path of the file that rsyslogd writes the messages
// to. Every run of rsyslogd appends to it.
func (s *Server) Output() string { return s.out }

func (s *Server) start(ctx context.Context) error {
	cmd := exec.Command(s.exe, "-n", "-f", s.conf, "-i", s.pidFile)
	cmd.Dir = s.dir
	p := &process{cmd: cmd, stderr: &tail{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stderr, p.stderr
	cmd.WaitDelay = testenv.OutputDelay // a stray holder of the pipes cannot stall Wait
	testenv.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("rsyslogtest: %w", err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, err := listening(cmd.Process.Pid, s.port)
		if err != nil {
			s.kill()
			return fmt.Errorf("rsyslogtest: %w", err)
		}
		if ok {
			return nil
		}
		select {
		case <-p.done:
			s.proc = nil
			return fmt.Errorf("rsyslogtest: rsyslogd exited before listening on %s: %v%s", s.Addr(), p.err, p.stderr.suffix())
		case <-ctx.Done():
			s.kill()
			return fmt.Errorf("rsyslogtest: rsyslogd not listening on %s: %w%s", s.Addr(), ctx.Err(), p.stderr.suffix())
		case <-tick.C:
		}
	}
}

// Stop stops rsyslogd gracefully (SIGTERM, then SIGCONT in case Signal
// stopped it) and waits for it to exit. It writes out the messages in its
// queue; what its connections' receive buffers hold unread is lost, as
// with any receiver that closes. Restart starts it again. Stop on a
// stopped Server does nothing.
func (s *Server) Stop() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("rsyslogtest: %w", err)
	}
	p.cmd.Process.Signal(syscall.SIGCONT) // if Signal stopped it
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("rsyslogtest: rsyslogd still running %v after SIGTERM; killed%s", stopTimeout, p.stderr.suffix())
	}
	if p.err != nil {
		return fmt.Errorf("rsyslogtest: rsyslogd: %w%s", p.err, p.stderr.suffix())
	}
	return nil
}

// Restart stops rsyslogd gracefully if it runs, and starts it again on the
// same port, with the same configuration and output file; it returns once
// the new one listens.
func (s *Server) Restart(ctx context.Context) error {
	if s.closed {
		return errors.New("rsyslogtest: Restart after Close")
	}
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// Signal sends sig to the running rsyslogd: SIGSTOP, for one, holds it
// still, and its connections' receive buffers fill (see Unread) while its
// clients write on. Stop ends a rsyslogd so stopped too.
func (s *Server) Signal(sig os.Signal) error {
	if s.proc == nil {
		return errors.New("rsyslogtest: Signal: rsyslogd is not running")
	}
	if err := s.proc.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("rsyslogtest: %w", err)
	}
	return nil
}

// Close kills rsyslogd (SIGKILL) and waits for it. It returns an error if
// rsyslogd had exited by itself, and nil when called again. It leaves the
// files, the output among them.
func (s *Server) Close() error {
	s.closed = true
	return s.kill()
}

// kill kills the running rsyslogd, if any, and waits for it; it returns
// an error if rsyslogd had exited before.
func (s *Server) kill() error {
	p := s.proc
	if p == nil {
		return nil
	}
	s.proc = nil
	select {
	case <-p.done:
		return fmt.Errorf("rsyslogtest: rsyslogd exited unasked: %v%s", p.err, p.stderr.suffix())
	default:
	}
	p.cmd.Process.Kill()
	<-p.done
	return nil
}

// WaitLines returns the complete lines of the output file once it holds
// at least n, all of them (more than n if more came). It reads the whole
// file every 2 ms: polling, as rsyslogd is another process and tells
// nobody when it writes; test outputs are small. It gives up, with the
// lines so far, when ctx ends or rsyslogd exits.
func (s *Server) WaitLines(ctx context.Context, n int) ([]string, error) {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	p := s.proc
	var exited <-chan struct{} // nil, never ready, when rsyslogd is stopped
	if p != nil {
		exited = p.done
	}
	for {
		lines, err := s.lines()
		if err != nil || len(lines) >= n {
			return lines, err
		}
		select {
		case <-ctx.Done():
			return lines, fmt.Errorf("rsyslogtest: %d of %d lines in %s: %w", len(lines), n, s.out, ctx.Err())
		case <-exited:
			lines, err := s.lines()
			if err != nil || len(lines) >= n {
				return lines, err
			}
			return lines, fmt.Errorf("rsyslogtest: rsyslogd exited (%v) with %d of %d lines in %s%s", p.err, len(lines), n, s.out, p.stderr.suffix())
		case <-tick.C:
		}
	}
}

// lines returns the complete lines of the output file, without their
// newlines; none while the file does not exist.
func (s *Server) lines() ([]string, error) {
	data, err := os.ReadFile(s.out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return nil, nil
	}
	return strings.Split(string(data[:end]), "\n"), nil
}

// tail keeps the last tailBytes that rsyslogd wrote to its standard output
// and error, for error messages.
type tail struct {
	mu  sync.Mutex // guards buf
	buf []byte
}

const tailBytes = 4096

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - tailBytes; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// suffix returns what rsyslogd said, to end an error message, or "".
func (t *tail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := strings.TrimSpace(string(t.buf)); s != "" {
		return "; rsyslogd said:\n" + s
	}
	return ""
}
