package logsock

import (
	"bytes"
	"errors"
	"sync"
)

// A LineWriter sends each line written to it as a frame, without its "\n",
// a long one in MaxFrame pieces; it is safe for concurrent use.
type LineWriter struct {
	ls       *LogSocket
	maxFrame int // at least 1: Config's defaults make 0 DefaultMaxFrame
	level    Level

	mu      sync.Mutex // guards partial
	partial []byte     // the start of a line whose end has not come
}

// NewLineWriter returns a LineWriter that sends its lines through ls.
func NewLineWriter(ls *LogSocket) *LineWriter {
	return &LineWriter{ls: ls, maxFrame: ls.cfg.MaxFrame, level: LevelInfo}
}

// SetLevel sets the level of the lines from now on; LevelInfo until then.
func (w *LineWriter) SetLevel(l Level) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.level = l
}

// Write sends the lines that p completes; it fails only with ErrClosed.
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
	if err := w.ls.send(b, w.level); errors.Is(err, ErrClosed) {
		return err
	}
	return nil
}

// Flush sends the partial line, if any.
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
