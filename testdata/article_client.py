"""The article's Python log client, kept as the article wrote it.

The LogSocket class is the one from the article (sysnet.pe.kr, "파이썬 - fork
시 기존 클라이언트 소켓 및 스레드의 동작"), bugs included, because the
interoperability tests check what a Go collector makes of exactly these
bytes:

  * the handshake and the frame lengths are struct.pack('i', ...): a native
    signed int32 (little-endian on x86-64 and arm64);
  * the length is len(text), a count of code points, not of UTF-8 bytes,
    so any non-ASCII message breaks a byte-counting reader;
  * each frame goes out in two send() calls, and send()'s return value is
    ignored, as in the article.

Usage:

    python3 article_client.py HOST PORT MSG...
    python3 article_client.py --unix PATH MSG...

It logs each MSG in order, then closes. It prints nothing on success and
exits non-zero on error. --unix does the same sends on an AF_UNIX stream
socket (UnixLogSocket overrides only the connect).
"""

import os
import socket
import struct
import sys


class LogSocket:
    def __init__(self, port, address=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)

        if address is None:
            address = "127.0.0.1"

        self.address = address
        self.port = port

        self.sock.connect((self.address, self.port))
        pid = os.getpid()
        buf = struct.pack('i', pid)
        self.sock.send(buf)

    def log(self, text):
        buf = struct.pack('i', len(text))
        self.sock.send(buf)

        self.sock.send(text.encode('utf-8'))

    def close(self):
        self.sock.close()


class UnixLogSocket(LogSocket):
    """The article's LogSocket on a Unix stream socket: same handshake, same
    log() (inherited), only the socket family and address differ."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.path = path

        self.sock.connect(self.path)
        pid = os.getpid()
        buf = struct.pack('i', pid)
        self.sock.send(buf)


def usage():
    sys.stderr.write("usage: article_client.py HOST PORT MSG... | --unix PATH MSG...\n")
    sys.exit(2)


def main(argv):
    if len(argv) < 2:
        usage()
    if argv[0] == "--unix":
        log_socket = UnixLogSocket(argv[1])
    else:
        try:
            port = int(argv[1])
        except ValueError:
            usage()
        log_socket = LogSocket(port, argv[0])
    for arg in argv[2:]:
        # Recover the argument's bytes as given (whatever the locale) and
        # read them as UTF-8, so that len(text) counts the code points.
        log_socket.log(os.fsencode(arg).decode('utf-8'))
    log_socket.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # one line, not a traceback: the tests quote it
        sys.stderr.write("article_client: %s: %s\n" % (type(e).__name__, e))
        sys.exit(1)
