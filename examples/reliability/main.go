//go:build unix

// Command reliability is the fault report of logsock's client: it breaks
// real collector processes (cmd/logsockd, built once) under a
// client in this process, counts what arrives with sequence numbers (the
// method of rsyslog's chkseq), and prints one table.
//
//	go run ./examples/reliability                        # everything: a few minutes
//	go run ./examples/reliability -outage 5s -run sigkill,memory -net tcp
//
// Run it from inside the module: it builds ./cmd/logsockd and runs
// testdata/fault_article_reconnect_client.py with python3 (that row is
// skipped without python3).
//
// Scenarios (-run takes a comma-separated list; "all" is the default):
// graceful-idle, graceful-busy, sigkill, sigstop, down-at-start,
// restart-10, peers (the article's reconnecting Python client and Go's
// log/syslog in graceful-idle) and memory (a client logging through an
// outage of -outage with a bounded buffer). -net and -peek pick networks
// and peek settings; -v prints each row as it is measured, on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/logsock/logsock"
	"github.com/logsock/logsock/internal/faultlab"
	"github.com/logsock/logsock/internal/testenv"
)

const usage = `usage: reliability [flags]

reliability breaks real collector processes (cmd/logsockd) under a logsock
client, counts what arrives, and prints one table. Run it from inside the
module: it builds ./cmd/logsockd.

example:
  reliability -outage 5s -run sigkill,memory -net tcp

flags:
`

func main() {
	outage := flag.Duration("outage", 30*time.Second, "memory: how long the collector is down")
	bufferBytes := flag.Int("buffer", 1<<20, "memory: the client's BufferBytes")
	run := flag.String("run", "all", "comma-separated scenarios: "+strings.Join(faultlab.Scenarios, ",")+",peers,memory")
	nets := flag.String("net", "tcp,unix", "comma-separated networks")
	peeks := flag.String("peek", "on,off", "comma-separated peek settings")
	pauseFor := flag.Duration("stop", 3*time.Second, "sigstop: how long the collector stays stopped")
	peekInterval := flag.Duration("peek-interval", 0, "the client's PeekInterval when the peek is on (0: the library's default)")
	userTimeout := flag.Duration("user-timeout", 0, "sigstop: the client's UserTimeout (0: the library's default, 20s; 1s shows what a short one loses)")
	verbose := flag.Bool("v", false, "print each row on stderr as it is measured")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("reliability: ")
	if flag.NArg() > 0 {
		log.Printf("unexpected argument %q: reliability takes flags only", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}

	want := func(name string) bool {
		return *run == "all" || slices.Contains(strings.Split(*run, ","), name)
	}
	for _, name := range strings.Split(*run, ",") {
		if name != "all" && name != "peers" && name != "memory" && !slices.Contains(faultlab.Scenarios, name) {
			log.Fatalf("-run: unknown scenario %q", name)
		}
	}
	networks := strings.Split(*nets, ",")
	for _, n := range networks {
		if n != "tcp" && n != "unix" {
			log.Fatalf("-net: %q: want tcp or unix", n)
		}
	}
	var peekOn []bool
	for _, s := range strings.Split(*peeks, ",") {
		switch s {
		case "on":
			peekOn = append(peekOn, true)
		case "off":
			peekOn = append(peekOn, false)
		default:
			log.Fatalf("-peek: %q: want on or off", s)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	env, cleanup, err := setup(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cleanup()
	if *verbose {
		env.Logf = log.Printf
	}
	p := faultlab.Params{PauseFor: *pauseFor, PeekInterval: *peekInterval, UserTimeout: *userTimeout}

	began := time.Now()
	var rows []*faultlab.Result
	var failed []string
	fail := func(err error) {
		if faultlab.IsSkipped(err) {
			failed = append(failed, "skipped: "+err.Error())
			return
		}
		failed = append(failed, err.Error())
		log.Print(err)
	}
	// The memory run goes first, while this process is fresh, so that
	// its RSS figures are its own.
	var mem *faultlab.MemResult
	if want("memory") && ctx.Err() == nil {
		mem, err = faultlab.RunMemory(ctx, env, faultlab.MemParams{
			Network: networks[0], Outage: *outage, BufferBytes: *bufferBytes, Overflow: logsock.DropOldest})
		if err != nil {
			fail(err)
		}
	}

	for _, name := range faultlab.Scenarios {
		if !want(name) {
			continue
		}
		for _, network := range networks {
			for _, peek := range peekOn {
				if ctx.Err() != nil {
					break
				}
				r, err := faultlab.Run(ctx, env, name, network, peek, p)
				if err != nil {
					fail(err)
					continue
				}
				rows = append(rows, r)
			}
		}
	}
	if want("peers") {
		for _, peer := range faultlab.Peers {
			for _, network := range networks {
				if ctx.Err() != nil || !slices.Contains(faultlab.PeerNetworks[peer], network) {
					continue
				}
				r, err := faultlab.RunPeer(ctx, env, peer, network, p)
				if err != nil {
					fail(err)
					continue
				}
				rows = append(rows, r)
			}
		}
	}
	report(os.Stdout, p, rows, mem, time.Since(began))
	for _, f := range failed {
		fmt.Println("not run:", f)
	}
	if ctx.Err() != nil {
		cleanup() // log.Fatal skips the deferred call
		log.Fatal("interrupted")
	}
}

// setup builds the collector and finds python3.
func setup(ctx context.Context) (*faultlab.Env, func(), error) {
	root, err := testenv.ModuleRoot(ctx)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "reliability")
	if err != nil {
		return nil, nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if err := testenv.Build(ctx, root, dir, "cmd/logsockd"); err != nil {
		cleanup()
		return nil, nil, err
	}
	env := &faultlab.Env{Collector: filepath.Join(dir, "logsockd"), Root: root}
	if py, err := testenv.PythonExe(); err == nil {
		env.Python = py
	}
	return env, cleanup, nil
}

func report(w *os.File, p faultlab.Params, rows []*faultlab.Result, mem *faultlab.MemResult, took time.Duration) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "logsock reliability report: %s %s/%s, %d CPUs, host %s, %s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), host, time.Now().Format(time.DateTime))
	cfg := p.Config(faultlab.GracefulBusy, true)
	stop := p.Config(faultlab.Pause, true)
	peek := "default (10ms)"
	if cfg.PeekInterval != 0 {
		peek = cfg.PeekInterval.String()
	}
	userTimeout := "default"
	if stop.UserTimeout != 0 {
		userTimeout = stop.UserTimeout.String()
	}
	fmt.Fprintf(w, "client: library defaults except BufferBytes %d; peek on = PeekInterval %s, off = -1; sigstop: WriteTimeout %v, UserTimeout %s\n",
		cfg.BufferBytes, peek, stop.WriteTimeout, userTimeout)
	d := p.WithDefaults()
	fmt.Fprintf(w, "load: %d-byte messages, %d every %v (sigstop: %d x %d bytes); %v of load before and after a fault; graceful = SIGTERM (the collector drains); elapsed %v\n\n",
		d.Size, d.Batch, d.Interval, d.PauseBatch, d.PauseSize, d.Busy, took.Round(time.Second))

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tclient\tnet\tpeek\tsent\treceived\tmissing\tdup\treconnects\tresent\tdropped\tdetect\t")
	for _, r := range rows {
		reconnects, resent, dropped := fmt.Sprint(r.Stats.Reconnects), fmt.Sprint(r.Stats.Resent), fmt.Sprint(r.Stats.Dropped)
		if r.Client != "logsock" {
			reconnects, resent, dropped = fmt.Sprintf("(%d conns)", r.Conns), "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t\n",
			r.Scenario, r.Client, r.Network, r.Peek, r.Sent, r.Received, r.Missing, r.Duplicated,
			reconnects, resent, dropped, r.DetectString())
	}
	tw.Flush()

	var notes []string
	for _, r := range rows {
		extra := r.Notes
		if r.Client == "logsock" && r.Missing > 0 {
			extra = append([]string{fmt.Sprintf("missing: %d written at once to a connection that then died (its kernel buffers hold at most %d frames), %d held after their call and written later, %d refused by Log",
				r.KernelLost, r.KernelBound, r.HeldLost, r.Refused)}, extra...)
		}
		if r.OutOfOrder > 0 {
			extra = append(extra, fmt.Sprintf("%d out of order", r.OutOfOrder))
		}
		if len(extra) > 0 {
			notes = append(notes, fmt.Sprintf("  %s %s/%s peek %s: %s", r.Client, r.Scenario, r.Network, r.Peek, strings.Join(extra, "; ")))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w, "\nnotes:")
		for _, n := range notes {
			fmt.Fprintln(w, n)
		}
	}

	if mem != nil {
		fmt.Fprintf(w, "\nmemory: %v outage (%s, collector stopped gracefully), %d-byte messages every %v, BufferBytes %d, Overflow DropOldest\n",
			mem.Outage, mem.Network, mem.Size, mem.Interval, mem.BufferBytes)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "bound\tpeak held\tpeak frames\tlive heap growth\tRSS growth\tRSS peak\tsent\treceived\tmissing\tdropped\t")
		fmt.Fprintf(tw, "%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\n", mem.BufferBytes, mem.PeakHeldBytes, mem.PeakHeld,
			mem.HeapGrowth(), mem.RSSGrowth(), mem.RSSPeak, mem.Sent, mem.Received, mem.Missing, mem.Stats.Dropped)
		tw.Flush()
		if mem.FlushErr != nil || mem.CloseErr != nil {
			fmt.Fprintf(w, "  Flush: %v; Close: %v\n", mem.FlushErr, mem.CloseErr)
		}
	}

	fmt.Fprint(w, `
legend: sent = Log calls; missing = sequence numbers never received; dup = received more than once;
reconnects, resent, dropped = the client's Stats; detect = time from the fault to the first sign of it
in the client's Stats (a reconnect, an error, a held, dropped or re-sent frame): for graceful-idle that is
the idle pause, as the client notices at its next Log; for down-at-start it is the time from the collector
coming up to the client's first connection; for restart-10 the median and maximum of the restarts.
A peer's "reconnects" column shows the connections its server saw.
`)
}
