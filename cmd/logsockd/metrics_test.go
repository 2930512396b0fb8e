//go:build unix

package main

import (
	"encoding/binary"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// requirePrometheus is the variable under which the tests of /metrics
// fail, rather than skip, without the Prometheus client's parser (.ci/run
// sets it).
const requirePrometheus = "LOGSOCK_REQUIRE_PROMETHEUS"

// promPython returns a python3 that has prometheus_client, Debian's
// python3-prometheus-client: the python3 in PATH, or the system's, which
// Debian's package installs for.
func promPython(t *testing.T) string {
	t.Helper()
	var tried []string
	candidates := []string{"/usr/bin/python3"}
	if exe, err := testenv.PythonExe(); err == nil {
		candidates = append([]string{exe}, candidates...)
	}
	for _, py := range candidates {
		out, err := exec.Command(py, "-c", "import prometheus_client.parser").CombinedOutput()
		if err == nil {
			return py
		}
		tried = append(tried, py+": "+strings.TrimSpace(string(out)))
	}
	if os.Getenv(requirePrometheus) == "1" {
		t.Fatalf("no python3 with prometheus_client: %q", tried)
	}
	t.Skipf("no python3 with prometheus_client: %q", tried)
	return ""
}

// parseExposition is Python's prometheus_client reading the text
// exposition format: it prints each family with its type and samples.
const parseExposition = `
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = []
for f in text_string_to_metric_families(sys.stdin.read()):
    families.append({"name": f.name, "type": f.type, "help": f.documentation,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]})
print(json.dumps(families))
`

// family is a metric family as prometheus_client read it.
type family struct {
	Name, Type, Help string
	Samples          []struct {
		Name   string
		Labels map[string]string
		Value  float64
	}
}

// scrape gets /metrics, checks its Content-Type, and parses it with
// prometheus_client; it returns the families and each sample's value by
// name{label="value",...} (labels sorted).
func scrape(t *testing.T, python, addr string) ([]family, map[string]float64) {
	t.Helper()
	code, ctype, body := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK || ctype != metricsContentType {
		t.Fatalf("/metrics: %d, Content-Type %q", code, ctype)
	}
	cmd := exec.Command(python, "-c", parseExposition)
	cmd.Stdin = strings.NewReader(body)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("prometheus_client: %v: %s\n%s", err, stderr.String(), body)
	}
	var fams []family
	if err := json.Unmarshal(out, &fams); err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, f := range fams {
		for _, s := range f.Samples {
			values[sampleKey(s.Name, s.Labels)] = s.Value
		}
	}
	return fams, values
}

// sampleKey is name{k="v",...}, the labels sorted, unescaped.
func sampleKey(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	var kv []string
	for k, v := range labels {
		kv = append(kv, k+`="`+v+`"`)
	}
	slices.Sort(kv)
	return name + "{" + strings.Join(kv, ",") + "}"
}

// sigusr1Metrics maps each counter that SIGUSR1 prints, by its line's
// prefix and key, to the metric that holds it. A counter that SIGUSR1
// prints and this does not list fails TestLogsockdMetrics.
var sigusr1Metrics = map[string]map[string]string{
	"server": {"accepted": "logsockd_connections_accepted_total", "active": "logsockd_connections_active",
		"frames": "logsockd_frames_total", "bytes": "logsockd_frame_bytes_total",
		"invalid_utf8": "logsockd_invalid_utf8_frames_total", "pid_mismatch": "logsockd_pid_mismatch_connections_total",
		"mixed_writers": "logsockd_mixed_writers_frames_total", "cut": "logsockd_frames_cut_total",
		"duplicates": "logsockd_duplicate_frames_total", "sessions": "logsockd_sessions",
		"memory": "logsockd_read_buffer_bytes", "paused": "logsockd_connections_paused"},
	"output": {"records": "logsockd_output_records_total", "bytes": "logsockd_output_bytes_total",
		"dropped": "logsockd_output_dropped_records_total", "reopens": "logsockd_output_reopens_total",
		"waits": "logsockd_output_waits_total", "torn": "logsockd_output_torn_lines_total",
		"waiting": "logsockd_output_waiting", "failed": "logsockd_output_failed"},
	"forward": {"frames": "logsockd_forward_frames_total", "bytes": "logsockd_forward_bytes_total",
		"held": "logsockd_forward_held_frames", "held_bytes": "logsockd_forward_held_bytes",
		"dropped": "logsockd_forward_dropped_frames_total", "reconnects": "logsockd_forward_reconnects_total",
		"errors": "logsockd_forward_errors_total"},
}

// hasValue reports whether values has the sample name, of value want.
func hasValue(values map[string]float64, name string, want float64) bool {
	got, ok := values[name]
	return ok && got == want
}

// discardRelay is a syslog server that reads and discards; it is closed
// when the test ends.
func discardRelay(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	conns := make(chan net.Conn, 16)
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns <- c
			go io.Copy(io.Discard, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		close(conns)
		for c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// TestLogsockdMetrics: /metrics, read by prometheus_client, has every
// counter that SIGUSR1 prints, with the same value (server, output,
// forwarder); connection ends by reason, every reason listed; each family
// typed, each counter named _total; the run id; the listeners and the
// output up, with a file name that needs escaping read back whole. And
// /healthz answers 200, one line a check.
func TestLogsockdMetrics(t *testing.T) {
	t.Parallel()
	python := promPython(t)
	relay := discardRelay(t)
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	out := filepath.Join(dir, `o"u\t.jsonl`) // escaped in a label
	d, addrs := startDaemon(t, "-json", "-listen", "tcp://127.0.0.1:0", "-listen", "unix://"+sock, "-o", out,
		"-forward", "syslog+tcp://"+relay, "-metrics", "127.0.0.1:0")
	m := regexp.MustCompile(`^logsockd: metrics on http://(\S+)/metrics`).FindStringSubmatch(d.waitLine(t, "logsockd: metrics on "))
	if m == nil {
		t.Fatalf("stderr:\n%s", d.Stderr)
	}
	metrics := m[1]

	for i, msg := range []string{"one", "two", "three"} {
		ls := dial(t, addrs[i%2], nil)
		if err := ls.Log(msg); err != nil {
			t.Fatal(err)
		}
		ls.Close()
	}
	// A connection that breaks the format: a negative length.
	c, err := net.Dial("tcp", strings.TrimPrefix(addrs[0], "tcp://"))
	if err != nil {
		t.Fatal(err)
	}
	c.Write(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 4242), 0xffffffff))
	defer c.Close()
	d.waitMatching(t, " closed after ", 4)
	waitFileLines(t, d, out, 3)
	var values map[string]float64
	waitFor(t, d, "3 records forwarded", func() bool {
		_, values = scrape(t, python, metrics)
		return values["logsockd_forward_frames_total"] == 3 && values["logsockd_forward_held_frames"] == 0
	})

	if err := d.Cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	stats := []string{d.waitLine(t, "logsockd: server: "), d.waitLine(t, "logsockd: output "), d.waitLine(t, "logsockd: forward ")}
	fams, values := scrape(t, python, metrics)
	pair := regexp.MustCompile(`(\w+)=(\d+|true|false)\b`)
	number := func(s string) float64 { // a count, or a state: true is 1
		if s == "true" || s == "false" {
			return bit(s == "true")
		}
		n, _ := strconv.ParseFloat(s, 64)
		return n
	}
	for _, line := range stats {
		kind, rest, _ := strings.Cut(strings.TrimPrefix(line, "logsockd: "), " ")
		kind = strings.TrimSuffix(kind, ":")
		if i := strings.Index(rest, ": "); kind != "server" && i >= 0 {
			rest = rest[i+2:] // after the file name or the address
		}
		counters, ends, _ := strings.Cut(rest, "ends:")
		kvs := pair.FindAllStringSubmatch(counters, -1)
		if len(kvs) < len(sigusr1Metrics[kind]) {
			t.Errorf("SIGUSR1 line %q: %d counters, want %d", line, len(kvs), len(sigusr1Metrics[kind]))
		}
		for _, kv := range kvs {
			name, ok := sigusr1Metrics[kind][kv[1]]
			if !ok {
				t.Errorf("SIGUSR1 prints %s's %s, which no metric holds", kind, kv[1])
				continue
			}
			if want := number(kv[2]); !hasValue(values, name, want) {
				t.Errorf("%s %s=%s, but %s %v", kind, kv[1], kv[2], name, values[name])
			}
		}
		for _, kv := range pair.FindAllStringSubmatch(ends, -1) {
			name := `logsockd_connections_closed_total{reason="` + kv[1] + `"}`
			if want := number(kv[2]); !hasValue(values, name, want) {
				t.Errorf("server ends %s=%s, but %s %v", kv[1], kv[2], name, values[name])
			}
		}
	}

	run := regexp.MustCompile(`run ([0-9a-f]+):`).FindStringSubmatch(d.waitLine(t, "logsockd: run "))
	for name, want := range map[string]float64{
		`logsockd_connections_closed_total{reason="eof"}`:          3,
		`logsockd_connections_closed_total{reason="bad_length"}`:   1,
		`logsockd_connections_closed_total{reason="idle_timeout"}`: 0,
		`logsockd_frames_total`:                                    3,
		`logsockd_run_info{run="` + run[1] + `"}`:                  1,
		`logsockd_listener_up{listener="` + addrs[0] + `"}`:        1,
		`logsockd_listener_up{listener="` + addrs[1] + `"}`:        1,
		`logsockd_output_up{output="` + out + `"}`:                 1,
		`logsockd_forward_buffer_bytes`:                            defaultForwardBuffer,
	} {
		if !hasValue(values, name, want) {
			t.Errorf("%s = %v, want %v", name, values[name], want)
		}
	}
	if start, now := values["logsockd_start_time_seconds"], float64(time.Now().UnixNano())/1e9; start < now-3600 || start > now {
		t.Errorf("logsockd_start_time_seconds %v", start)
	}
	for _, f := range fams {
		if f.Type != "counter" && f.Type != "gauge" || f.Help == "" {
			t.Errorf("family %s: type %q, help %q", f.Name, f.Type, f.Help)
		}
		for _, s := range f.Samples {
			if f.Type == "counter" && s.Name != f.Name+"_total" {
				t.Errorf("counter %s: sample %s", f.Name, s.Name)
			}
		}
	}

	code, _, body := httpGet(t, "http://"+metrics+"/healthz")
	want := "output " + out + ": ok\nlistener " + addrs[0] + ": up\nlistener " + addrs[1] + ": up\n"
	if code != http.StatusOK || body != want {
		t.Errorf("/healthz: %d %q, want 200 %q", code, body, want)
	}
	d.sigterm(t, 0)
}

// TestLogsockdHealthWhileStopping: once SIGTERM has come, /healthz
// answers 503 for as long as logsockd takes to exit (here held by the
// forwarder, which tries for 5 s to deliver to a relay that is away), its
// listeners down.
func TestLogsockdHealthWhileStopping(t *testing.T) {
	t.Parallel()
	away, err := testenv.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	d, addrs := startDaemon(t, "-listen", "tcp://127.0.0.1:0", "-forward", "syslog+tcp://127.0.0.1:"+strconv.Itoa(away),
		"-metrics", "127.0.0.1:0")
	metrics := regexp.MustCompile(`http://(\S+)/metrics`).FindStringSubmatch(d.waitLine(t, "logsockd: metrics on "))[1]
	if code, _, body := httpGet(t, "http://"+metrics+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if err := dial(t, addrs[0], nil).Log("held for the relay"); err != nil {
		t.Fatal(err)
	}
	if err := d.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// 503 from the signal on; the listeners go down as Shutdown closes them.
	want := "stopping\nlistener " + addrs[0] + ": down\n"
	waitFor(t, d, "/healthz 503 "+strconv.Quote(want), func() bool {
		code, _, body := httpGet(t, "http://"+metrics+"/healthz")
		if code == http.StatusOK {
			return false
		}
		if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "stopping\n") {
			t.Fatalf("/healthz: %d %q", code, body)
		}
		return body == want
	})
	if code := d.exitCode(t); code != 0 {
		t.Errorf("exit status %d; stderr:\n%s", code, d.Stderr)
	}
}

// TestHealthOutput: /healthz answers 503 while the output waits for
// space (a write to /dev/full) and once it has failed (the same with
// -on-output-error exit), naming the error, and once a listener is down;
// 200 while all is well.
func TestHealthOutput(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skipf("/dev/full: %v", err)
	}
	for _, tc := range []struct {
		exit bool
		want string
	}{
		{false, "output /dev/full: the disk is full: waiting for space\n"},
		{true, "output /dev/full: write /dev/full: no space left on device\n"},
	} {
		fail := make(chan error, 1)
		cfg := outputConfig{path: "/dev/full", perm: 0o600, delay: time.Millisecond, exitOnError: tc.exit}
		out, err := newOutput(cfg, newTestFormatter(true, false), fail)
		if err != nil {
			t.Fatal(err)
		}
		l := &listenerState{addr: "tcp://127.0.0.1:1"}
		l.up.Store(true)
		d := &daemon{out: out, listeners: []*listenerState{l}}
		health := func() (int, string) {
			w := httptest.NewRecorder()
			d.serveHealth(w, httptest.NewRequest("GET", "/healthz", nil))
			return w.Code, w.Body.String()
		}
		if code, body := health(); code != http.StatusOK || body != "output /dev/full: ok\nlistener tcp://127.0.0.1:1: up\n" {
			t.Errorf("before a write: %d %q", code, body)
		}
		out.record(tcpRecord("into a full disk"))
		var code int
		var body string
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(time.Millisecond) { // the writer's state: no signal
			if code, body = health(); code != http.StatusOK || time.Now().After(deadline) {
				break
			}
		}
		if want := tc.want + "listener tcp://127.0.0.1:1: up\n"; code != http.StatusServiceUnavailable || body != want {
			t.Errorf("exit=%v: %d %q, want 503 %q", tc.exit, code, body, want)
		}
		out.drainBy(time.Now()) // the wait for space ends
		if err := out.Close(); err == nil {
			t.Errorf("exit=%v: Close: nil, want the write's error", tc.exit)
		}
		d.out = nil
		if code, _ := health(); code != http.StatusOK {
			t.Errorf("without the output: %d", code)
		}
		l.up.Store(false)
		if code, body := health(); code != http.StatusServiceUnavailable || body != "listener tcp://127.0.0.1:1: down\n" {
			t.Errorf("listener down: %d %q", code, body)
		}
	}
}

// TestExpoEscapes: a HELP text and label values with a backslash, a
// double quote and a newline read back whole in prometheus_client.
func TestExpoEscapes(t *testing.T) {
	python := promPython(t)
	const odd = "a\\b\"c\nd"
	var e expo
	e.gauge("x_info", "help "+odd, 1, "k", odd, "l", "")
	e.counter("y_total", "plain", 12345678901)
	cmd := exec.Command(python, "-c", parseExposition)
	cmd.Stdin = strings.NewReader(string(e.b))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s\n%s", err, out, e.b)
	}
	var fams []family
	if err := json.Unmarshal(out, &fams); err != nil {
		t.Fatal(err)
	}
	if len(fams) != 2 || fams[0].Help != "help "+odd || len(fams[0].Samples) != 1 ||
		fams[0].Samples[0].Labels["k"] != odd || fams[0].Samples[0].Labels["l"] != "" ||
		fams[1].Type != "counter" || fams[1].Samples[0].Value != 12345678901 {
		t.Errorf("read back %+v from\n%s", fams, e.b)
	}
}

// TestLogsockdMetricsFlag: -metrics takes HOST:PORT (else exit 2), and
// one that cannot be bound stops logsockd at start (exit 1).
func TestLogsockdMetricsFlag(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, tc := range []struct {
		addr string
		code int
		want string
	}{
		{"9539", 2, "-metrics: want HOST:PORT"},
		{taken.Addr().String(), 1, "logsockd: -metrics: listen tcp " + taken.Addr().String() + ": bind: address already in use"},
	} {
		c := startProc(t, nil, testenv.Program(t, "logsockd"), "-listen", "tcp://127.0.0.1:0", "-metrics", tc.addr)
		if code := c.exitCode(t); code != tc.code || !strings.Contains(c.Stderr.String(), tc.want) {
			t.Errorf("-metrics %s: exit %d, stderr:\n%s\nwant exit %d and %q", tc.addr, code, c.Stderr, tc.code, tc.want)
		}
	}
}
