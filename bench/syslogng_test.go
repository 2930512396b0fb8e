package main

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyslogNGReceiver starts syslog-ng as the bench does, sends it a few
// records with the bench's syslog client, and checks that they reach the
// file as the JSON lines that rsyslogd's measure writes: the message's
// time, host, pid and msg, byte for byte. The bench itself only counts
// lines.
func TestSyslogNGReceiver(t *testing.T) {
	requireSyslogNG(t)
	dir, err := os.MkdirTemp(shortTempRoot(), "sng")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	addr, out, stop, err := startSyslogNG(ctx, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stop() })

	// JSON's escapes and a multi-byte character, as a record may hold them.
	const n = 3
	msg := `a "quoted" back\slash, tab	and é`
	var sendErr error // set before sent is closed
	sent := make(chan struct{})
	go func() {
		sendErr = sendSyslog(addr, n, msg)
		close(sent)
	}()
	if _, err := waitLines(ctx, out, n, sent, func() error { return sendErr }); err != nil {
		t.Fatal(err)
	}
	<-sent
	if sendErr != nil {
		t.Fatal(sendErr)
	}
	if err := stop(); err != nil {
		t.Fatal(err) // it had exited
	}

	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), n, data)
	}
	// sendSyslog's header: "<14>1 2026-11-29T15:04:05.123456Z bench logsock PID - -".
	wantTime := time.Date(2026, 11, 29, 15, 4, 5, 123456000, time.UTC)
	for i, line := range lines {
		var rec map[string]string
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		keys := slices.Sorted(maps.Keys(rec))
		if want := []string{"host", "msg", "pid", "time"}; !slices.Equal(keys, want) {
			t.Errorf("line %d %q: keys %q, want %q (rsyslogtest.JSON's)", i+1, line, keys, want)
		}
		// syslog-ng writes the time in its own zone: the instant must hold,
		// to the microsecond (frac-digits).
		if tm, err := time.Parse(time.RFC3339Nano, rec["time"]); err != nil || !tm.Equal(wantTime) {
			t.Errorf("line %d: time %q, want %s (%v)", i+1, rec["time"], wantTime.Format(time.RFC3339Nano), err)
		}
		// host as sent (keep-hostname), not the peer's address.
		if rec["host"] != "bench" || rec["pid"] != strconv.Itoa(os.Getpid()) || rec["msg"] != msg {
			t.Errorf("line %d: host %q, pid %q, msg %q; want %q, %q, %q", i+1, rec["host"], rec["pid"], rec["msg"], "bench", strconv.Itoa(os.Getpid()), msg)
		}
	}
}

// requireSyslogNG skips the test where there is no syslog-ng; under
// LOGSOCK_REQUIRE_SYSLOG_NG=1 it fails it instead.
func requireSyslogNG(t *testing.T) {
	t.Helper()
	if _, err := lookupSyslogNG(); err != nil {
		if os.Getenv(syslogNGRequireEnv) == "1" {
			t.Fatalf("%v (%s=1)", err, syslogNGRequireEnv)
		}
		t.Skip(err)
	}
}
