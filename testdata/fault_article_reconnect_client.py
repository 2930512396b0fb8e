"""The article's reconnecting Python log client, for the fault tests.

This is the article's second LogSocket (sysnet.pe.kr, "파이썬 - fork 시 기존
클라이언트 소켓 및 스레드의 동작"), kept as the article wrote it: log()
sends the length and the text in two send() calls, and when a send raises,
it calls reconnect() (a new socket, connect, the pid handshake) and goes
on: the message whose send failed is lost, and nothing waits or retries.
The fault tests measure what it loses when the collector restarts while it
is idle.

Usage:

    python3 fault_article_reconnect_client.py HOST PORT
    python3 fault_article_reconnect_client.py --unix PATH

It connects at once, then logs each line of standard input (without its
newline) as one message, and prints "ok N" after the N-th log() call
returns, so that the harness knows where it is. At the end of its input it
closes the socket and exits 0; an exception that log() does not catch (the
reconnect's own connect failing) ends it with status 1.
"""

import os
import socket
import struct
import sys


class LogSocket:
    def __init__(self, port, address=None):
        if address is None:
            address = "127.0.0.1"

        self.address = address
        self.port = port

        self.connect()

    def new_socket(self):
        return socket.socket(socket.AF_INET, socket.SOCK_STREAM)

    def peer(self):
        return (self.address, self.port)

    def connect(self):
        self.sock = self.new_socket()
        self.sock.connect(self.peer())
        pid = os.getpid()
        buf = struct.pack('i', pid)
        self.sock.send(buf)

    def reconnect(self):
        self.sock.close()
        self.connect()

    def log(self, text):
        try:
            buf = struct.pack('i', len(text))
            self.sock.send(buf)

            self.sock.send(text.encode('utf-8'))
        except:  # noqa: E722 -- the article catches everything
            self.reconnect()

    def close(self):
        self.sock.close()


class UnixLogSocket(LogSocket):
    """The same client on an AF_UNIX stream socket: only the socket family
    and the address differ."""

    def __init__(self, path):
        self.path = path
        self.connect()

    def new_socket(self):
        return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def peer(self):
        return self.path


def usage():
    sys.stderr.write("usage: fault_article_reconnect_client.py HOST PORT | --unix PATH\n")
    sys.exit(2)


def main(argv):
    if len(argv) != 2:
        usage()
    if argv[0] == "--unix":
        log_socket = UnixLogSocket(argv[1])
    else:
        try:
            port = int(argv[1])
        except ValueError:
            usage()
        log_socket = LogSocket(port, argv[0])
    n = 0
    for line in sys.stdin.buffer:
        log_socket.log(line.rstrip(b"\n").decode("utf-8"))
        n += 1
        sys.stdout.write("ok %d\n" % n)
        sys.stdout.flush()
    log_socket.close()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except Exception as e:  # one line, not a traceback: the harness quotes it
        sys.stderr.write("fault_article_reconnect_client: %s: %s\n" % (type(e).__name__, e))
        sys.exit(1)
