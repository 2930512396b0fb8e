package logsocktest

import (
	"encoding/binary"

	"github.com/logsock/logsock"
)

// The v1 wire, written here apart from the library's encoder, so that the
// raw clients of the tests check the library's reading against the format
// itself.

// HeaderLen is the size of the handshake and of a frame header.
const HeaderLen = 4

// AppendHandshake appends the handshake for pid to dst.
func AppendHandshake(dst []byte, order logsock.ByteOrder, pid int32) []byte {
	return orderOf(order).AppendUint32(dst, uint32(pid))
}

// AppendFrame appends msg to dst as one frame: its length, then its bytes.
func AppendFrame(dst []byte, order logsock.ByteOrder, msg []byte) []byte {
	return append(orderOf(order).AppendUint32(dst, uint32(len(msg))), msg...)
}

func orderOf(o logsock.ByteOrder) binary.AppendByteOrder {
	if o == logsock.BigEndian {
		return binary.BigEndian
	}
	return binary.LittleEndian
}
