package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/logsock/logsock"
)

// The price of acknowledged delivery (issue 19): one LogSocket sends 100 B
// messages into a real cmd/logsockd -json -o FILE, with and without
// Config.Acks, in direct and in batching mode, over TCP loopback and a
// Unix socket, from 1 and from 8 goroutines. The two variants of a case
// run back to back in each run, in a random order, each into a fresh
// logsockd with an empty file. A measure runs from the first Log to the
// moment every record is in the file: Flush has returned (with Acks, once
// everything is acknowledged) and the last record's line is written. The
// last message is a marker, logged after the others; one connection's
// records reach the file in order, so the file is complete when its last
// line holds the marker. Polling the file's size and reading its tail
// costs next to nothing, where counting the lines of a file growing by
// 2-3 MB a run-millisecond would compete with logsockd for the 2 cores;
// the lines are counted once the clock has stopped.

// ackCase is one cell of the acks section's matrix.
type ackCase struct {
	mode       string // "direct" or "batching"
	network    string
	goroutines int
}

// name names one variant of k, as -only matches it: "acks batching
// unix/8g on".
func (k ackCase) name(acks bool) string {
	v := "off"
	if acks {
		v = "on"
	}
	return fmt.Sprintf("acks %s %s/%dg %s", k.mode, k.network, k.goroutines, v)
}

var ackCases = func() []ackCase {
	var cs []ackCase
	for _, mode := range []string{"direct", "batching"} {
		for _, network := range networks {
			for _, g := range goroutines {
				cs = append(cs, ackCase{mode, network, g})
			}
		}
	}
	return cs
}()

// ackMeasure is what the runs of one variant of a case found.
type ackMeasure struct {
	rates    []float64 // frames/s, one a run
	atFlush  int       // runs in which the file held every record when Flush returned
	perWrite []float64 // frames a write (Stats), one a run
	client   []float64 // this process's CPU a frame, µs, one a run
	server   []float64 // logsockd's CPU a frame, µs, one a run
	err      error
	measured bool // selected by -only
}

func (m *ackMeasure) rate() float64 {
	if m == nil || m.err != nil {
		return 0
	}
	return median(slices.Clone(m.rates))
}

type ackResults struct {
	n        map[string]int // messages a measure, by mode
	cases    []ackCase      // those with a variant selected
	measures map[ackKey]*ackMeasure
}

type ackKey struct {
	k    ackCase
	acks bool
}

// ratio returns acks / no acks in case k, 0 if either is missing.
func (r *ackResults) ratio(k ackCase) float64 {
	if r == nil {
		return 0
	}
	return safeDiv(r.measures[ackKey{k, true}].rate(), r.measures[ackKey{k, false}].rate())
}

// ackMarker is the last message of a measure: 100 B, as the others.
var ackMarker = "last" + strings.Repeat("m", receiverSize-4)

func runAcks(opt options) *ackResults {
	res := &ackResults{
		// Batching sends the receivers' load: at its rate, 200,000 frames
		// take a tenth of a second, of the order of the flush delays.
		n:        map[string]int{"direct": opt.n, "batching": opt.daemonN},
		measures: map[ackKey]*ackMeasure{},
	}
	for _, k := range ackCases {
		on, off := opt.only.MatchString(k.name(true)), opt.only.MatchString(k.name(false))
		if !on && !off {
			continue
		}
		res.cases = append(res.cases, k)
		res.measures[ackKey{k, true}] = &ackMeasure{measured: on}
		res.measures[ackKey{k, false}] = &ackMeasure{measured: off}
	}
	if len(res.cases) == 0 {
		return nil
	}
	progress("acks: building %s", logsockReceiver.pkg)
	exe, err := buildReceiver(opt.tempDir)
	if err != nil {
		for _, m := range res.measures {
			m.err = err
		}
		return res
	}
	env := &receiverEnv{dir: opt.tempDir, exe: exe}
	msg := strings.Repeat("m", receiverSize)
	rng := rand.New(rand.NewPCG(1, 9))
	for run := range opt.runs {
		for _, k := range res.cases {
			variants := []bool{false, true}
			rng.Shuffle(2, func(i, j int) { variants[i], variants[j] = variants[j], variants[i] })
			for _, acks := range variants {
				m := res.measures[ackKey{k, acks}]
				if !m.measured || m.err != nil {
					continue
				}
				progress("acks: run %d/%d %s", run+1, opt.runs, k.name(acks))
				r, err := measureAcks(env, k, acks, res.n[k.mode], msg)
				if err != nil {
					m.err = err
					progressDone()
					fmt.Fprintf(os.Stderr, "%s: %v\n", k.name(acks), err)
					continue
				}
				m.rates = append(m.rates, r.rate)
				m.perWrite = append(m.perWrite, safeDiv(float64(r.stats.Frames), float64(r.stats.Writes)))
				m.client = append(m.client, r.client.Seconds()*1e6/float64(res.n[k.mode]))
				m.server = append(m.server, r.server.Seconds()*1e6/float64(res.n[k.mode]))
				if r.atFlush {
					m.atFlush++
				}
			}
		}
	}
	progressDone()
	return res
}

// ackRun is one measure's outcome.
type ackRun struct {
	rate    float64 // frames/s
	atFlush bool    // the file held every record when Flush returned
	stats   logsock.Stats
	client  time.Duration // this process's CPU time, user and system, from the first Log to the end
	server  time.Duration // logsockd's, from its start to its end
}

// measureAcks sends n messages msg (the last of them ackMarker) into a
// fresh logsockd -json -o FILE, as case k says, with or without acks.
func measureAcks(env *receiverEnv, k ackCase, acks bool, n int, msg string) (ackRun, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp(env.dir, "ack")
	if err != nil {
		return ackRun{}, err
	}
	defer os.RemoveAll(dir)
	server0 := childrenCPU()
	network, addr, out, stop, err := startLogsockd(ctx, env, dir, k.network, true)
	if err != nil {
		return ackRun{}, err
	}
	defer stop()
	ls, err := logsock.Dial(network, addr, &logsock.Config{Batching: k.mode == "batching", Acks: acks})
	if err != nil {
		return ackRun{}, err
	}
	defer ls.Close()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	type seen struct {
		at   time.Time
		size int64 // the file's size then
		err  error
	}
	marked := make(chan seen, 1)
	go func() {
		at, size, err := waitTail(watchCtx, out, ackMarker)
		marked <- seen{at, size, err}
	}()
	runtime.GC() // the garbage of the last measure is not this one's to collect

	client0 := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, k.goroutines+2)
	for g := range k.goroutines {
		share := (n - 1) / k.goroutines
		if g == 0 {
			share += (n - 1) % k.goroutines
		}
		wg.Go(func() {
			for range share {
				if err := ls.Log(msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	if err := ls.Log(ackMarker); err != nil {
		errs <- err
	}
	if err := ls.Flush(ctx); err != nil {
		errs <- fmt.Errorf("flush: %w", err)
	}
	flushed := time.Now()
	fi, statErr := os.Stat(out)
	close(errs)
	if err := errors.Join(<-errs, statErr); err != nil {
		return ackRun{}, err
	}
	s := <-marked
	if s.err != nil {
		return ackRun{}, s.err
	}
	end := flushed
	if s.at.After(end) {
		end = s.at
	}
	client := selfCPU() - client0 // a little late: the poll's millisecond at most
	r := ackRun{
		client:  client,
		rate:    float64(n) / end.Sub(start).Seconds(),
		atFlush: fi.Size() >= s.size,
		stats:   ls.Stats(),
	}
	if err := ls.Close(); err != nil {
		return ackRun{}, fmt.Errorf("close: %w", err)
	}
	if err := stop(); err != nil {
		return ackRun{}, err
	}
	r.server = childrenCPU() - server0 // stop has waited for it, the one child since
	// The clock has stopped: every record must be there, once.
	lines, err := countLines(out)
	switch {
	case err != nil:
		return ackRun{}, err
	case lines != n:
		return ackRun{}, fmt.Errorf("%s: %d lines, want %d", out, lines, n)
	case acks && r.stats.Acked != uint64(n):
		return ackRun{}, fmt.Errorf("%d frames acknowledged, want %d", r.stats.Acked, n)
	case r.stats.Resent != 0 || r.stats.Reconnects != 0:
		return ackRun{}, fmt.Errorf("%d frames resent, %d reconnections: not a measure of one connection", r.stats.Resent, r.stats.Reconnects)
	}
	return r, nil
}

// waitTail polls the file at path every millisecond until its last line
// holds marker, and returns when it saw it and the file's size then. A
// poll is an fstat, and a read of the file's last 4 KiB when it has grown.
func waitTail(ctx context.Context, path, marker string) (time.Time, int64, error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var f *os.File
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var size int64
	buf := make([]byte, 4096)
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, 0, fmt.Errorf("%s: no line with the last record (%d bytes): %w", path, size, ctx.Err())
		case <-tick.C:
		}
		if f == nil {
			var err error
			if f, err = os.Open(path); errors.Is(err, os.ErrNotExist) {
				continue
			} else if err != nil {
				return time.Time{}, 0, err
			}
		}
		fi, err := f.Stat()
		if err != nil {
			return time.Time{}, 0, err
		}
		now := time.Now()
		if fi.Size() == size {
			continue
		}
		size = fi.Size()
		off := max(0, size-int64(len(buf)))
		k, err := f.ReadAt(buf[:size-off], off)
		if err != nil && err != io.EOF {
			return time.Time{}, 0, err
		}
		tail := buf[:k]
		if len(tail) == 0 || tail[len(tail)-1] != '\n' {
			continue // a line being written
		}
		last := tail[bytes.LastIndexByte(tail[:len(tail)-1], '\n')+1:]
		if bytes.Contains(last, []byte(marker)) {
			return now, size, nil
		}
	}
}

// selfCPU returns the CPU time, user and system, of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countLines counts the lines of the file at path.
func countLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lines := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		lines += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return lines, nil
		} else if err != nil {
			return lines, err
		}
	}
}

// ackGoal is a goal of the section: acks / no acks in a mode.
type ackGoal struct {
	mode      string
	threshold float64
}

var ackGoals = []ackGoal{{"batching", 0.8}, {"direct", 0.85}}

func printAcks(w io.Writer, r *ackResults) {
	if r == nil {
		return
	}
	fmt.Fprintf(w, "\nAcknowledged delivery (issue 19): one LogSocket into cmd/logsockd -json -o FILE, 100 B messages, %d a direct measure, %d a batching one,\n",
		r.n["direct"], r.n["batching"])
	fmt.Fprintln(w, "from the first Log to the moment the file holds every record (Flush returned, the last record's line written); off and on interleaved")
	tw := table(w)
	fmt.Fprintln(tw, "mode\tnetwork\tgoroutines\tno acks frames/s\tacks frames/s\tacks / no acks\tgoal\tframes a write, no acks | acks\tclient CPU µs/frame, no acks | acks\tlogsockd CPU µs/frame, no acks | acks\twritten at Flush (acks)\truns no acks | acks\t")
	for _, k := range r.cases {
		off, on := r.measures[ackKey{k, false}], r.measures[ackKey{k, true}]
		status := "-"
		for _, g := range ackGoals {
			if g.mode == k.mode && r.ratio(k) > 0 {
				status = fmt.Sprintf(">= %.2fx %s", g.threshold, metOrNot(r.ratio(k), g.threshold))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s | %s\t%s | %s\t%s | %s\t%s\t%s | %s\t\n", k.mode, k.network, k.goroutines,
			ackCell(off), ackCell(on), ratio(on.rate(), off.rate()), status, perWrite(off), perWrite(on),
			medianCell(off.client, "%.3f"), medianCell(on.client, "%.3f"), medianCell(off.server, "%.3f"), medianCell(on.server, "%.3f"), atFlushCell(on), ackRuns(off), ackRuns(on))
	}
	tw.Flush()
	fmt.Fprintln(w, "frames a write: the client's Stats.Frames / Stats.Writes; CPU: user and system, this process's from the first Log to the end")
	fmt.Fprintln(w, "(the client, and a poll of the file's size every millisecond), logsockd's from its start to its end; medians")
	fmt.Fprintln(w, "written at Flush: runs in which the file already held every record when Flush returned; with acks that is the promise once")
	fmt.Fprintln(w, "logsockd acknowledges a record after its write(2), and the time of a measure is Flush's return")
}

func metOrNot(v, threshold float64) string {
	if goal := (goal{value: v, threshold: threshold, unit: "x"}); goal.status() == "met" {
		return "met"
	}
	return "NOT MET"
}

func ackCell(m *ackMeasure) string {
	switch {
	case !m.measured:
		return "-"
	case m.err != nil:
		return "error: " + m.err.Error()
	}
	return rate(m.rate())
}

// perWrite is the median of the frames a write of m's runs: how well the
// writes batch.
func perWrite(m *ackMeasure) string { return medianCell(m.perWrite, "%.1f") }

// medianCell formats the median of xs, "-" if there is none.
func medianCell(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf(format, median(slices.Clone(xs)))
}

func atFlushCell(m *ackMeasure) string {
	if !m.measured || m.err != nil {
		return "-"
	}
	return fmt.Sprintf("%d/%d", m.atFlush, len(m.rates))
}

func ackRuns(m *ackMeasure) string {
	var rs []string
	for _, v := range m.rates {
		rs = append(rs, rate(v))
	}
	if len(rs) == 0 {
		return "-"
	}
	return strings.Join(rs, " ")
}

// goals returns the section's goals: in each mode, acks / no acks
// in the headline case (TCP, 1 goroutine), and in how many cases it holds.
func (r *ackResults) goals() []goal {
	if r == nil {
		return nil
	}
	var gs []goal
	for _, ag := range ackGoals {
		hl := ackCase{ag.mode, "tcp", 1}
		g := goal{name: fmt.Sprintf("%s with acks / without, into logsockd -json -o (TCP, 1g)", ag.mode), threshold: ag.threshold,
			unit: "x", value: r.ratio(hl)}
		met, total, worst, worstCase := 0, 0, 0.0, ackCase{}
		for _, k := range r.cases {
			v := r.ratio(k)
			if k.mode != ag.mode || v <= 0 {
				continue
			}
			total++
			if metOrNot(v, ag.threshold) == "met" {
				met++
			}
			if worst == 0 || v < worst {
				worst, worstCase = v, k
			}
		}
		if total == 0 {
			continue
		}
		g.detail = fmt.Sprintf("all cases: met in %d/%d, worst %.2fx (%s/%dg)", met, total, worst, worstCase.network, worstCase.goroutines)
		gs = append(gs, g)
	}
	return gs
}
