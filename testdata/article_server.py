"""What the article's C# log server reads, written from the wire format alone
(not from the Go code), as a reference decoder for the interoperability tests.

It accepts ONE connection, reads the 4-byte pid, then frames (a signed int32
length in bytes, then that many bytes, decoded as UTF-8) until the client
closes, and prints one JSON line a record: {"pid": N, "msg": "..."}.

Usage:

    python3 article_server.py [--order little|big] [--unix PATH]

The first line of standard output says where it listens: "port N" (TCP on
127.0.0.1, port chosen by the kernel) or "unix PATH". Exit status: 0 when the
stream ends at a frame boundary; 1, with a message on standard error, when it
ends inside the handshake or a frame, or a length is negative.
"""

import argparse
import json
import socket
import struct
import sys

CHUNK = 64 << 10


def fail(msg):
    sys.stderr.write("article_server: %s\n" % msg)
    sys.exit(1)


def read_exact(conn, n):
    """Return n bytes, or fewer if the stream ends first. Reads in chunks, so
    that a large declared length allocates only what arrives."""
    buf = bytearray()
    while len(buf) < n:
        chunk = conn.recv(min(CHUNK, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--order", choices=("little", "big"), default="little")
    ap.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead of 127.0.0.1")
    args = ap.parse_args()
    int32 = "<i" if args.order == "little" else ">i"

    if args.unix:
        ln = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ln.bind(args.unix)
        ln.listen(1)
        print("unix %s" % args.unix, flush=True)
    else:
        ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ln.bind(("127.0.0.1", 0))
        ln.listen(1)
        print("port %d" % ln.getsockname()[1], flush=True)

    conn, _ = ln.accept()
    ln.close()

    hs = read_exact(conn, 4)
    if len(hs) < 4:
        fail("handshake truncated after %d of 4 bytes" % len(hs))
    (pid,) = struct.unpack(int32, hs)

    frames = 0
    while True:
        hdr = read_exact(conn, 4)
        if not hdr:
            break  # clean end at a frame boundary
        if len(hdr) < 4:
            fail("frame %d: header truncated after %d of 4 bytes: %r" % (frames, len(hdr), hdr))
        (length,) = struct.unpack(int32, hdr)
        if length < 0:
            fail("frame %d: negative length %d: %r" % (frames, length, hdr))
        body = read_exact(conn, length)
        if len(body) < length:
            fail("frame %d: body truncated after %d of %d bytes" % (frames, len(body), length))
        # As .NET's Encoding.UTF8.GetString: invalid bytes become U+FFFD.
        msg = body.decode("utf-8", errors="replace")
        print(json.dumps({"pid": pid, "msg": msg}), flush=True)
        frames += 1
    conn.close()


if __name__ == "__main__":
    main()
