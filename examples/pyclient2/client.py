#!/usr/bin/env python3
"""A logsock client of protocol v2 (acknowledged delivery), standard library only.

Written from the repository's PROTOCOL.md, "Acknowledged delivery (v2)", as
an example for authors in other languages. The Client class is the protocol;
the command line sends the lines of standard input:

    python3 client.py [-addr ADDR] [-tag TAG] [-order little|big] [-timeout S] [-v] < lines

ADDR is host:port, tcp://host:port or unix:///path (default 127.0.0.1:39999).
Each line is one frame, without its newline, at level 6 (informational); a
line that starts with "<N>", N a digit 0-7 (as systemd reads its services'
output), has level N, and the prefix is dropped. At the end of the input it
waits up to -timeout seconds for the collector to acknowledge every line,
and exits 0 if it did, 1 if not (saying how many were not). -v tells on
standard error when the connection is made, lost or refused.
"""

import collections
import os
import random
import select
import socket
import struct
import sys
import time

MAGIC = b"\xffLS\xff"
INFO = 6


class ProtocolError(Exception):
    """The collector broke the protocol: the connection is dropped, nothing lost."""


class Client:
    """Holds every frame until the collector acknowledges it; not thread-safe.

    log() numbers and queues a frame and sends what it can without waiting;
    pump() does the same, and flush() waits for the acknowledgements. Call one
    of them now and then while idle: acknowledgements are read, and a lost
    connection is made again, only then. Each frame is held, within
    buffer_bytes (beyond, the oldest is dropped, counted), until
    acknowledged; after a reconnect the unacknowledged ones go again, with
    their numbers and times.
    """

    def __init__(self, network, address, tag, order="little", buffer_bytes=4 << 20,
                 handshake_timeout=10.0, on_event=None):
        if not (1 <= len(tag) <= 48 and all(33 <= ord(c) <= 126 for c in tag)):
            raise ValueError("tag %r: want 1-48 printable US-ASCII bytes" % tag)
        self.network, self.address, self.tag = network, address, tag.encode()
        self.o = {"little": "<", "big": ">"}[order]
        self.buffer_bytes, self.handshake_timeout = buffer_bytes, handshake_timeout
        self.on_event = on_event or (lambda what: None)
        self.session = b"\0" * 16
        while self.session == b"\0" * 16:
            self.session = os.urandom(16)  # kept across reconnects
        self.next_seq = 1
        self.queued = collections.deque()    # [seq, frame bytes]: not written on this connection
        self.inflight = collections.deque()  # written on it, not acknowledged
        self.cur, self.off = None, 0         # the frame being written, and how much of it is
        self.held_bytes = 0
        self.sock, self.inbuf = None, b""
        self.max_frame = None                # the collector's, from its hello
        self.bye = None                      # when the collector said G
        self.retry_at, self.backoff = 0.0, 0.05
        self.acked = self.dropped = self.resent = self.connects = 0
        self.last_error = None

    def held(self):
        """The number of frames not yet acknowledged."""
        return len(self.queued) + len(self.inflight) + (self.cur is not None)

    def log(self, msg, level=INFO, when_ns=None):
        """Numbers and queues msg (bytes or str), stamped now, and sends what it can."""
        if isinstance(msg, str):
            msg = msg.encode()
        if not 0 <= level <= 7:
            raise ValueError("level %d: want 0-7" % level)
        if self.max_frame is not None and len(msg) > self.max_frame:
            raise ValueError("%d bytes: the collector takes at most %d" % (len(msg), self.max_frame))
        seq, self.next_seq = self.next_seq, self.next_seq + 1
        frame = struct.pack(self.o + "iIqB", len(msg), seq & 0xFFFFFFFF,
                            time.time_ns() if when_ns is None else when_ns, level) + msg
        while self.held_bytes + len(frame) > self.buffer_bytes and (self.inflight or self.queued):
            self.held_bytes -= len((self.inflight or self.queued).popleft()[1])
            self.dropped += 1  # a gap in the numbers; its acknowledgement, if any, is harmless
        self.queued.append([seq, frame])
        self.held_bytes += len(frame)
        self.pump()

    def flush(self, timeout):
        """Waits up to timeout seconds for every frame to be acknowledged; True if it was."""
        deadline = time.monotonic() + timeout
        while self.held() and time.monotonic() < deadline:
            self.pump(min(0.05, max(0.0, deadline - time.monotonic())))
        return self.held() == 0

    def close(self, timeout=5.0):
        """flush(timeout), then closes; returns the number of frames not delivered."""
        self.flush(timeout)
        self._drop_conn(None)
        return self.held() + self.dropped

    def pump(self, wait=0.0):
        """Connects if it is time, reads the acknowledgements, writes what the socket takes."""
        if self.sock is None:
            if time.monotonic() < self.retry_at or not self.held():
                return time.sleep(wait) if wait else None
            try:
                self._connect()
            except (OSError, ProtocolError) as e:
                return self._drop_conn(e)
        try:
            want_write = self.cur is not None or (self.queued and self.bye is None)
            r, w, _ = select.select([self.sock], [self.sock] if want_write else [], [], wait)
            if r:
                self._read_acks()
            if self.bye is not None and (not self.inflight and self.cur is None
                                         or time.monotonic() - self.bye > self.handshake_timeout):
                return self._drop_conn(None)  # G: what is acknowledged is, the rest goes again
            if w or want_write:
                self._write()
        except (OSError, ProtocolError) as e:
            self._drop_conn(e)

    def _connect(self):
        if self.network == "unix":
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            s = socket.socket(socket.AF_INET6 if ":" in self.address[0] else socket.AF_INET)
        self.sock = s
        s.settimeout(self.handshake_timeout)
        s.connect(self.address)
        first = (self.queued[0][0] if self.queued else self.next_seq)
        s.sendall(MAGIC + struct.pack(self.o + "BBBBi16sQ", 2, 0, len(self.tag), 0, os.getpid(),
                                      self.session, first) + self.tag)
        hello = b""
        while len(hello) < 20:
            more = s.recv(20 - len(hello))
            if not more:
                raise ProtocolError("the collector closed before its hello (does it speak v2?)")
            hello += more
        version, status, max_frame, acked = struct.unpack(self.o + "BBxxiQ", hello[4:])
        if hello[:4] != MAGIC or version != 2:
            raise ProtocolError("not a v2 hello: %r" % hello)
        if status != 0:
            raise ProtocolError("hello refused: status %d (%s)" % (
                status, {1: "version or flag not supported", 2: "bad hello"}.get(status, "?")))
        s.setblocking(False)
        self.max_frame, self.conn_acked, self.written, self.bye = max_frame, acked, acked, None
        self._release(acked, self.queued)  # the collector has them: their ack was lost
        for f in list(self.queued):
            if len(f[1]) - 17 > max_frame:  # it would end every connection: dropped, counted
                self.queued.remove(f)
                self.held_bytes -= len(f[1])
                self.dropped += 1
        self.backoff, self.connects = 0.05, self.connects + 1
        self.on_event("connected to the collector; it had the frames up to %d" % acked)

    def _drop_conn(self, err):
        """Closes the connection; its unacknowledged frames go first on the next."""
        if self.sock is not None:
            self.sock.close()
            self.sock, self.inbuf = None, b""
            if self.cur is not None:
                self.inflight.append(self.cur)  # written in part: sent again whole
            self.resent += len(self.inflight)
            self.inflight.extend(self.queued)
            self.queued, self.inflight, self.cur = self.inflight, collections.deque(), None
        if err is not None:
            self.last_error = err
            self.retry_at = time.monotonic() + self.backoff * random.uniform(0.5, 1.0)
            self.backoff = min(self.backoff * 2, 2.0)
            self.on_event("connection lost or refused: %s; holding %d frames, the last numbered %d"
                          % (err, self.held(), self.next_seq - 1))

    def _write(self):
        while True:
            if self.cur is None:
                if not self.queued or self.bye is not None:
                    return
                self.cur, self.off = self.queued.popleft(), 0
            try:
                self.off += self.sock.send(self.cur[1][self.off:])
            except BlockingIOError:
                return
            if self.off < len(self.cur[1]):
                return
            self.inflight.append(self.cur)
            self.written, self.cur = self.cur[0], None

    def _read_acks(self):
        data = self.sock.recv(65536)
        if not data:
            raise ProtocolError("the collector closed the connection")
        b = self.inbuf + data
        while b:
            kind = b[:1]
            if kind == b"G":
                if self.bye is None:
                    self.bye = time.monotonic()
                    self.on_event("the collector said goodbye")
                b = b[1:]
                continue
            size = {b"A": 9, b"R": 10}.get(kind)
            if size is None:
                raise ProtocolError("unknown message %r from the collector" % b[:16])
            if len(b) < size:
                break
            (n,) = struct.unpack(self.o + "Q", b[1:9])
            if n < self.conn_acked or n > self.written:
                raise ProtocolError("frame %d acknowledged after %d, with %d the last written"
                                    % (n, self.conn_acked, self.written))
            self.conn_acked = n
            if kind == b"R":  # frames before n acknowledged; n refused, not to be sent again
                self._release(n - 1, self.inflight)
                if self.inflight and self.inflight[0][0] == n:
                    self.held_bytes -= len(self.inflight.popleft()[1])
                    self.dropped += 1
                    self.last_error = "the collector refused frame %d (reason %d)" % (n, b[9])
            self._release(n, self.inflight)
            b = b[size:]
        self.inbuf = b

    def _release(self, n, frames):
        while frames and frames[0][0] <= n:
            self.held_bytes -= len(frames.popleft()[1])
            self.acked += 1


def main(argv):
    args = {"-addr": "127.0.0.1:39999", "-tag": "client.py", "-order": "little", "-timeout": "5"}
    verbose = False
    it = iter(argv)
    for a in it:
        if a == "-v":
            verbose = True
        elif a in args:
            args[a] = next(it, "")
        else:
            print("usage: client.py [-addr ADDR] [-tag TAG] [-order little|big] [-timeout S] [-v]", file=sys.stderr)
            return 2
    addr = args["-addr"]
    if addr.startswith("unix://"):
        network, address = "unix", addr[len("unix://"):]
    else:
        host, _, port = addr[len("tcp://"):].rpartition(":") if addr.startswith("tcp://") else addr.rpartition(":")
        network, address = "tcp", (host.strip("[]"), int(port))
    say = (lambda what: print("client.py:", what, file=sys.stderr, flush=True)) if verbose else None
    c = Client(network, address, args["-tag"], args["-order"], on_event=say)
    fd, rest = sys.stdin.fileno(), b""
    while True:
        # While lines are held, wake up to read acknowledgements and reconnect.
        r, _, _ = select.select([fd], [], [], 0.05 if c.held() else None)
        if r:
            data = os.read(fd, 65536)
            if not data:
                break
            *lines, rest = (rest + data).split(b"\n")
            for line in lines:
                level = INFO
                if len(line) >= 3 and line[:1] == b"<" and line[2:3] == b">" and b"0" <= line[1:2] <= b"7":
                    level, line = line[1] - ord("0"), line[3:]
                try:
                    c.log(line, level)
                except ValueError as e:  # longer than the collector takes
                    c.dropped, c.last_error = c.dropped + 1, e
        c.pump()
    if rest:
        c.log(rest)
    lost = c.close(float(args["-timeout"]))
    if lost:
        print("client.py: %d frames not delivered (%d dropped for room); last error: %s"
              % (lost, c.dropped, c.last_error), file=sys.stderr)
        return 1
    if verbose:
        say("%d frames acknowledged, %d sent again, %d connections" % (c.acked, c.resent, c.connects))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
