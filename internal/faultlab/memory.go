//go:build unix

package faultlab

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/logsock/logsock"
)

// MemParams are the knobs of the memory run; zero fields take the
// defaults, which are those of the report.
type MemParams struct {
	Network     string           // "tcp"
	Outage      time.Duration    // how long the collector is down (30s)
	BufferBytes int              // the client's bound on held frames (1 MiB)
	Overflow    logsock.Overflow // the client's policy when it is full (DropOldest)
	Size        int              // message size in bytes (512)
	Interval    time.Duration    // a message every Interval (1ms)
	Lead        time.Duration    // load before the outage (500ms)
	Sample      time.Duration    // between memory samples (250ms)
	Settle      time.Duration    // bound on the final Flush (15s)
}

func (p MemParams) withDefaults() MemParams {
	if p.Network == "" {
		p.Network = "tcp"
	}
	if p.Outage == 0 {
		p.Outage = 30 * time.Second
	}
	if p.BufferBytes == 0 {
		p.BufferBytes = 1 << 20
	}
	if p.Size == 0 {
		p.Size = 512
	}
	if p.Interval == 0 {
		p.Interval = time.Millisecond
	}
	if p.Lead == 0 {
		p.Lead = 500 * time.Millisecond
	}
	if p.Sample == 0 {
		p.Sample = 250 * time.Millisecond
	}
	if p.Settle == 0 {
		p.Settle = 15 * time.Second
	}
	return p
}

// MemResult is the memory row of the report.
type MemResult struct {
	MemParams
	Tally

	Stats         logsock.Stats
	LogErrs       int
	PeakHeld      int    // frames held at the peak, from Stats after every call
	PeakHeldBytes int    // bytes held at the peak, headers included
	HeapBase      uint64 // live heap (after a GC) when the outage began
	HeapPeak      uint64 // largest live heap sampled during the outage
	RSSBase       int64  // VmRSS when the outage began (0 if unknown)
	RSSPeak       int64  // largest VmRSS sampled during the outage
	Samples       int
	FlushErr      error
	CloseErr      error
	Elapsed       time.Duration
}

// HeapGrowth is how much the live heap grew over the outage at its peak.
func (m *MemResult) HeapGrowth() int64 { return int64(m.HeapPeak) - int64(m.HeapBase) }

// RSSGrowth is how much VmRSS grew over the outage at its peak.
func (m *MemResult) RSSGrowth() int64 { return m.RSSPeak - m.RSSBase }

// Line is the result in one line, for logs.
func (m *MemResult) Line() string {
	return fmt.Sprintf("memory %s outage %v: bound %d B, peak held %d B (%d frames), live heap +%d B (peak %d), RSS +%d B (peak %d); sent %d received %d missing %d dropped %d; %d samples",
		m.Network, m.Outage, m.BufferBytes, m.PeakHeldBytes, m.PeakHeld, m.HeapGrowth(), m.HeapPeak,
		m.RSSGrowth(), m.RSSPeak, m.Sent, m.Received, m.Missing, m.Stats.Dropped, m.Samples)
}

// RunMemory keeps a client logging steadily through an outage of the
// collector (stopped gracefully, started again after p.Outage), and
// samples what it holds (Stats, after every call) and what this process
// uses (the live Go heap after a GC, and VmRSS) while the collector is
// down. The client runs in this process: run nothing else meanwhile.
func RunMemory(ctx context.Context, env *Env, p MemParams) (*MemResult, error) {
	p = p.withDefaults()
	began := time.Now()
	res := &MemResult{MemParams: p}

	var undo cleanups
	defer undo.run()
	col, err := StartCollector(env.Collector, p.Network)
	if err != nil {
		return nil, err
	}
	undo.add(col.Close)
	// MaxFrame must fit in BufferBytes, and its default is 1 MiB.
	cfg := logsock.Config{BufferBytes: p.BufferBytes, MaxFrame: min(p.BufferBytes-frameHeader, 64<<10),
		Overflow: p.Overflow, CloseTimeout: p.Settle}
	ls, err := logsock.New(p.Network, col.Address, &cfg)
	if err != nil {
		return nil, err
	}
	closeClient := undo.add(func() { res.CloseErr = ls.Close() })
	cl := NewClient(ls, p.Size)
	stopLoad := undo.add(cl.Run(p.Interval, 1))
	if err := pause(ctx, p.Lead); err != nil {
		return nil, err
	}

	sample := func() (uint64, int64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		rss, _ := RSS()
		return ms.HeapAlloc, rss
	}
	res.HeapBase, res.RSSBase = sample()
	res.HeapPeak, res.RSSPeak = res.HeapBase, res.RSSBase
	cl.MarkFault("SIGTERM")
	if err := col.Stop(); err != nil {
		return nil, err
	}
	end := time.Now().Add(p.Outage)
	for time.Now().Before(end) {
		if err := pause(ctx, min(p.Sample, time.Until(end))); err != nil {
			return nil, err
		}
		heap, rss := sample()
		res.HeapPeak, res.RSSPeak = max(res.HeapPeak, heap), max(res.RSSPeak, rss)
		res.Samples++
	}
	if err := col.Start(); err != nil {
		return nil, err
	}
	stopLoad()
	fctx, cancel := context.WithTimeout(ctx, p.Settle)
	res.FlushErr = ls.Flush(fctx)
	cancel()
	closeClient()
	res.Stats = ls.Stats()
	if err := col.Stop(); err != nil {
		return nil, err
	}
	res.Tally = Check(cl.Sent(), p.Size, col.Records())
	res.LogErrs, _ = cl.Errors()
	res.PeakHeld, res.PeakHeldBytes = cl.PeakHeld()
	res.Elapsed = time.Since(began)
	env.logf("%s", res.Line())
	return res, nil
}
