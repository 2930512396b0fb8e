package logsock

import (
	"bytes"
	"errors"
	"sync"
)

// A LineWriter is an io.Writer that sends each line written to it as one
// frame of its LogSocket, for writers that do not write a record a call:
// an exec.Cmd's Stdout and Stderr, a bufio.Writer, a program's output
// piped in. Where a LogSocket makes a frame of each Write (so that
// "line 5\npartial" would be one frame), a LineWriter makes one of each
// line, without its "\n"; a partial line waits for its end, or for Flush.
// A line longer than the LogSocket's MaxFrame goes out in frames of
// MaxFrame bytes, in order: split, never refused or truncated.
//
// A LineWriter is safe for concurrent use; lines written by concurrent
// calls may interleave, but not their bytes within a call. Close flushes
// it, and leaves the LogSocket open.
type LineWriter struct {
	ls       *LogSocket
	maxFrame int // at least 1: Config's defaults make 0 DefaultMaxFrame

	mu      sync.Mutex // guards partial
	partial []byte     // the start of a line whose end has not come
}

// NewLineWriter returns a LineWriter that sends its lines through ls.
func NewLineWriter(ls *LogSocket) *LineWriter {
	return &LineWriter{ls: ls, maxFrame: ls.cfg.MaxFrame}
}

// Write sends the lines that p completes, each as one frame (see
// LogSocket.Log), and keeps the rest of p for the next Write. A line that
// the LogSocket drops (ErrBufferFull, counted in its Stats) does not end
// the Write: a program's output is never cut short for it. Write fails,
// with ErrClosed, only once the LogSocket is closed.
func (w *LineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for {
		i := bytes.IndexByte(p[n:], '\n')
		if i < 0 {
			break
		}
		line := p[n : n+i]
		if len(w.partial) > 0 {
			w.partial = append(w.partial, line...)
			line = w.partial
		}
		err := w.send(line)
		w.partial = w.partial[:0]
		if err != nil {
			return n, err
		}
		n += i + 1
	}
	// What remains waits for its newline. A partial line longer than
	// MaxFrame goes out now, so that what is kept stays bounded: the part
	// kept topped up to a frame, then whole frames from p, uncopied. A
	// part of exactly MaxFrame is kept: if its newline comes next, it is
	// the line, with no empty frame after it.
	rest := p[n:]
	if len(w.partial) > 0 && len(w.partial)+len(rest) > w.maxFrame {
		k := w.maxFrame - len(w.partial)
		err := w.sendFrame(append(w.partial, rest[:k]...))
		w.partial = w.partial[:0]
		if err != nil {
			return n, err
		}
		rest = rest[k:]
	}
	for len(rest) > w.maxFrame {
		if err := w.sendFrame(rest[:w.maxFrame]); err != nil {
			return n, err
		}
		rest = rest[w.maxFrame:]
	}
	w.partial = append(w.partial, rest...)
	return len(p), nil
}

// send sends line, in frames of at most MaxFrame bytes.
func (w *LineWriter) send(line []byte) error {
	for len(line) > w.maxFrame {
		if err := w.sendFrame(line[:w.maxFrame]); err != nil {
			return err
		}
		line = line[w.maxFrame:]
	}
	return w.sendFrame(line)
}

// sendFrame sends one frame, and reports only ErrClosed: any other error
// is a drop that the LogSocket has counted.
func (w *LineWriter) sendFrame(b []byte) error {
	if err := w.ls.send(b); errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Flush sends the partial line that waits for its newline, if any, as a
// frame.
func (w *LineWriter) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) == 0 {
		return nil
	}
	err := w.send(w.partial)
	w.partial = w.partial[:0]
	return err
}

// Close flushes the LineWriter. It does not close the LogSocket.
func (w *LineWriter) Close() error { return w.Flush() }
