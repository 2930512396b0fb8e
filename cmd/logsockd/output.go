//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"sync"
	"syscall"
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
	// lookEvery is how often the writer compares its file with the one
	// its path names, so that a deleted or renamed file is noticed within
	// a second (issue 20), for a stat and an fstat each time.
	lookEvery = 250 * time.Millisecond
	// minRetry and maxRetry bound the wait between two tries of a write
	// on a full disk: it doubles from minRetry, so that the output
	// resumes within a second of space coming back.
	minRetry = 10 * time.Millisecond
	maxRetry = time.Second
)

var (
	// errNoFile is the answer to SIGHUP when the output is standard output.
	errNoFile = errors.New("the output is standard output: nothing to reopen")
	// errDeadline ends a wait for space: the drain deadline has passed.
	errDeadline = errors.New("the drain deadline has passed")
)

// maxLine returns the longest line that a record of maxFrame bytes can
// take: JSON's \u0000 escape makes 6 bytes of one, and the other fields
// take less than a KiB.
func maxLine(maxFrame int) int64 { return 8*int64(maxFrame) + 64<<10 }

// chunk is a buffer of whole records. Each record is one line: the
// formatter escapes every newline within it.
type chunk struct {
	b []byte
	n int // records in b
	// acks acknowledge the v2 records in b once b is written (issue 19):
	// one for each run of records of one connection, the last of the
	// run's, since an acknowledgement covers the earlier records of its
	// connection. A v1 record adds nothing.
	acks     []logsock.Ack
	lastConn uint64 // the connection of acks' last, or 0
}

// deferAck defers rec's acknowledgement to c's write, if rec is v2.
func (c *chunk) deferAck(rec *logsock.Record) {
	if rec.Seq == 0 {
		return
	}
	a := rec.Defer()
	if n := len(c.acks); n > 0 && c.lastConn == rec.Conn {
		c.acks[n-1] = a
		return
	}
	c.acks, c.lastConn = append(c.acks, a), rec.Conn
}

// reset empties c for reuse.
func (c *chunk) reset() {
	if cap(c.b) > maxKeep {
		c.b = make([]byte, 0, bufSize)
	}
	c.b, c.n = c.b[:0], 0
	clear(c.acks) // they point at connections that may end
	c.acks, c.lastConn = c.acks[:0], 0
}

// outputConfig is what newOutput needs to know.
type outputConfig struct {
	path  string      // the file, reopened on SIGHUP; "" for standard output
	perm  fs.FileMode // of the file, if newOutput creates it
	delay time.Duration
	// exitOnError makes a full disk (ENOSPC, EDQUOT) fail the output like
	// any other write error, rather than be waited out.
	exitOnError bool
	// fsync syncs the file after each write, before the write's v2
	// records are acknowledged.
	fsync   bool
	maxLine int64 // how far back an open looks for the last newline; 0: maxLine(logsock.DefaultMaxFrame)
}

// outputStats are an output's counters and state.
type outputStats struct {
	Records, Bytes uint64 // written: whole records, and their bytes
	Dropped        uint64 // records not written: the output had failed, or the write failed
	Reopens        uint64 // reopens of the file that succeeded: SIGHUP, or the file deleted or renamed
	Waits          uint64 // times the disk was full and the output waited for space
	Torn           uint64 // torn last lines set aside when the file was opened
	Waiting        bool   // the disk is full now: the records wait
	Failed         bool   // a write failed: every record is dropped from then on
}

// output writes the records of all connections, formatted, to standard
// output or a file, in large writes. The Server's handlers call record
// concurrently: each formats its record into the buffer being filled,
// under mu. A goroutine of the output's own, run, does every write(2),
// off the lock, and owns the file: a full buffer is written at once, and
// a partial one delay after the first record that went into it, so that
// a record shows up within milliseconds at any rate.
//
// Each buffer goes out whole: a short write is continued. On a full disk
// the writer keeps the buffer and tries again until there is space (see
// write); meanwhile the buffers fill, and then record waits, and with it
// the connections. After any other write error (and after a full disk
// with exitOnError, or at the drain deadline) the output drops and counts
// every record, and reports the error, once, on stderr and to fail.
type output struct {
	outputConfig
	name string // for messages: the path, or "standard output"
	fail chan<- error

	mu     sync.Mutex // guards the fields below, and fmt
	room   sync.Cond  // on mu: cur is set again, or err
	fmt    *formatter
	cur    *chunk   // the buffer being filled; nil while every buffer waits for run
	queue  []*chunk // full buffers, in order, for run
	free   []*chunk
	err    error     // the first write error
	closed bool      // close has begun: no record is taken after
	giveUp time.Time // set by drainBy: a wait for space ends then
	stats  outputStats

	// run's own.
	file       *os.File
	linked     int64            // the file's size when a look last found the path naming it
	unended    bool             // the file ends with a torn line that mend could not end
	looks      <-chan time.Time // nil for standard output
	reopenWait chan<- error     // a Reopen waits on it
	stopWait   chan<- error     // Close waits on it
	lookErr    string           // the last reopen error after a look, logged once

	wake  chan struct{} // cap 1: a buffer is queued
	armed chan struct{} // cap 1: a record went into an empty buffer
	drain chan struct{} // cap 1: drainBy set giveUp
	reqs  chan request  // to run: reopen, or flush and stop
	done  chan struct{} // closed when run returns
}

type request struct {
	stop  bool // flush everything and stop; reopen otherwise
	reply chan error
}

// newOutput opens cfg.path (standard output if it is ""), sets aside a
// torn last line it may end with, and starts the output's writer. Close
// stops it.
func newOutput(cfg outputConfig, f *formatter, fail chan<- error) (*output, error) {
	if cfg.maxLine <= 0 {
		cfg.maxLine = maxLine(logsock.DefaultMaxFrame)
	}
	o := &output{outputConfig: cfg, name: "standard output", fail: fail, fmt: f,
		file: os.Stdout, wake: make(chan struct{}, 1), armed: make(chan struct{}, 1),
		drain: make(chan struct{}, 1), reqs: make(chan request), done: make(chan struct{})}
	if cfg.path != "" {
		file, err := openAppend(cfg.path, cfg.perm)
		if err != nil {
			return nil, err
		}
		o.name, o.file = cfg.path, file
		if o.mend(file) {
			o.stats.Torn++
		}
		o.look()
	}
	o.room.L = &o.mu
	o.cur = &chunk{b: make([]byte, 0, bufSize)}
	for range numBufs - 1 {
		o.free = append(o.free, &chunk{b: make([]byte, 0, bufSize)})
	}
	go o.run()
	return o, nil
}

// record formats rec into the buffer being filled. It waits while every
// buffer waits for the writer.
func (o *output) record(rec *logsock.Record) {
	o.mu.Lock()
	for o.cur == nil && o.err == nil && !o.closed {
		o.room.Wait()
	}
	if o.err != nil || o.closed {
		// Deferred and never done: a v2 client keeps the record, and
		// sends it again to the next logsockd.
		rec.Defer()
		o.stats.Dropped++
		o.mu.Unlock()
		return
	}
	c := o.cur
	c.deferAck(rec)
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
// partial one delay after its first record, looks at the file's path,
// and serves requests.
func (o *output) run() {
	defer close(o.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	if o.path != "" {
		t := time.NewTicker(lookEvery)
		defer t.Stop()
		o.looks = t.C
	}
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
		case <-o.looks:
			o.relook(nil, 0)
			continue
		case <-o.drain: // only a wait for space heeds it
			continue
		case r := <-o.reqs:
			o.take(r)
		}
		o.writeQueued()
		if o.reopenWait != nil {
			_, err := o.reopen(nil, 0)
			o.reopenWait <- err
			o.reopenWait = nil
		}
		if o.stopWait != nil {
			o.stopWait <- o.closeFile()
			return
		}
	}
}

// take takes a request, to be served once every record taken so far is
// written: a reopen then goes to the new file with none lost or split,
// the old one (which logrotate has renamed) complete.
func (o *output) take(r request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if r.stop {
		// Close comes after the last record, by its contract; one that
		// came anyway would wait for no writer: drop it.
		o.closed = true
		o.room.Broadcast()
		o.stopWait = r.reply
	} else {
		o.reopenWait = r.reply
	}
	o.queueCur()
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
		whole, recs := 0, 0 // bytes and records of c written
		if !failed {
			var n int
			n, err = o.write(c)
			whole, recs = n, c.n
			if err == nil && o.fsync {
				if err = o.file.Sync(); err != nil {
					err = fmt.Errorf("fsync: %w", err)
				}
			}
			if err == nil {
				// Written (and synced, with -fsync): a v2 client may
				// drop these records now. Not before: a crash would lose
				// them (issue 19).
				for _, a := range c.acks {
					a.Done()
				}
			}
			if err != nil {
				// The records before the last newline are in the file;
				// the start of the one after is cut, or set aside when
				// the file is opened next.
				whole = bytes.LastIndexByte(c.b[:n], '\n') + 1
				recs = bytes.Count(c.b[:whole], []byte{'\n'})
				o.cutOwn(int64(n - whole))
			}
		}
		o.mu.Lock()
		o.stats.Records += uint64(recs)
		o.stats.Bytes += uint64(whole)
		o.stats.Dropped += uint64(c.n - recs)
		if err != nil {
			o.err = fmt.Errorf("output %s: %w", o.name, err)
			o.stats.Failed = true
			log.Printf("%v: draining the connections, then exiting; the records from now on are dropped", o.err)
			o.fail <- o.err // once: the channel has room for it
		}
		c.reset()
		if o.cur == nil {
			o.cur = c
		} else {
			o.free = append(o.free, c)
		}
		o.room.Broadcast()
		o.mu.Unlock()
	}
}

// diskFull reports whether err says that the file system has no space
// for the write, or the user no quota: conditions that pass.
func diskFull(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// write writes c whole (os.File's Write continues a short write itself),
// and returns the bytes of c written and the error that stopped it. On a
// full disk it waits for space, trying again with a growing pause, and
// continues where the write stopped: the record that the write cut is
// completed (issue 20: the daemon exited within a second of ENOSPC). It
// gives up at the drain deadline, or at once with exitOnError.
func (o *output) write(c *chunk) (int, error) {
	off := 0
	var since time.Time // when the wait for space began
	retry := minRetry
	for {
		var n int
		var err error
		if o.unended {
			_, err = o.file.Write([]byte{'\n'})
			o.unended = err != nil
		}
		if err == nil {
			n, err = o.file.Write(c.b[off:])
			off += n
		}
		if err == nil || o.exitOnError || !diskFull(err) {
			if !since.IsZero() {
				o.setWaiting(false)
				log.Printf("output %s: writing again, after %v without space", o.name, time.Since(since).Round(time.Millisecond))
			}
			return off, err
		}
		if since.IsZero() {
			since = time.Now()
			o.setWaiting(true)
			log.Printf("output %s: %v: waiting for space; meanwhile the connections are not read, and their clients hold their records", o.name, err)
		}
		var perr error
		if off, perr = o.pause(c, off, retry); perr != nil {
			o.setWaiting(false)
			return off, fmt.Errorf("%w, for %v, when %v", err, time.Since(since).Round(time.Millisecond), perr)
		}
		retry = min(2*retry, maxRetry)
	}
}

func (o *output) setWaiting(w bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if w {
		o.stats.Waits++
	}
	o.stats.Waiting = w
}

// pause waits up to d, or until the drain deadline, for space to come
// back, and returns the offset in c to write from next. Meanwhile it
// serves requests and looks at the path: a file deleted to free space,
// renamed, or reopened on SIGHUP is replaced at once (a Reopen that waited
// for space would hold the signals, SIGTERM among them), and the record
// that the failed write cut is started again in the new file. It returns
// errDeadline once the drain deadline has passed.
func (o *output) pause(c *chunk, off int, d time.Duration) (int, error) {
	o.mu.Lock()
	giveUp := o.giveUp
	o.mu.Unlock()
	if !giveUp.IsZero() {
		if d = min(d, time.Until(giveUp)); d <= 0 {
			return off, errDeadline
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			return off, nil
		case <-o.drain:
			return off, nil // try once more, then pause until the deadline
		case r := <-o.reqs:
			o.take(r)
			if o.reopenWait != nil {
				var err error
				off, err = o.reopen(c, off)
				o.reopenWait <- err
				o.reopenWait = nil
				return off, nil
			}
		case <-o.looks:
			if next := o.relook(c, off); next != off {
				return next, nil
			}
		}
	}
}

// relook looks at the path (look), and if it names another file or none,
// reopens it, and says so. c and off are as for reopen.
func (o *output) relook(c *chunk, off int) int {
	old, err := o.file.Stat()
	if err != nil || !o.look() {
		return off
	}
	what := "renamed or replaced"
	if st, ok := old.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		what = "deleted"
	}
	next, err := o.reopen(c, off)
	if err == nil {
		o.lookErr = ""
		log.Printf("output %s: the file was %s: reopened", o.name, what)
		return next
	}
	// Logged once, and tried again at the next look.
	if msg := err.Error(); msg != o.lookErr {
		o.lookErr = msg
		log.Printf("output %s: the file was %s: %v", o.name, what, err)
	}
	return next
}

// reopen opens the file again by its path: for logrotate, on SIGHUP, and
// when a look found the path naming another file or none. The records
// after it go to the file that the path names now; what was written into
// the old file after it was deleted is copied to the new one (salvage).
// If the open fails, the output keeps the file it has.
//
// c and off are the buffer whose write is waiting for space, and the
// bytes of it written, if any: the start of a record in the old file is
// cut from it, and the record is written again whole to the new one.
// reopen returns the offset in c to write from next.
func (o *output) reopen(c *chunk, off int) (int, error) {
	f, err := openAppend(o.path, o.perm)
	if err != nil {
		return off, fmt.Errorf("reopening %s (still writing to the file it named before): %w", o.path, err)
	}
	old := o.file
	fi, err1 := f.Stat()
	oi, err2 := old.Stat()
	if err1 == nil && err2 == nil && os.SameFile(fi, oi) {
		flock(f, syscall.LOCK_SH|syscall.LOCK_NB) // the same file: its tail is this output's, whole
	} else if o.mend(f) {
		o.mu.Lock()
		o.stats.Torn++
		o.mu.Unlock()
	}
	if c != nil {
		whole := bytes.LastIndexByte(c.b[:off], '\n') + 1
		o.cutOwn(int64(off - whole))
		off = whole
	}
	var size int64 // before the copy
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	if n, err := o.salvage(old, f); err != nil {
		// A partial copy would leave a torn line before the next record.
		f.Truncate(size)
		log.Printf("output %s: copying what was written into the deleted file after the last look: %v", o.name, err)
	} else if n > 0 {
		log.Printf("output %s: copied the %d bytes written into the deleted file after the last look", o.name, n)
	}
	o.file, o.linked = f, size
	o.look()
	o.mu.Lock()
	o.stats.Reopens++
	o.mu.Unlock()
	if err := old.Close(); err != nil {
		return off, fmt.Errorf("closing the previous %s: %w", o.path, err)
	}
	return off, nil
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

// drainBy sets the time at which a wait for space gives up: the records
// it holds, and those that come after, are then dropped and counted, so
// that the handlers return and the drain ends in time.
func (o *output) drainBy(t time.Time) {
	o.mu.Lock()
	o.giveUp = t
	o.mu.Unlock()
	notify(o.drain)
}

// Close writes every record taken, closes a file that the output opened,
// and stops the writer. It returns the first write error, if any. Call
// it once, after the last call of record. On a full disk it waits for
// space until the time set by drainBy, if any.
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

// writeErr returns the error that stopped the output (Stats' Failed), or
// nil: /healthz names it.
func (o *output) writeErr() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}
