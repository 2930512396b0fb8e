package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/logsock/logsock/internal/testenv"
)

// syslog-ng, the receivers' second anchor beside rsyslogd (issue 20): the
// same work, octet-counted RFC 5424 (RFC 6587) from sendSyslog on a
// loopback port, a line of JSON a record in a file. Each measure starts
// one syslog-ng in the foreground with a configuration, persist file, pid
// file and control socket of its own in the measure's directory, and no
// system() or internal() source: it neither takes /dev/log nor clashes
// with a system instance.

const (
	// syslogNGEnv names the syslog-ng to run, as bench/unpack-syslog-ng
	// prints it: Debian's syslog-ng-core and rsyslog conflict, so where
	// rsyslog is installed syslog-ng is an unpacked copy.
	syslogNGEnv = "LOGSOCK_SYSLOG_NG"
	// syslogNGRequireEnv, set to 1 (as .ci/run does), makes the test fail
	// where there is no syslog-ng, instead of skipping.
	syslogNGRequireEnv = "LOGSOCK_REQUIRE_SYSLOG_NG"
)

var errNoSyslogNG = errors.New("syslog-ng not found (Debian: " + syslogNGEnv + "=$(bench/unpack-syslog-ng DIR), as rsyslog and syslog-ng-core conflict)")

// syslogNG is the syslog-ng that the bench runs.
type syslogNG struct {
	path    string
	version string // "3.38.1"
}

// syslogNGSearch is where lookupSyslogNG looks after PATH: Debian installs
// syslog-ng in /usr/sbin, which is not in an ordinary user's PATH.
var syslogNGSearch = []string{"/usr/sbin/syslog-ng", "/sbin/syslog-ng"}

// lookupSyslogNG finds syslog-ng, the one syslogNGEnv names if it is set,
// and its version. It looks once per process.
var lookupSyslogNG = sync.OnceValues(func() (syslogNG, error) {
	path := os.Getenv(syslogNGEnv)
	if path == "" {
		var err error
		if path, err = exec.LookPath("syslog-ng"); err != nil {
			for _, p := range syslogNGSearch {
				if _, err := exec.LookPath(p); err == nil {
					path = p
					break
				}
			}
		}
		if path == "" {
			return syslogNG{}, errNoSyslogNG
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return syslogNG{}, fmt.Errorf("%s --version: %w", path, err)
	}
	// "syslog-ng 3 (3.38.1)"
	first, _, _ := strings.Cut(string(out), "\n")
	_, v, ok := strings.Cut(first, "(")
	v, ok2 := strings.CutSuffix(v, ")")
	if !ok || !ok2 || !strings.HasPrefix(first, "syslog-ng ") || strings.Count(v, ".") < 1 {
		return syslogNG{}, fmt.Errorf("%s --version printed %.80q, not a version", path, out)
	}
	return syslogNG{path: path, version: v}, nil
})

// configVersion returns the @version line's value, major.minor: the
// syntax of the version that runs, so that it warns of no compatibility
// mode.
func (s syslogNG) configVersion() string {
	f := strings.SplitN(s.version, ".", 3)
	return f[0] + "." + f[1]
}

// syslogNGTuning is what the configuration sets beyond the defaults, for a
// busy TCP source into a file, sized by the rules of syslog-ng's
// flow-control documentation: log-iw-size >= max-connections *
// log-fetch-limit, log-fifo-size >= log-iw-size, flush-lines below a
// connection's window (log-iw-size / max-connections: 10,000 here, 100 by
// default). Measured against the defaults (bench/README.md): 1.5x their
// rate, 0.6x their CPU a record.
var syslogNGTuning = struct {
	iwSize     int // log-iw-size: the source's window, shared among max-connections
	maxConns   int // max-connections
	fetchLimit int // log-fetch-limit: messages read a poll
	fifoSize   int // the destination's log-fifo-size
	flushLines int // the destination's flush-lines
}{iwSize: 100000, maxConns: 10, fetchLimit: 10000, fifoSize: 100000, flushLines: 1000}

// syslogNGConfig returns the configuration of a syslog-ng that listens on
// 127.0.0.1:port and writes each message to out as rsyslogtest.JSON does:
// the message's time, host, pid (PROCID) and msg, one JSON object a line.
// flags(flow-control): without it, a full destination queue drops
// messages (counted, never written), where rsyslogd's TCP input waits; the
// bench counts every line.
func syslogNGConfig(v syslogNG, port int, out string) string {
	t := syslogNGTuning
	return fmt.Sprintf(`@version: %s
# bench: one syslog-ng instance of the receivers test; nothing of the system's.
options {
	use-dns(no);        # as rsyslogd's net.enableDNS="off"
	keep-hostname(yes); # HOST as sent, as rsyslogd writes it, not the peer's address
	frac-digits(6);     # the microseconds of the message's time, as rsyslogd's rfc3339
	stats-freq(0);      # no statistics message every 10 minutes
};
# Octet-counted frames (RFC 6587) of RFC 5424 messages. The window,
# log-iw-size, is divided among max-connections.
source s_bench {
	syslog(ip("127.0.0.1") port(%d) transport("tcp")
		max-connections(%d) log-iw-size(%d) log-fetch-limit(%d));
};
destination d_bench {
	file("%s"
		template("$(format-json time=${ISODATE} host=${HOST} pid=${PID} msg=${MSG})\n")
		log-fifo-size(%d) flush-lines(%d));
};
log { source(s_bench); destination(d_bench); flags(flow-control); };
`, v.configVersion(), port, t.maxConns, t.iwSize, t.fetchLimit, out, t.fifoSize, t.flushLines)
}

// startSyslogNG starts syslog-ng with its files in dir, and returns once
// it has started: it writes "syslog-ng starting up" once its sources
// listen (after their "Accepting connections" lines), and exits if one
// cannot.
func startSyslogNG(ctx context.Context, _ *receiverEnv, dir string) (addr, out string, stop func() error, err error) {
	v, err := lookupSyslogNG()
	if err != nil {
		return "", "", nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", "", nil, err
	}
	// The paths go into the configuration inside double quotes.
	if strings.ContainsAny(dir, "\"\\\n") {
		return "", "", nil, fmt.Errorf("directory %q: a quote, backslash or newline would need escaping in syslog-ng's configuration", dir)
	}
	port, err := testenv.FreePort()
	if err != nil {
		return "", "", nil, err
	}
	conf := filepath.Join(dir, "syslog-ng.conf")
	out = filepath.Join(dir, "out.log")
	if err := os.WriteFile(conf, []byte(syslogNGConfig(v, port, out)), 0o600); err != nil {
		return "", "", nil, err
	}
	// -F: foreground; -e: its own messages to stderr, which has the line
	// waited for.
	cmd := exec.Command(v.path, "-F", "-e", "-f", conf,
		"--persist-file", filepath.Join(dir, "syslog-ng.persist"),
		"--pidfile", filepath.Join(dir, "syslog-ng.pid"),
		"--control", filepath.Join(dir, "syslog-ng.ctl"))
	cmd.Dir = dir
	if _, stop, err = startWatched(ctx, cmd, "syslog-ng", "syslog-ng starting up; "); err != nil {
		return "", "", nil, err
	}
	return "127.0.0.1:" + strconv.Itoa(port), out, stop, nil
}
