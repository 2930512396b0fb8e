#!/usr/bin/env python3
"""A Python child that logs on the connection its logsock parent passed it.

A Go program holding a logsock.LogSocket starts this script with Start, and
the script logs on the inherited connection, under the shared frame lock,
without a handshake of its own: the collector attributes its frames to the
parent's handshake pid, as after os.fork in the article.

    cmd := exec.Command("python3", "examples/pychild/child.py", "hello", "로그")
    err := ls.Start(cmd)

Usage: child.py [-n COUNT] [--] MSG...

Logs each MSG as one frame, COUNT times over (default 1). It prints nothing
on success; on failure it prints why on standard error and exits 1 (2 for a
bad command line or a process not started by Start).

What it does, step by step, is the inheritance contract of package logsock
(see its documentation), for a child in any language:

 1. Read LOGSOCK_NETWORK (tcp, tcp4, tcp6 or unix), LOGSOCK_ADDRESS,
    LOGSOCK_ORDER (little or big), LOGSOCK_FD, LOGSOCK_SOCKET (the socket's
    "dev:ino") and LOGSOCK_LOCK_FD, and unset them all, so that no
    grandchild believes it inherits the connection.
 2. Check that LOGSOCK_FD is the socket meant, not a stale number: a stream
    socket of the named network whose fstat dev:ino is LOGSOCK_SOCKET; and
    that LOGSOCK_LOCK_FD is a regular file of at least 16 bytes. Make both
    close-on-exec. Never send a handshake on the inherited socket.
 3. For each frame, take a POSIX record write lock (fcntl F_SETLK/F_SETLKW,
    F_WRLCK; Python's fcntl.lockf) on byte 0, length 1, of the lock file.
    If byte 0 (frame in progress) is 1, a holder died inside a frame: set
    byte 1 (torn) to 1 and byte 0 to 0. If byte 1 is 1, the stream is torn
    for good: release the lock and stop using the connection. Otherwise set
    byte 0 to 1, write the whole frame (int32 byte length in LOGSOCK_ORDER,
    then the bytes) in one sendall, set byte 0 back to 0 (leave it at 1 if
    the write failed: part of the frame may be out) and release the lock.
    While waiting for the lock, set byte 4 (wanted) to 1, and back to 0
    once the lock is yours: a Go holder keeps the lock between its frames
    until someone asks (or for 200 us).
 4. When the connection is torn or fails, connect to LOGSOCK_NETWORK and
    LOGSOCK_ADDRESS, send a handshake with this process's own pid, and go
    on there without the lock, resending whole the frame that failed.

The lock file's bytes are read and written with os.pread and os.pwrite: a
POSIX lock is dropped when the process closes any descriptor of the file,
and mmap.mmap keeps a duplicate descriptor that it closes whenever the map
is closed (Python 3.13's trackfd=False avoids that). POSIX locks do not
exclude the threads of one process: this script has only one.
"""

import errno
import fcntl
import os
import random
import select
import socket
import stat
import struct
import sys
import time

ENV_NETWORK = "LOGSOCK_NETWORK"
ENV_ADDRESS = "LOGSOCK_ADDRESS"
ENV_ORDER = "LOGSOCK_ORDER"
ENV_FD = "LOGSOCK_FD"
ENV_SOCKET = "LOGSOCK_SOCKET"
ENV_LOCK_FD = "LOGSOCK_LOCK_FD"
ENV_VARS = (ENV_NETWORK, ENV_ADDRESS, ENV_ORDER, ENV_FD, ENV_SOCKET, ENV_LOCK_FD)

ORDERS = {"little": "<", "big": ">"}
FAMILIES = {
    "tcp": (socket.AF_INET, socket.AF_INET6),
    "tcp4": (socket.AF_INET,),
    "tcp6": (socket.AF_INET6,),
    "unix": (socket.AF_UNIX,),
}

# The defaults of the Go client (logsock.DefaultMaxFrame and friends).
MAX_FRAME = 1 << 20  # the collector's default limit on one message, in bytes
DIAL_TIMEOUT = 5.0  # seconds for one connection attempt
WRITE_TIMEOUT = 5.0  # seconds one frame may wait for the lock, then for room
MIN_BACKOFF, MAX_BACKOFF = 0.05, 5.0  # seconds between connection attempts
GIVE_UP = 30.0  # seconds after which a frame that cannot be delivered fails

LOCK_FILE_SIZE = 16
IN_PROGRESS, TORN, WANTED = 0, 1, 4  # byte offsets in the lock file

# Return EPIPE instead of raising SIGPIPE (which Python ignores anyway).
SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


class NotInherited(Exception):
    """The environment names no collector: not started by LogSocket.Start."""


class StaleFD(Exception):
    """A descriptor is not the one the parent meant."""


class Torn(Exception):
    """A holder died inside a frame: the shared stream is torn for good."""

    def __init__(self):
        super().__init__("a process died while writing a frame on the shared connection")


class FrameLock:
    """This process's hold on the lock file shared with the other holders."""

    def __init__(self, fd):
        self.fd = fd

    def acquire(self, deadline):
        """Take the lock, polling until deadline (time.monotonic), as the Go
        side does: a blocking F_SETLKW could wait forever on a holder that
        is stopped. Raise Torn, with the lock released, if the stream is
        torn."""
        pause = 0.0
        while True:
            try:
                fcntl.lockf(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
                break
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise TimeoutError("waiting for the frame lock")
            # A Go holder may keep the lock between its frames: ask for it.
            os.pwrite(self.fd, b"\x01", WANTED)
            pause = min(max(2 * pause, 20e-6), 200e-6)  # a holder leaves the lock to a waiter for 1 ms
            time.sleep(pause)
        os.pwrite(self.fd, b"\x00", WANTED)  # served; another waiter sets it again
        in_progress, torn = os.pread(self.fd, 2, IN_PROGRESS)
        if in_progress:
            torn = 1
            os.pwrite(self.fd, b"\x00\x01", IN_PROGRESS)  # tell every holder, for good
        if torn:
            self.release()
            raise Torn
        os.pwrite(self.fd, b"\x01", IN_PROGRESS)

    def release(self, torn=False):
        """Release the lock; torn leaves "frame in progress" set, for a
        frame cut by a failed write."""
        if not torn:
            os.pwrite(self.fd, b"\x00", IN_PROGRESS)
        fcntl.lockf(self.fd, fcntl.LOCK_UN, 1, 0)

    def close(self):
        """Close the lock file; the caller must not hold the lock."""
        os.close(self.fd)


class InheritedLog:
    """Logs frames on the inherited connection, then on its own."""

    def __init__(self):
        env = {k: os.environ.pop(k, "") for k in ENV_VARS}  # pop unsets
        if not env[ENV_NETWORK]:
            raise NotInherited("%s is not set: start this script with LogSocket.Start" % ENV_NETWORK)
        self.network, self.address = env[ENV_NETWORK], env[ENV_ADDRESS]
        if self.network not in FAMILIES:
            raise ValueError("%s=%r: want tcp, tcp4, tcp6 or unix" % (ENV_NETWORK, self.network))
        if env[ENV_ORDER] not in ORDERS:
            raise ValueError("%s=%r: want little or big" % (ENV_ORDER, env[ENV_ORDER]))
        self.order = ORDERS[env[ENV_ORDER]]
        self.sock = None
        self.lock = None  # set while the connection is shared
        self.backoff = 0.0
        self.next_dial = 0.0
        if env[ENV_FD]:  # empty when the parent had no connection to pass
            self.sock, self.lock = self._adopt(env[ENV_FD], env[ENV_LOCK_FD], env[ENV_SOCKET])

    def _adopt(self, fd_var, lock_var, ident):
        try:
            fd, lock_fd = int(fd_var), int(lock_var)
        except ValueError:
            raise StaleFD("%s=%r, %s=%r" % (ENV_FD, fd_var, ENV_LOCK_FD, lock_var)) from None
        try:
            st = os.fstat(fd)
        except OSError as e:
            raise StaleFD("fd %d: %s" % (fd, e)) from None
        if not stat.S_ISSOCK(st.st_mode):
            raise StaleFD("fd %d is not a socket" % fd)
        if "%d:%d" % (st.st_dev, st.st_ino) != ident:
            raise StaleFD("fd %d is socket %d:%d, want %s" % (fd, st.st_dev, st.st_ino, ident))
        try:
            lst = os.fstat(lock_fd)
        except OSError as e:
            raise StaleFD("lock fd %d: %s" % (lock_fd, e)) from None
        if not stat.S_ISREG(lst.st_mode) or lst.st_size < LOCK_FILE_SIZE:
            raise StaleFD("lock fd %d is not a lock file" % lock_fd)
        os.set_inheritable(fd, False)
        os.set_inheritable(lock_fd, False)
        sock = socket.socket(fileno=fd)  # reads family and type from the socket
        if sock.type != socket.SOCK_STREAM or sock.family not in FAMILIES[self.network]:
            sock.detach()
            raise StaleFD("fd %d is not a %s stream socket" % (fd, self.network))
        # The description is shared and Go made it non-blocking; a timeout
        # keeps it so (setblocking(True) would change it for every holder)
        # and makes sendall wait for room, up to the timeout.
        sock.settimeout(WRITE_TIMEOUT)
        return sock, FrameLock(lock_fd)

    def log(self, msg):
        """Send msg (str, sent as UTF-8, or bytes) as one frame."""
        if isinstance(msg, str):
            msg = msg.encode("utf-8")
        if len(msg) > MAX_FRAME:
            raise ValueError("message of %d bytes exceeds the limit of %d" % (len(msg), MAX_FRAME))
        # The length counts bytes, not code points (the article's bug).
        frame = struct.pack(self.order + "i", len(msg)) + msg
        give_up = time.monotonic() + GIVE_UP
        retry = False
        while True:
            try:
                if self.sock is None:
                    self._connect()
                self._send(frame)
                self.backoff = 0.0  # delivered: the collector is healthy
                return
            except (OSError, Torn) as e:
                self._drop()
                if time.monotonic() >= give_up:
                    raise OSError("frame undelivered after %gs: %s" % (GIVE_UP, e)) from e
                # The first attempt after a loss is immediate; then the
                # wait doubles, drawn from its upper half, as in the Go
                # client, so that many clients do not retry in step.
                if retry:
                    self.backoff = min(max(2 * self.backoff, MIN_BACKOFF), MAX_BACKOFF)
                    self.next_dial = time.monotonic() + random.uniform(self.backoff / 2, self.backoff)
                retry = True

    def _send(self, frame):
        if self._closed_by_peer():
            raise ConnectionResetError("collector closed the connection")
        if self.lock is None:
            self.sock.sendall(frame, SEND_FLAGS)
            return
        self.lock.acquire(time.monotonic() + WRITE_TIMEOUT)
        try:
            self.sock.sendall(frame, SEND_FLAGS)
        except BaseException:
            # sendall does not say how much went out: assume a part did,
            # so that every holder learns that the stream may be torn.
            self.lock.release(torn=True)
            raise
        self.lock.release()

    def _closed_by_peer(self):
        """Report whether the collector has closed the connection: it never
        sends, so a readable socket is at EOF or in error. This catches a
        graceful collector restart before a frame goes into a dead
        connection."""
        p = select.poll()
        p.register(self.sock, select.POLLIN)
        if not p.poll(0):
            return False
        try:
            return self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _drop(self):
        """Stop using the connection. Closing the socket sends no FIN while
        another process holds it; the lock is not held here, so closing the
        lock file drops nothing."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.lock is not None:
            self.lock.close()
            self.lock = None

    def _connect(self):
        """Connect on our own, once the backoff allows, with a handshake
        of our own pid."""
        wait = self.next_dial - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        if self.network == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(DIAL_TIMEOUT)
            try:
                sock.connect(self.address)
            except BaseException:
                sock.close()
                raise
        else:
            host, _, port = self.address.rpartition(":")
            sock = socket.create_connection((host.strip("[]"), int(port)), DIAL_TIMEOUT)
        self.sock = sock  # close-on-exec, as Python makes every socket
        sock.settimeout(WRITE_TIMEOUT)
        sock.sendall(struct.pack(self.order + "i", os.getpid()), SEND_FLAGS)

    def close(self):
        self._drop()


def main(argv):
    args = argv[1:]
    count = 1
    if len(args) >= 2 and args[0] == "-n":
        try:
            count = int(args[1])
        except ValueError:
            count = -1
        args = args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args or count < 0:
        print("usage: child.py [-n COUNT] [--] MSG...", file=sys.stderr)
        return 2
    try:
        log = InheritedLog()
    except NotInherited as e:
        print("child.py: %s" % e, file=sys.stderr)
        return 2
    except (StaleFD, ValueError) as e:
        print("child.py: %s" % e, file=sys.stderr)
        return 1
    try:
        for _ in range(count):
            for msg in args:
                # The bytes of the command line as given: os.fsencode
                # undoes the decoding of sys.argv, whatever the locale.
                log.log(os.fsencode(msg))
    except (OSError, ValueError) as e:
        print("child.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
