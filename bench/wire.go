package main

import "encoding/binary"

// The raw baselines write the v1 wire themselves, little-endian, as a
// program without the library would.

// headerLen is the size of the handshake and of a frame header.
const headerLen = 4

// appendHandshake appends the handshake for pid to dst.
func appendHandshake(dst []byte, pid int32) []byte {
	return binary.LittleEndian.AppendUint32(dst, uint32(pid))
}

// appendFrame appends msg to dst as one frame: its length, then its bytes.
func appendFrame(dst, msg []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(dst, uint32(len(msg))), msg...)
}
