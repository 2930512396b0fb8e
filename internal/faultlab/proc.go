//go:build unix

package faultlab

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// lineSink is the io.Writer given to a child as its stdout or stderr: it
// splits what the child writes into lines and hands each complete line to
// fn, in order. exec.Cmd calls Write from one goroutine, which Wait joins.
type lineSink struct {
	mu      sync.Mutex // guards partial and calls of fn
	partial []byte
	fn      func(line []byte)
}

func (s *lineSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			break
		}
		s.fn(s.partial[:i])
		s.partial = s.partial[i+1:]
	}
	if len(s.partial) == 0 {
		s.partial = nil // let the backing array go after a burst
	}
	return len(p), nil
}

// textLog keeps the last lines a child wrote, for error messages, and
// signals each new line.
type textLog struct {
	mu      sync.Mutex // guards lines
	lines   []string
	changed chan struct{} // receives a value after each line, if there is room
}

const keepLines = 1000

func newTextLog() *textLog { return &textLog{changed: make(chan struct{}, 1)} }

func (l *textLog) add(line []byte) {
	l.mu.Lock()
	l.lines = append(l.lines, string(line))
	if len(l.lines) > keepLines {
		l.lines = append(l.lines[:0], l.lines[len(l.lines)-keepLines:]...)
	}
	l.mu.Unlock()
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

// find returns the rest of the first line that starts with prefix.
func (l *textLog) find(prefix string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return rest, true
		}
	}
	return "", false
}

func (l *textLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// process is a running child.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once Wait has returned
	err  error         // Wait's result; read it after done
}

// startProcess runs name with args. The child dies with the harness (on
// Linux, by the parent-death signal) and is waited for by a goroutine that
// ends when it exits.
func startProcess(stdin io.Reader, stdout, stderr io.Writer, name string, args ...string) (*process, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.WaitDelay = testenv.OutputDelay // a stray holder of the pipes cannot stall Wait
	testenv.SetDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig unless the child has exited.
func (p *process) signal(sig os.Signal) error {
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		return nil
	}
	return err
}

// wait waits for the child to exit, up to timeout, and returns Wait's error.
func (p *process) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		return p.err
	case <-t.C:
		return fmt.Errorf("%s did not exit within %v", p.cmd.Path, timeout)
	}
}

// kill kills the child and waits for it.
func (p *process) kill() {
	p.cmd.Process.Kill() // os.ErrProcessDone if it has exited: fine
	<-p.done
}
