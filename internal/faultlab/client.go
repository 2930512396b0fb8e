//go:build unix

package faultlab

import (
	"sync"
	"time"

	"github.com/logsock/logsock"
)

// What a Log call did with its frame, as far as the caller can tell.
const (
	callAccepted = 1 << iota // Log returned nil
	callHeld                 // the frame was held after the call (Stats.Held > 0)
	callNewConn              // the call opened a connection
)

// Client drives a LogSocket with sequence-numbered messages and keeps,
// for each, what the call did with it; it measures how long the client
// takes to notice each fault that the harness marks.
//
// Log and Run's load must not overlap: frames are numbered in the order of
// the calls, and one caller at a time is what lets Stats, read after each
// call, speak about that call's frame. The other methods may be called
// from any goroutine.
type Client struct {
	LS   *logsock.LogSocket
	Size int // message size in bytes

	buf []byte // the message being sent; used by the one caller

	mu       sync.Mutex // guards the fields below
	calls    []uint8    // per sequence number: call* bits
	errs     int
	firstErr error
	faults   []*Fault
	peakHeld int // frames
	peakHB   int // bytes, headers included
}

// NewClient returns a Client that sends messages of size bytes on ls.
func NewClient(ls *logsock.LogSocket, size int) *Client {
	return &Client{LS: ls, Size: size}
}

// Log sends the next message and returns Log's error.
func (c *Client) Log() error {
	c.mu.Lock()
	seq := len(c.calls)
	c.calls = append(c.calls, 0)
	c.mu.Unlock()

	c.buf = AppendMessage(c.buf[:0], seq, c.Size)
	before := c.LS.Stats()
	// Write is Log for bytes: the same frame, without a copy into a string.
	_, err := c.LS.Write(c.buf)
	after := c.LS.Stats()

	var bits uint8
	if err == nil {
		bits |= callAccepted
		if after.Held > 0 {
			bits |= callHeld // held frames go out in order: this one is among them
		}
	}
	if after.Connects > before.Connects {
		bits |= callNewConn
	}
	c.mu.Lock()
	c.calls[seq] = bits
	if err != nil {
		c.errs++
		if c.firstErr == nil {
			c.firstErr = err
		}
	}
	c.mu.Unlock()
	c.observe(after)
	return err
}

// LogN sends n messages, back to back.
func (c *Client) LogN(n int) {
	for range n {
		c.Log()
	}
}

// Run sends batch messages every interval until the returned function is
// called; that function waits for the last call to return.
func (c *Client) Run(interval time.Duration, batch int) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for range max(batch, 1) {
				c.Log()
			}
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Watch reads Stats every interval, so that a fault is noticed as soon as
// the client's counters show it, even while a call is blocked; the
// returned function stops it and waits for it.
func (c *Client) Watch(interval time.Duration) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				c.observe(c.LS.Stats())
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// Sent returns how many messages have been sent (Log calls made).
func (c *Client) Sent() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.calls)
}

// Errors returns how many Log calls failed, and the first error.
func (c *Client) Errors() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errs, c.firstErr
}

// PeakHeld returns the most frames and bytes (headers included) that Stats
// showed held, after any call or watch tick.
func (c *Client) PeakHeld() (frames, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peakHeld, c.peakHB
}

// calls returns a copy of the per-message bits.
func (c *Client) callBits() []uint8 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint8(nil), c.calls...)
}

// A Fault is a moment when the harness broke the collector, and how long
// the client took to notice.
type Fault struct {
	Name string
	At   time.Time

	base     logsock.Stats
	noticed  func(base, now logsock.Stats) bool
	mu       *sync.Mutex   // the Client's: guards detected
	detected time.Duration // 0 until noticed
}

// Detected returns how long after the fault the client's counters first
// showed it, and false if they have not (yet).
func (f *Fault) Detected() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.detected, f.detected > 0
}

// noticedChange is the usual test: the client has noticed a broken
// collector once it has reconnected, failed a call, held, dropped or
// re-sent a frame.
func noticedChange(base, now logsock.Stats) bool {
	return now.Reconnects > base.Reconnects || now.Errors > base.Errors ||
		now.Dropped > base.Dropped || now.Resent > base.Resent ||
		now.Held > 0 && base.Held == 0
}

// noticedConnect is the test for a collector coming up: the client has
// connected to it.
func noticedConnect(base, now logsock.Stats) bool { return now.Connects > base.Connects }

// MarkFault records that the harness is about to break the collector;
// call it just before the signal.
func (c *Client) MarkFault(name string) *Fault {
	return c.mark(name, noticedChange)
}

// MarkUp records that the collector is about to come up: the "detection"
// is the client's first connection to it.
func (c *Client) MarkUp(name string) *Fault {
	return c.mark(name, noticedConnect)
}

func (c *Client) mark(name string, noticed func(base, now logsock.Stats) bool) *Fault {
	f := &Fault{Name: name, At: time.Now(), base: c.LS.Stats(), noticed: noticed, mu: &c.mu}
	c.mu.Lock()
	c.faults = append(c.faults, f)
	c.mu.Unlock()
	return f
}

// Faults returns the faults marked so far.
func (c *Client) Faults() []*Fault {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*Fault(nil), c.faults...)
}

// observe updates the peaks and the detection of pending faults from a
// reading of Stats.
func (c *Client) observe(st logsock.Stats) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.peakHeld = max(c.peakHeld, int(st.Held))
	c.peakHB = max(c.peakHB, int(st.HeldBytes))
	for _, f := range c.faults {
		if f.detected == 0 && f.noticed(f.base, st) {
			f.detected = max(now.Sub(f.At), time.Nanosecond)
		}
	}
}
