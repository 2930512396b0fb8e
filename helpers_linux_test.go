package logsock_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// queueWait returns how long the threads of this process have waited,
// runnable, for a CPU (the second field of each thread's schedstat): what
// a busy machine's run queue has added to the process's own time. The
// wait of a thread that has exited is no longer counted; a kernel without
// schedstat (CONFIG_SCHED_INFO) reports none.
func queueWait(t testing.TB) time.Duration {
	t.Helper()
	files, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil {
		t.Fatal(err)
	}
	var wait time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the thread has exited
		}
		fields := strings.Fields(string(b))
		if len(fields) != 3 {
			t.Fatalf("%s: %q", f, b)
		}
		ns, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", f, b)
		}
		wait += time.Duration(ns)
	}
	return wait
}
