package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/logsock/logsock"
)

// The latency test weighs Nagle's algorithm for the direct mode, as issue 5
// asks: a writer sends 100 B frames at a steady rate over TCP loopback, each
// stamped with the time of its Log call, and a reader in this process
// notes when each arrives. Go sets TCP_NODELAY on its TCP connections; the
// raw writer with it cleared ("Nagle on") shows what the kernel's
// coalescing costs in delay, and logsock batching what its FlushDelay does.

var latencyRates = []int{1000, 10000, 50000} // frames a second

type latencyContender struct {
	name string
	open func(addr string) (log func([]byte) error, closeFn func() error, err error)
}

var latencyContenders = []latencyContender{
	{"raw write (TCP_NODELAY)", openLatencyRaw(true)},
	{"raw write, Nagle on", openLatencyRaw(false)},
	{"logsock direct", openLatencyLogsock(nil)},
	{"logsock batching", openLatencyLogsock(&logsock.Config{Batching: true})},
}

func openLatencyRaw(noDelay bool) func(string) (func([]byte) error, func() error, error) {
	return func(addr string) (func([]byte) error, func() error, error) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		if err := c.(*net.TCPConn).SetNoDelay(noDelay); err != nil {
			c.Close()
			return nil, nil, err
		}
		hs := appendHandshake(nil, 1)
		if _, err := c.Write(hs); err != nil {
			c.Close()
			return nil, nil, err
		}
		var frame []byte
		log := func(msg []byte) error {
			frame = appendFrame(frame[:0], msg)
			_, err := c.Write(frame)
			return err
		}
		return log, c.Close, nil
	}
}

func openLatencyLogsock(cfg *logsock.Config) func(string) (func([]byte) error, func() error, error) {
	return func(addr string) (func([]byte) error, func() error, error) {
		ls, err := logsock.Dial("tcp", addr, cfg)
		if err != nil {
			return nil, nil, err
		}
		log := func(msg []byte) error { _, err := ls.Write(msg); return err }
		return log, ls.Close, nil
	}
}

type latencyResult struct {
	name          string
	rate          int
	p50, p99, max time.Duration
	err           error
}

// runLatency measures each contender at each rate for about a second.
func runLatency() []latencyResult {
	var out []latencyResult
	for _, rate := range latencyRates {
		for _, c := range latencyContenders {
			r := latencyResult{name: c.name, rate: rate}
			lat, err := measureLatency(c, rate, rate) // one second's worth
			if err != nil {
				r.err = err
			} else {
				slices.Sort(lat)
				r.p50, r.p99, r.max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
			}
			out = append(out, r)
		}
	}
	return out
}

func measureLatency(c latencyContender, rate, n int) ([]time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer l.Close()
	base := time.Now()
	lat := make([]time.Duration, 0, n)
	done := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		dec := logsock.NewDecoder(conn, nil)
		if _, err := dec.Handshake(); err != nil {
			done <- err
			return
		}
		for len(lat) < n {
			msg, err := dec.Next()
			if err != nil {
				done <- err
				return
			}
			sent := time.Duration(binary.LittleEndian.Uint64(msg))
			lat = append(lat, time.Since(base)-sent)
		}
		done <- nil
	}()

	log, closeFn, err := c.open(l.Addr().String())
	if err != nil {
		return nil, err
	}
	msg := make([]byte, 100)
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(msg, uint64(time.Since(base)))
		if err := log(msg); err != nil {
			closeFn()
			return nil, err
		}
		// Pace by the clock, not by sleeping each interval: a sleep is
		// at least tens of microseconds late, so sleep only when ahead.
		next = next.Add(interval)
		if d := time.Until(next); d > 100*time.Microsecond {
			time.Sleep(d)
		}
	}
	if err := closeFn(); err != nil { // flushes what batching holds
		return nil, err
	}
	select {
	case err := <-done:
		return lat, err
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("%s: reader got %d of %d frames", c.name, len(lat), n)
	}
}

func printLatency(w io.Writer, rs []latencyResult) {
	fmt.Fprintln(w, "Latency, TCP loopback, 100 B frames at a steady rate: from the Log call to the reader's Next (one second a row)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "writer\trate\tp50\tp99\tmax\t")
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(tw, "%s\t%d/s\terror: %v\t\t\t\n", r.name, r.rate, r.err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d/s\t%v\t%v\t%v\t\n", r.name, r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond))
	}
	tw.Flush()
	fmt.Fprintln(w)
}
