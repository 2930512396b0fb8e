//go:build unix

package faultlab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/logsock/logsock"
)

// The scenarios, each run over "tcp" and "unix", with the peek check on
// and off.
const (
	// GracefulIdle: the client logs, goes idle; the collector is stopped
	// gracefully (SIGTERM: it drains and exits) and started again; the
	// client logs again.
	GracefulIdle = "graceful-idle"
	// GracefulBusy: the same under steady load.
	GracefulBusy = "graceful-busy"
	// Kill: the collector is SIGKILLed under steady load, then started
	// again.
	Kill = "sigkill"
	// Pause: the collector is SIGSTOPped under steady load for
	// Params.PauseFor, then SIGCONTed. The client uses small WriteTimeout
	// and UserTimeout values, so that it notices within seconds.
	Pause = "sigstop"
	// DownAtStart: the client is made (lazily, with New) while the
	// collector is down, logs during the outage, the collector comes up
	// after Params.DownFor, and the client flushes.
	DownAtStart = "down-at-start"
	// Restarts: the collector is restarted gracefully Params.Restarts
	// times under steady load.
	Restarts = "restart-10"
)

// Scenarios lists the scenarios in the order of the report.
var Scenarios = []string{GracefulIdle, GracefulBusy, Kill, Pause, DownAtStart, Restarts}

// Params are the knobs of the scenarios; zero fields take the defaults,
// which are those of the report.
type Params struct {
	Size         int           // message size in bytes (100)
	Interval     time.Duration // steady load: a batch every Interval (1ms)
	Batch        int           // steady load: messages per batch (1)
	Busy         time.Duration // steady load before and after a fault (1s)
	Idle         time.Duration // graceful-idle: the pause before and after the restart (200ms)
	Burst        int           // graceful-idle: messages logged before and after (10)
	PauseFor     time.Duration // sigstop: how long the collector stays stopped (3s)
	PauseSize    int           // sigstop: message size, large so that buffers fill fast (1000)
	PauseBatch   int           // sigstop: messages per batch (4)
	WriteTimeout time.Duration // sigstop: the client's WriteTimeout (500ms)
	UserTimeout  time.Duration // sigstop: the client's UserTimeout (0: the library's default)
	DownFor      time.Duration // down-at-start: the outage (2s)
	Restarts     int           // restart-10: restarts (10)
	RestartEvery time.Duration // restart-10: load between restarts (200ms)
	BufferBytes  int           // the client's BufferBytes (8 MiB)
	PeekInterval time.Duration // the client's PeekInterval when the peek is on (the library's default)
	Settle       time.Duration // bound on the final Flush (15s)
}

// WithDefaults returns p with its zero fields set to the defaults.
func (p Params) WithDefaults() Params {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	defInt(&p.Size, 100)
	def(&p.Interval, time.Millisecond)
	defInt(&p.Batch, 1)
	def(&p.Busy, time.Second)
	def(&p.Idle, 200*time.Millisecond)
	defInt(&p.Burst, 10)
	def(&p.PauseFor, 3*time.Second)
	defInt(&p.PauseSize, 1000)
	defInt(&p.PauseBatch, 4)
	def(&p.WriteTimeout, 500*time.Millisecond)
	def(&p.DownFor, 2*time.Second)
	defInt(&p.Restarts, 10)
	def(&p.RestartEvery, 200*time.Millisecond)
	defInt(&p.BufferBytes, 8<<20)
	def(&p.Settle, 15*time.Second)
	return p
}

// Config returns the client configuration that scenario name uses: the
// library's defaults, except a buffer large enough that a short outage
// drops nothing, the peek check as asked, and for sigstop the short
// timeouts.
func (p Params) Config(name string, peek bool) logsock.Config {
	p = p.WithDefaults()
	cfg := logsock.Config{BufferBytes: p.BufferBytes, CloseTimeout: p.Settle}
	cfg.PeekInterval = p.PeekInterval
	if !peek {
		cfg.PeekInterval = -1
	}
	if name == Pause {
		cfg.WriteTimeout, cfg.UserTimeout = p.WriteTimeout, p.UserTimeout
	}
	return cfg
}

// Env says where the harness finds its programs.
type Env struct {
	Collector string // the cmd/logsockd binary (testenv.Build)
	Root      string // the module root, where testdata is
	Python    string // python3, or "" to skip the Python peer
	// Logf, if set, receives progress lines.
	Logf func(format string, args ...any)
}

func (e *Env) logf(format string, args ...any) {
	if e.Logf != nil {
		e.Logf(format, args...)
	}
}

// Result is one row of the report.
type Result struct {
	Client   string // "logsock", or a peer
	Scenario string
	Network  string
	Peek     string // "on", "off", or "-" for a peer
	Tally

	// What is missing, by what the Log call did with the frame.
	Refused    int // Log returned an error: not accepted
	HeldLost   int // held after the call, and written later (Stats.Held > 0 after it)
	KernelLost int // written to a connection at once, which must then have died with it
	// KernelBound is how many frames the kernel buffers of the
	// connections that can have died (the first, and one a reconnect)
	// can hold: what is missing and was accepted must fit in it.
	KernelBound int

	Stats    logsock.Stats
	Detect   []time.Duration // per fault: time until the client noticed it; 0 if it never did
	Conns    int             // connections the collector saw
	FlushErr error           // the final Flush's error
	CloseErr error           // Close's error
	LogErrs  int             // Log calls that returned an error
	LogErr   error           // the first of them
	Notes    []string
	Elapsed  time.Duration
}

// DetectString formats the detection times: one value, or the median and
// the maximum of several; "-" if the client never noticed.
func (r *Result) DetectString() string {
	var ds []time.Duration
	missed := 0
	for _, d := range r.Detect {
		if d > 0 {
			ds = append(ds, d)
		} else {
			missed++
		}
	}
	if len(ds) == 0 {
		if missed > 0 {
			return "never"
		}
		return "-"
	}
	slices.Sort(ds)
	s := fmtDur(ds[len(ds)-1])
	if len(ds) > 1 {
		s = fmt.Sprintf("%s med, %s max", fmtDur(ds[len(ds)/2]), s)
	}
	if missed > 0 {
		s += fmt.Sprintf(" (%d never)", missed)
	}
	return s
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	case d < 10*time.Second:
		return fmt.Sprintf("%.0fms", float64(d)/1e6)
	}
	return d.Round(100 * time.Millisecond).String()
}

// pause sleeps for d: a pause that is part of a scenario (an idle time, an
// outage), not a wait for something to happen.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// cleanups runs functions once, last added first.
type cleanups []func()

// add adds f and returns it wrapped, so that calling it early keeps the
// deferred run from calling it again.
func (c *cleanups) add(f func()) func() {
	done := false
	once := func() {
		if !done {
			done = true
			f()
		}
	}
	*c = append(*c, once)
	return once
}

func (c *cleanups) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
}

// Run runs scenario name over network with the peek check on or off, and
// returns its row. An error means the harness could not run it (a
// collector that would not start, ctx done); what the client did wrong is
// in the Result.
func Run(ctx context.Context, env *Env, name, network string, peek bool, p Params) (*Result, error) {
	p = p.WithDefaults()
	if !slices.Contains(Scenarios, name) {
		return nil, fmt.Errorf("faultlab: unknown scenario %q", name)
	}
	began := time.Now()
	res := &Result{Client: "logsock", Scenario: name, Network: network, Peek: onOff(peek)}
	size, batch := p.Size, p.Batch
	if name == Pause {
		size, batch = p.PauseSize, p.PauseBatch
	}

	var undo cleanups
	defer undo.run()
	col, err := NewCollector(env.Collector, network)
	if err != nil {
		return nil, err
	}
	undo.add(col.Close)
	if name != DownAtStart {
		if err := col.Start(); err != nil {
			return nil, err
		}
	}
	cfg := p.Config(name, peek)
	ls, err := logsock.New(network, col.Address, &cfg)
	if err != nil {
		return nil, err
	}
	closeClient := undo.add(func() { res.CloseErr = ls.Close() })
	cl := NewClient(ls, size)
	stopWatch := undo.add(cl.Watch(time.Millisecond))
	stopLoad := func() {}

	// The scenario is a list of steps; the first error ends it.
	load := func() error {
		stopLoad = undo.add(cl.Run(p.Interval, batch))
		return nil
	}
	burst := func() error {
		cl.LogN(p.Burst)
		return nil
	}
	sleep := func(d time.Duration) func() error {
		return func() error { return pause(ctx, d) }
	}
	fault := func(how string, do func() error) func() error {
		return func() error {
			cl.MarkFault(how)
			return do()
		}
	}
	restart := func(how string, stop func() error) func() error {
		return fault(how, func() error {
			if err := stop(); err != nil {
				return err
			}
			return col.Start()
		})
	}
	var steps []func() error
	switch name {
	case GracefulIdle:
		wait := func() error {
			wctx, cancel := context.WithTimeout(ctx, p.Settle)
			defer cancel()
			return col.WaitRecords(wctx, p.Burst)
		}
		steps = []func() error{burst, wait, sleep(p.Idle), restart("SIGTERM", col.Stop), sleep(p.Idle), burst}
	case GracefulBusy:
		steps = []func() error{load, sleep(p.Busy), restart("SIGTERM", col.Stop), sleep(p.Busy)}
	case Kill:
		steps = []func() error{load, sleep(p.Busy), restart("SIGKILL", col.Kill), sleep(p.Busy)}
	case Pause:
		steps = []func() error{load, sleep(p.Busy), fault("SIGSTOP", col.Pause), sleep(p.PauseFor), col.Resume, sleep(p.Busy)}
	case DownAtStart:
		up := func() error {
			cl.MarkUp("up")
			return col.Start()
		}
		steps = []func() error{load, sleep(p.DownFor), up, sleep(p.RestartEvery)}
	case Restarts:
		steps = []func() error{load}
		for range p.Restarts {
			steps = append(steps, sleep(p.RestartEvery), restart("SIGTERM", col.Stop))
		}
		steps = append(steps, sleep(p.RestartEvery))
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, fmt.Errorf("faultlab: %s/%s/peek-%s: %w", name, network, res.Peek, err)
		}
	}
	stopLoad()

	fctx, cancel := context.WithTimeout(ctx, p.Settle)
	defer cancel()
	res.FlushErr = ls.Flush(fctx)
	if err := res.finish(fctx, cl, col, closeClient); err != nil {
		return nil, err
	}
	stopWatch()
	res.Stats = ls.Stats()
	if err := col.Stop(); err != nil {
		return nil, err
	}
	res.analyse(cl, col.Records(), size, network)
	res.Elapsed = time.Since(began)
	env.logf("%s", res.Line())
	return res, nil
}

// finish sends one last frame, waits until the collector has it, closes
// the client and waits until the collector has seen that connection end:
// then every frame that the client wrote on its last connection is in,
// and the collector can be stopped without losing any. (A graceful stop
// does not drain connections still in the listen backlog.)
func (r *Result) finish(ctx context.Context, cl *Client, col *Collector, closeClient func()) error {
	last := cl.Sent()
	cl.Log()
	if err := cl.LS.Flush(ctx); err != nil && r.FlushErr == nil {
		r.FlushErr = err
	}
	rec, err := col.WaitSeq(ctx, last)
	closeClient()
	if err != nil {
		r.note("the last frame did not arrive: %v", err)
		return nil
	}
	if rec.Start != col.starts {
		return nil // it came in on a connection of an earlier run
	}
	return col.WaitConnClosed(ctx, rec.Conn)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// analyse fills in the tally and the classification of what is missing.
func (r *Result) analyse(cl *Client, recs []Record, size int, network string) {
	bits := cl.callBits()
	r.Tally = Check(len(bits), size, recs)
	for _, seq := range r.MissingSeqs {
		switch b := bits[seq]; {
		case b&callAccepted == 0:
			r.Refused++
		case b&callHeld != 0:
			r.HeldLost++
		default:
			r.KernelLost++
		}
	}
	// Every connection that died can have taken what its kernel buffers
	// held with it: the first one, and each one made after a loss.
	r.KernelBound = (1 + int(r.Stats.Reconnects)) * framesIn(KernelBytes(network), size)
	r.Conns = countConns(recs)
	for _, f := range cl.Faults() {
		d, _ := f.Detected()
		r.Detect = append(r.Detect, d)
	}
	r.LogErrs, r.LogErr = cl.Errors()
	if r.Missing > 0 {
		r.note("missing %s", shortRanges(r.MissingSeqs))
	}
	if r.HeldLost > 0 {
		r.note("%d missing frames had been held by the client", r.HeldLost)
	}
	if r.LogErrs > 0 {
		r.note("%d Log errors, first: %v", r.LogErrs, r.LogErr)
	}
	if r.FlushErr != nil {
		r.note("Flush: %v", r.FlushErr)
	}
	if r.CloseErr != nil {
		r.note("Close: %v", r.CloseErr)
	}
	if r.Corrupt > 0 || r.Foreign > 0 {
		r.note("%d corrupt, %d foreign records", r.Corrupt, r.Foreign)
	}
}

func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Line is the result in one line, for logs.
func (r *Result) Line() string {
	s := fmt.Sprintf("%s %s/%s peek=%s: sent %d received %d missing %d dup %d ooo %d",
		r.Client, r.Scenario, r.Network, r.Peek, r.Sent, r.Received, r.Missing, r.Duplicated, r.OutOfOrder)
	if r.Client == "logsock" {
		s += fmt.Sprintf(" (missing: kernel %d of at most %d, held %d, refused %d) reconnects %d resent %d dropped %d detect %s",
			r.KernelLost, r.KernelBound, r.HeldLost, r.Refused, r.Stats.Reconnects, r.Stats.Resent, r.Stats.Dropped, r.DetectString())
	}
	s += fmt.Sprintf(" conns %d in %v", r.Conns, r.Elapsed.Round(time.Millisecond))
	if len(r.Notes) > 0 {
		s += "; " + strings.Join(r.Notes, "; ")
	}
	return s
}

func countConns(recs []Record) int {
	type key struct {
		start int
		conn  uint64
	}
	seen := make(map[key]bool)
	for _, r := range recs {
		seen[key{r.Start, r.Conn}] = true
	}
	return len(seen)
}

// shortRanges formats the missing numbers, cut short if there are many
// ranges.
func shortRanges(seqs []int) string {
	s := Ranges(seqs)
	if parts := strings.Split(s, ","); len(parts) > 6 {
		s = strings.Join(parts[:6], ",") + fmt.Sprintf(",... (%d ranges)", len(parts))
	}
	return s
}

// Peeks lists the peek settings in report order.
var Peeks = []bool{true, false}

// errSkipped marks a row the harness could not run here.
var errSkipped = errors.New("skipped")

// IsSkipped reports whether err means that a row was skipped (a missing
// python3, for example).
func IsSkipped(err error) bool { return errors.Is(err, errSkipped) }
