package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestAcksSmoke runs the acks section on a few messages, over a Unix
// socket from 1 goroutine, in both modes: each variant must deliver every
// record to logsockd's file, the acked one with every frame acknowledged
// (measureAcks checks both), and the table must show the ratio.
func TestAcksSmoke(t *testing.T) {
	dir, err := os.MkdirTemp(shortTempRoot(), "ack")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	opt := options{n: 2000, daemonN: 5000, runs: 1, tempDir: dir, only: regexp.MustCompile(`^acks .* unix/1g`)}
	res := runAcks(opt)
	if res == nil || len(res.cases) != 2 {
		t.Fatalf("runAcks chose %v, want direct and batching over unix/1g", res)
	}
	for _, k := range res.cases {
		for _, acks := range []bool{false, true} {
			m := res.measures[ackKey{k, acks}]
			if m.err != nil || len(m.rates) != 1 || m.rates[0] <= 0 {
				t.Errorf("%s: rates %v, error %v", k.name(acks), m.rates, m.err)
			}
		}
	}
	var out bytes.Buffer
	printAcks(&out, res)
	for _, k := range res.cases {
		if !regexp.MustCompile(`(?m)^` + k.mode + ` +unix +1 .* \d+\.\d\dx `).Match(out.Bytes()) {
			t.Errorf("no ratio for %s/%s/%dg in the table:\n%s", k.mode, k.network, k.goroutines, out.String())
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Log("\n" + strings.TrimSpace(out.String()))
	}
}
