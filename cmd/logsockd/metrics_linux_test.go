//go:build linux

package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestLogsockdHealthFullDisk: while the output's file system is full,
// /healthz answers 503, saying that the output waits for space, and
// /metrics says so (logsockd_output_waiting 1, logsockd_output_up 0); once
// space is back and the output writes again, 200 and the reverse.
func TestLogsockdHealthFullDisk(t *testing.T) {
	t.Parallel()
	python := promPython(t)
	dir, filler := fullDisk(t, 4<<10)
	out := filepath.Join(dir, "out.jsonl")
	p, addrs := startDaemon(t, "-json", "-listen", "tcp://127.0.0.1:0", "-o", out, "-metrics", "127.0.0.1:0")
	metrics := regexp.MustCompile(`http://(\S+)/metrics`).FindStringSubmatch(p.waitLine(t, "logsockd: metrics on "))[1]
	health := func() (int, string) {
		code, _, body := httpGet(t, "http://"+metrics+"/healthz")
		return code, body
	}
	state := func() (waiting, up float64) {
		_, values := scrape(t, python, metrics)
		return values["logsockd_output_waiting"], values[`logsockd_output_up{output="`+out+`"}`]
	}
	if code, body := health(); code != http.StatusOK {
		t.Fatalf("/healthz before: %d %q", code, body)
	}

	ls := dial(t, addrs[0], nil)
	for i := range 100 { // 20 KB of lines, for 4 KiB of space
		if err := ls.Log(fmt.Sprintf("record %d %s%s", i, pad, pad)); err != nil {
			t.Fatal(err)
		}
	}
	p.waitLine(t, "waiting for space")
	want := "output " + out + ": the disk is full: waiting for space\nlistener " + addrs[0] + ": up\n"
	if code, body := health(); code != http.StatusServiceUnavailable || body != want {
		t.Errorf("/healthz while the disk is full: %d %q, want 503 %q", code, body, want)
	}
	if waiting, up := state(); waiting != 1 || up != 0 {
		t.Errorf("while the disk is full: logsockd_output_waiting %v, logsockd_output_up %v", waiting, up)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p.waitLine(t, "writing again, after ")
	waitFor(t, p, "/healthz 200 once there is space", func() bool {
		code, _ := health()
		return code == http.StatusOK
	})
	if waiting, up := state(); waiting != 0 || up != 1 {
		t.Errorf("once there is space: logsockd_output_waiting %v, logsockd_output_up %v", waiting, up)
	}
	p.sigterm(t, 0)
}
