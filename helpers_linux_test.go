package logsock_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// memFigures collects garbage, twice as the benchmark does (the first
// moves what sync.Pools hold to their victim caches), and measures.
func memFigures() figures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f := figures{heap: ms.HeapAlloc + ms.StackInuse, heapOnly: ms.HeapAlloc, stacks: ms.StackInuse,
		goroutines: runtime.NumGoroutine()}
	if statm, err := os.ReadFile("/proc/self/statm"); err == nil {
		var size, resident uint64
		fmt.Sscan(string(statm), &size, &resident)
		f.rss = resident * uint64(os.Getpagesize())
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		f.fds = len(ents)
	}
	return f
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
