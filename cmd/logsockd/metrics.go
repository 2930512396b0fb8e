//go:build unix

package main

// -metrics: the counters that SIGUSR1 prints, in the Prometheus text
// exposition format (version 0.0.4) at /metrics, and /healthz. The format
// is a few lines of text a metric, written here by hand: the client
// library would bring a dozen modules to a program that needs none.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/logsock/logsock"
)

// metricsContentType is the text exposition format's.
const metricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// reasons are the Reasons that /metrics always lists, with 0 until one
// happens, so that a rate over them is defined from the start. Any other
// that ServerStats.Ends holds is listed too.
var reasons = []logsock.Reason{logsock.ReasonEOF, logsock.ReasonShutdown, logsock.ReasonTruncated,
	logsock.ReasonBadLength, logsock.ReasonFrameTooLarge, logsock.ReasonHandshakeTimeout,
	logsock.ReasonIdleTimeout, logsock.ReasonConnLimit, logsock.ReasonPidMismatch, logsock.ReasonIOError}

// listenerState is a listener that the daemon serves, for /healthz and
// logsockd_listener_up.
type listenerState struct {
	addr string      // as logsockd prints it: tcp://127.0.0.1:39999, unix:///path
	up   atomic.Bool // its Serve runs
}

// metricsServer is the HTTP server of -metrics.
type metricsServer struct {
	srv  *http.Server
	done chan struct{} // closed when Serve returns
}

// startMetrics listens on addr (host:port) and serves /metrics and
// /healthz for d.
func (d *daemon) startMetrics(addr string) (*metricsServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", d.serveMetrics)
	mux.HandleFunc("GET /healthz", d.serveHealth)
	m := &metricsServer{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 8 << 10,
			ErrorLog: log.Default()},
		done: make(chan struct{}),
	}
	log.Printf("metrics on http://%s/metrics, health on /healthz", l.Addr())
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			log.Printf("-metrics: %v", err) // the records flow on without it
		}
	}()
	return m, nil
}

// Close stops the server, letting a scrape in progress finish for up to
// a second.
func (m *metricsServer) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if m.srv.Shutdown(ctx) != nil {
		m.srv.Close()
	}
	<-m.done
}

// serveHealth answers 200 while the output writes and every listener
// accepts, and 503 otherwise (and while logsockd stops), with one line
// for each check.
func (d *daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	ok := true
	if d.stopping.Load() {
		ok = false
		b.WriteString("stopping\n")
	}
	if d.out != nil {
		switch st := d.out.Stats(); {
		case st.Failed:
			ok = false
			fmt.Fprintf(&b, "%v\n", d.out.writeErr()) // it names the output
		case st.Waiting:
			ok = false
			fmt.Fprintf(&b, "output %s: the disk is full: waiting for space\n", d.out.name)
		default:
			fmt.Fprintf(&b, "output %s: ok\n", d.out.name)
		}
	}
	for _, l := range d.listeners {
		state := "up"
		if !l.up.Load() {
			ok = false
			state = "down"
		}
		fmt.Fprintf(&b, "listener %s: %s\n", l.addr, state)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if !ok {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	w.Write([]byte(b.String()))
}

// serveMetrics writes every counter of SIGUSR1, and the states.
func (d *daemon) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var e expo
	e.gauge("logsockd_run_info", "This run of logsockd: run is the id in each of its records.", 1, "run", d.run)
	e.gauge("logsockd_start_time_seconds", "When this run started, in seconds since the Unix epoch.",
		float64(d.start.UnixNano())/1e9)
	e.head("logsockd_listener_up", "gauge", "1 while the listener accepts connections, 0 once it has stopped.")
	for _, l := range d.listeners {
		e.sample("logsockd_listener_up", bit(l.up.Load()), "listener", l.addr)
	}

	st := d.srv.Stats()
	e.counter("logsockd_connections_accepted_total", "Connections accepted, those refused at -max-conns-per-peer included.", st.Accepted)
	e.gauge("logsockd_connections_active", "Connections open now.", float64(st.Active))
	e.head("logsockd_connections_closed_total", "counter", "Connections ended, by reason.")
	rs := slices.Clone(reasons)
	for r := range st.Ends {
		if !slices.Contains(rs, r) {
			rs = append(rs, r)
		}
	}
	slices.Sort(rs)
	for _, r := range rs {
		e.sample("logsockd_connections_closed_total", float64(st.Ends[r]), "reason", r.String())
	}
	e.counter("logsockd_frames_total", "Frames received and handed to the output and the forwarder.", st.Frames)
	e.counter("logsockd_frame_bytes_total", "Message bytes of those frames.", st.Bytes)
	e.counter("logsockd_invalid_utf8_frames_total", "Frames whose message is not UTF-8.", st.InvalidUTF8)
	e.counter("logsockd_mixed_writers_frames_total", "Frames written on a shared connection by a process other than the one before.", st.MixedWriters)
	e.counter("logsockd_pid_mismatch_connections_total", "Unix connections whose handshake pid is not the connecting process's.", st.PidMismatch)
	e.counter("logsockd_frames_cut_total", "Frames lost because logsockd ended their connection as they arrived (at the stop's deadline).", st.Cut)
	e.counter("logsockd_duplicate_frames_total", "v2 frames dropped as already written (sent again after a lost acknowledgement or a crash), and acknowledged again.", st.Duplicates)
	e.gauge("logsockd_sessions", "v2 sessions known now, with their last record.", float64(st.Sessions))
	e.gauge("logsockd_read_buffer_bytes", "Bytes of read buffers in use, of -max-memory.", float64(st.Memory))
	e.gauge("logsockd_connections_paused", "Connections not read until memory frees (-max-memory).", float64(st.Paused))

	if d.out != nil {
		o := d.out.Stats()
		e.gauge("logsockd_output_up", "1 while the output writes; 0 while it waits for space or after it failed.",
			bit(!o.Waiting && !o.Failed), "output", d.out.name)
		e.gauge("logsockd_output_waiting", "1 while the disk is full and the records wait for space.", bit(o.Waiting))
		e.gauge("logsockd_output_failed", "1 once a write has failed: the records are dropped from then on.", bit(o.Failed))
		e.counter("logsockd_output_records_total", "Records written to the output.", o.Records)
		e.counter("logsockd_output_bytes_total", "Bytes written to the output.", o.Bytes)
		e.counter("logsockd_output_dropped_records_total", "Records not written: the output had failed or the write did.", o.Dropped)
		e.counter("logsockd_output_reopens_total", "Reopens of the output file that succeeded: SIGHUP, or the file deleted or renamed.", o.Reopens)
		e.counter("logsockd_output_waits_total", "Times the disk was full and the output waited for space.", o.Waits)
		e.counter("logsockd_output_torn_lines_total", "Torn last lines set aside when the file was opened.", o.Torn)
	}
	if d.fwd != nil {
		f := d.fwd.w.Stats()
		e.counter("logsockd_forward_frames_total", "Records written to the syslog server's connection.", f.Frames)
		e.counter("logsockd_forward_bytes_total", "Bytes of those records, the octet counts not included.", f.Bytes)
		e.gauge("logsockd_forward_held_frames", "Records held for the syslog server now.", float64(f.Held))
		e.gauge("logsockd_forward_held_bytes", "Bytes held for the syslog server now, of -forward-buffer.", float64(f.HeldBytes))
		e.gauge("logsockd_forward_buffer_bytes", "The forwarder's buffer, -forward-buffer.", float64(d.cfg.fwd.buffer))
		e.counter("logsockd_forward_dropped_frames_total", "Records dropped, the oldest first, while the buffer was full.", f.Dropped)
		e.counter("logsockd_forward_connects_total", "Connections made to the syslog server.", f.Connects)
		e.counter("logsockd_forward_reconnects_total", "Connections made to the syslog server after one was lost.", f.Reconnects)
		e.counter("logsockd_forward_errors_total", "Records that the forwarder refused (too large, or after its close).", f.Errors)
		e.head("logsockd_forward_outage_seconds_total", "counter", "Time spent without a connection to the syslog server after one failed: it grows while the server is away.")
		e.sample("logsockd_forward_outage_seconds_total", f.Outage.Seconds())
	}
	w.Header().Set("Content-Type", metricsContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.Write(e.b)
}

// bit is 1 for true, 0 for false.
func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// expo writes the text exposition format: for each metric family a HELP
// and a TYPE line, then its samples, one a line.
type expo struct{ b []byte }

// head writes a family's HELP and TYPE lines.
func (e *expo) head(name, typ, help string) {
	e.b = append(e.b, "# HELP "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	// A HELP text escapes only backslash and newline.
	e.b = escapeInto(e.b, help, false)
	e.b = append(e.b, "\n# TYPE "...)
	e.b = append(e.b, name...)
	e.b = append(e.b, ' ')
	e.b = append(e.b, typ...)
	e.b = append(e.b, '\n')
}

// sample writes one sample; labels are names and values in turn.
func (e *expo) sample(name string, v float64, labels ...string) {
	e.b = append(e.b, name...)
	if len(labels) > 0 {
		e.b = append(e.b, '{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				e.b = append(e.b, ',')
			}
			e.b = append(e.b, labels[i]...)
			e.b = append(e.b, '=', '"')
			e.b = escapeInto(e.b, labels[i+1], true)
			e.b = append(e.b, '"')
		}
		e.b = append(e.b, '}')
	}
	e.b = append(e.b, ' ')
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		e.b = strconv.AppendInt(e.b, int64(v), 10) // a count, as a person reads it
	} else {
		e.b = strconv.AppendFloat(e.b, v, 'g', -1, 64)
	}
	e.b = append(e.b, '\n')
}

func (e *expo) counter(name, help string, v uint64) {
	e.head(name, "counter", help)
	e.sample(name, float64(v))
}

func (e *expo) gauge(name, help string, v float64, labels ...string) {
	e.head(name, "gauge", help)
	e.sample(name, v, labels...)
}

// escapeInto appends s with backslash and newline escaped, and in a label
// value the double quote too.
func escapeInto(dst []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			dst = append(dst, '\\', '\\')
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '"' && quote:
			dst = append(dst, '\\', '"')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
