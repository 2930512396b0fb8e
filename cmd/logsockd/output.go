//go:build unix

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"sync"
	"time"

	"github.com/logsock/logsock"
)

const (
	// bufSize is the size at which a buffer of records is handed to the
	// writer. Writes of 256 KiB cost a few microseconds of system time
	// per thousand 100-byte records, where the collector this program
	// replaced made one write(2) a record and spent most of a core in it.
	bufSize = 256 << 10
	// numBufs bounds the buffers, the one being filled included: when all
	// wait for a slow output, the connections wait too, and the clients
	// hold their records (their own buffers) rather than this process's
	// memory growing.
	numBufs = 4
	// maxKeep is the largest buffer kept for reuse: a record of a
	// megabyte grows one, and its memory is given back after the write.
	maxKeep = 4 * bufSize
)

// errNoFile is the answer to SIGHUP when the output is standard output.
var errNoFile = errors.New("the output is standard output: nothing to reopen")

// chunk is a buffer of whole records.
type chunk struct {
	b []byte
	n int // records in b
}

// outputStats are an output's counters.
type outputStats struct {
	Records, Bytes uint64 // written
	Dropped        uint64 // records not written: the output had failed, or the write failed
	Reopens        uint64 // reopens of the file that succeeded
}

// output writes the records of all connections, formatted, to standard
// output or a file, in large writes. The Server's handlers call record
// concurrently: each formats its record into the buffer being filled,
// under mu. A goroutine of the output's own, run, does every write(2),
// off the lock, and owns the file: a full buffer is written at once, and
// a partial one delay after the first record that went into it, so that
// a record shows up within milliseconds at any rate.
//
// After a write fails, the output drops and counts every record, and
// reports the error, once, on stderr and to fail.
type output struct {
	name  string // for messages: the path, or "standard output"
	path  string // the file to reopen on SIGHUP; "" for standard output
	perm  fs.FileMode
	delay time.Duration
	fail  chan<- error

	mu     sync.Mutex // guards the fields below, and fmt
	room   sync.Cond  // on mu: cur is set again, or err
	fmt    *formatter
	cur    *chunk   // the buffer being filled; nil while every buffer waits for run
	queue  []*chunk // full buffers, in order, for run
	free   []*chunk
	err    error // the first write error
	closed bool  // close has begun: no record is taken after
	stats  outputStats

	file  *os.File      // run's own
	wake  chan struct{} // cap 1: a buffer is queued
	armed chan struct{} // cap 1: a record went into an empty buffer
	reqs  chan request  // to run: reopen, or flush and stop
	done  chan struct{} // closed when run returns
}

type request struct {
	stop  bool // flush everything and stop; reopen otherwise
	reply chan error
}

// newOutput opens path (standard output if it is "") and starts the
// output's writer. Close stops it.
func newOutput(path string, perm fs.FileMode, delay time.Duration, f *formatter, fail chan<- error) (*output, error) {
	o := &output{name: "standard output", path: path, perm: perm, delay: delay, fail: fail, fmt: f,
		file: os.Stdout, wake: make(chan struct{}, 1), armed: make(chan struct{}, 1),
		reqs: make(chan request), done: make(chan struct{})}
	if path != "" {
		file, err := openAppend(path, perm)
		if err != nil {
			return nil, err
		}
		o.name, o.file = path, file
	}
	o.room.L = &o.mu
	o.cur = &chunk{b: make([]byte, 0, bufSize)}
	for range numBufs - 1 {
		o.free = append(o.free, &chunk{b: make([]byte, 0, bufSize)})
	}
	go o.run()
	return o, nil
}

// openAppend opens path for appending, creating it with the mode perm if
// it does not exist. A file it creates gets perm exactly, whatever the
// umask (bits the umask removed are set again); a file that exists keeps
// its mode, which logrotate's create directive may have set.
func openAppend(path string, perm fs.FileMode) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, perm)
		if err == nil {
			if err := f.Chmod(perm); err != nil {
				f.Close()
				return nil, err
			}
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
		if !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		// Removed between the two opens: create it after all.
	}
}

// record formats rec into the buffer being filled. It waits while every
// buffer waits for the writer.
func (o *output) record(rec *logsock.Record) {
	o.mu.Lock()
	for o.cur == nil && o.err == nil && !o.closed {
		o.room.Wait()
	}
	if o.err != nil || o.closed {
		o.stats.Dropped++
		o.mu.Unlock()
		return
	}
	c := o.cur
	first := c.n == 0
	c.b = o.fmt.append(c.b, rec)
	c.n++
	full := len(c.b) >= bufSize
	if full {
		o.queueCur()
	}
	o.mu.Unlock()
	switch {
	case full:
		notify(o.wake)
	case first:
		notify(o.armed)
	}
}

// connClosed forgets connection id.
func (o *output) connClosed(id uint64) {
	o.mu.Lock()
	o.fmt.conns.drop(id)
	o.mu.Unlock()
}

// queueCur queues the buffer being filled, if it holds a record, and
// takes a free one in its place; o.mu is held.
func (o *output) queueCur() {
	if o.cur == nil || o.cur.n == 0 {
		return
	}
	o.queue = append(o.queue, o.cur)
	o.cur = nil
	if n := len(o.free); n > 0 {
		o.cur, o.free = o.free[n-1], o.free[:n-1]
	}
}

// notify sends on a channel of capacity 1 without waiting: a value that
// is already there says the same.
func notify(c chan<- struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// run is the writer: it writes the queued buffers in order, flushes a
// partial one delay after its first record, and serves requests.
func (o *output) run() {
	defer close(o.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-o.wake:
		case <-o.armed:
			timer.Reset(o.delay)
			continue
		case <-timer.C:
			o.mu.Lock()
			o.queueCur()
			o.mu.Unlock()
		case r := <-o.reqs:
			// Either way, every record taken so far is written first:
			// before a reopen to the old file, which logrotate has
			// renamed, so that none is lost or split.
			o.mu.Lock()
			o.closed = r.stop
			o.queueCur()
			if r.stop {
				// Close comes after the last record, by its contract;
				// one that came anyway would wait for no writer: drop it.
				o.room.Broadcast()
			}
			o.mu.Unlock()
			o.writeQueued()
			if r.stop {
				r.reply <- o.closeFile()
				return
			}
			r.reply <- o.reopen()
			continue
		}
		o.writeQueued()
	}
}

// writeQueued writes the queued buffers, one at a time, so that each
// comes free for the handlers as soon as it is written.
func (o *output) writeQueued() {
	for {
		o.mu.Lock()
		if len(o.queue) == 0 {
			o.mu.Unlock()
			return
		}
		c := o.queue[0]
		o.queue = append(o.queue[:0], o.queue[1:]...)
		failed := o.err != nil
		o.mu.Unlock()

		var err error
		if !failed {
			_, err = o.file.Write(c.b)
		}
		o.mu.Lock()
		switch {
		case failed:
			o.stats.Dropped += uint64(c.n)
		case err != nil:
			o.stats.Dropped += uint64(c.n)
			o.err = fmt.Errorf("output %s: %w", o.name, err)
			log.Printf("%v: draining the connections, then exiting; the records from now on are dropped", o.err)
			o.fail <- o.err // once: the channel has room for it
		default:
			o.stats.Records += uint64(c.n)
			o.stats.Bytes += uint64(len(c.b))
		}
		if cap(c.b) > maxKeep {
			c.b = make([]byte, 0, bufSize)
		}
		c.b, c.n = c.b[:0], 0
		if o.cur == nil {
			o.cur = c
		} else {
			o.free = append(o.free, c)
		}
		o.room.Broadcast()
		o.mu.Unlock()
	}
}

// reopen opens the file again by its path, for logrotate: the records
// after it go to the file that the path names now. If the open fails, the
// output keeps the file it has.
func (o *output) reopen() error {
	f, err := openAppend(o.path, o.perm)
	if err != nil {
		return fmt.Errorf("reopening %s (still writing to the file it named before): %w", o.path, err)
	}
	old := o.file
	o.file = f
	o.mu.Lock()
	o.stats.Reopens++
	o.mu.Unlock()
	if err := old.Close(); err != nil {
		return fmt.Errorf("closing the previous %s: %w", o.path, err)
	}
	return nil
}

// closeFile closes a file that newOutput opened, and returns the first
// error of the output.
func (o *output) closeFile() error {
	var err error
	if o.path != "" {
		err = o.file.Close()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return o.err
	}
	if err != nil {
		return fmt.Errorf("output %s: %w", o.name, err)
	}
	return nil
}

// Reopen asks the writer to reopen the file between two buffers, and
// waits for it to.
func (o *output) Reopen() error {
	if o.path == "" {
		return errNoFile // and no wait for a writer that a stalled pipe may hold
	}
	r := request{reply: make(chan error, 1)}
	o.reqs <- r
	return <-r.reply
}

// Close writes every record taken, closes a file that the output opened,
// and stops the writer. It returns the first write error, if any. Call
// it once, after the last call of record.
func (o *output) Close() error {
	r := request{stop: true, reply: make(chan error, 1)}
	o.reqs <- r
	err := <-r.reply
	<-o.done
	return err
}

// Stats returns the output's counters.
func (o *output) Stats() outputStats {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stats
}

// writeErr returns the error that keeps the output from writing, or nil
// while it writes: /healthz and logsockd_output_up read it.
func (o *output) writeErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}
