//go:build unix

package logsock

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapBuf maps n bytes of anonymous memory: the pages cost nothing until
// bytes reach them, and unmapBuf gives them back to the system at once.
func mapBuf(n int) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("logsock: mapping a read buffer of %d bytes: %w", n, err)
	}
	return unsafe.Slice((*byte)(p), n), nil
}

// unmapBuf unmaps a buffer that mapBuf returned (b[:cap(b)]).
func unmapBuf(b []byte) {
	unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(cap(b)))
}
