//go:build unix

package faultlab

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// readAhead is what the collector's Decoder may have read from a
// connection and not yet handed over: its largest buffer (decoder.go).
const readAhead = 64 << 10

// frameHeader is the size of a v1 frame's header: its length.
const frameHeader = 4

// KernelBytes bounds what one connection can hold between a client's
// write and the collector's handler, on Linux: the client's send buffer,
// the collector's receive buffer (both at their autotuning maxima for
// TCP; a Unix stream socket has only the sender's buffer, which the
// kernel makes up to twice wmem_max, as batching mode asks), and the
// collector's read-ahead. A frame that the client wrote whole is lost
// when the collector dies only if it was there. Elsewhere it returns a
// generous 16 MiB.
func KernelBytes(network string) int {
	switch network {
	case "tcp":
		w, okw := sysctlField("/proc/sys/net/ipv4/tcp_wmem", 2)
		r, okr := sysctlField("/proc/sys/net/ipv4/tcp_rmem", 2)
		if okw && okr {
			return w + r + readAhead
		}
	case "unix":
		if w, ok := sysctlField("/proc/sys/net/core/wmem_max", 0); ok {
			return 2*w + readAhead
		}
	}
	return 16 << 20
}

// framesIn returns how many frames of size-byte messages fit in n bytes,
// rounded up (a frame can be partly in).
func framesIn(n, size int) int {
	per := frameHeader + size
	return (n + per - 1) / per
}

func sysctlField(path string, i int) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(b))
	if i >= len(f) {
		return 0, false
	}
	n, err := strconv.Atoi(f[i])
	return n, err == nil
}

// RSS returns the resident set size of this process in bytes (VmRSS of
// /proc/self/status), or false where there is no such file.
func RSS() (int64, bool) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err == nil
	}
	return 0, false
}
