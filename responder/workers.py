"""Worker processes: ``[daemon] workers = N`` runs N processes on the same ports.

The parent is worker 0 and runs every service; N-1 workers run only the
services that may run once per worker (``per_worker`` in :mod:`responder.app`:
DNS). Every process binds its own DNS sockets with SO_REUSEPORT, so the
kernel spreads datagrams and connections over them (by a hash of the source
address and port), and when one process dies the kernel hands its share to
the others at once. Workers share nothing at run time but what was mapped
before the first fork: each one reloads the config file itself when the
parent forwards SIGHUP. The worker count is read at start only.

Supervision: a fork server. Forking a process whose event loop runs would
copy its loop, threads, locks and descriptors in whatever state they are; so
before any loop exists the command line forks one small process, the fork
server (:func:`spawn`), and every worker, the first ones and every
replacement, is a fork of it: a copy of the parent as it was before its loop
(config validated, logging set up, shared mappings inherited). The fork
server does nothing else: it forks a worker when the parent asks, waits for
its workers through pidfds (pidfd_open(2)) and reports each exit. The parent
talks to it over a SOCK_SEQPACKET pair read by its loop (:class:`Supervisor`),
so nothing blocks serving. A worker that dies otherwise than asked (any signal
but SIGTERM/SIGINT, or a non-zero exit) is logged and forked again after a
delay that doubles from :data:`RESTART_DELAY` up to :data:`RESTART_DELAY_MAX`,
and starts over once a worker has run :data:`RESTART_DELAY_MAX` seconds. A
replacement re-reads the config file, so it serves what the others serve. A
worker that exits cleanly was stopped on purpose and stays stopped, as
systemd's ``Restart=on-failure`` would have it.

The parent forwards SIGTERM/SIGINT/SIGHUP to the workers and, once its own
services are stopped, waits for them (:data:`REAP_TIMEOUT`), kills
stragglers, and ends the fork server. Each process asks the kernel for
SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG): the fork server with
the parent, the workers with the fork server, so none outlives the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REAP_TIMEOUT = 1.5  # seconds; the parent as a whole must stop within 2 s
RESTART_DELAY = 0.5  # seconds before the first restart of a worker that died
RESTART_DELAY_MAX = 30.0
_ASKED_TO_STOP = (0, -signal.SIGTERM, -signal.SIGINT)
_MESSAGE = 64  # bytes: "spawn N", "started N PID", "exited N PID CODE", "failed N"
_KEPT = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGHUP)}


@dataclass(slots=True)
class ForkServer:
    """The parent's end of the fork server: its PID, its socket, the workers it forked."""

    pid: int
    sock: socket.socket
    workers: dict[int, int] = field(default_factory=dict)  # number -> PID, the first ones

    def close(self) -> None:
        """End the fork server (it exits when its socket closes) and reap it."""
        self.sock.close()
        for _ in range(int(REAP_TIMEOUT / 0.01)):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(self.pid, os.WNOHANG)[0] == 0:
                    time.sleep(0.01)  # it exits as soon as it reads the end of its socket
                    continue
            return
        forward([self.pid], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def spawn(count: int) -> tuple[int, ForkServer | None]:
    """Start the fork server and ``count`` workers; call before any event loop exists.

    The parent gets ``(0, server)`` (``(0, None)`` when ``count`` is 0);
    worker N (1..count, or a replacement later) gets ``(N, None)``.

    Raises:
        OSError: fork failed (the fork server, if started, is ended first).
    """
    if count == 0:
        return 0, None
    parent = os.getpid()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    _flush_before_fork()
    pid = os.fork()
    if pid == 0:
        ours.close()
        die_with(parent)
        return _serve_forks(theirs), None
    theirs.close()
    server = ForkServer(pid, ours)
    try:
        for number in range(1, count + 1):
            server.workers[number] = _ask_spawn(ours, number)
    except OSError:
        server.close()
        raise
    return 0, server


def _ask_spawn(sock: socket.socket, number: int) -> int:
    """Pre-loop: have the fork server fork worker ``number``; its PID."""
    sock.sendall(f"spawn {number}".encode())
    reply = sock.recv(_MESSAGE).decode().split()
    if reply[:2] != ["started", str(number)]:
        raise OSError(f"fork server: cannot start worker {number}: {' '.join(reply)}")
    return int(reply[2])


def _serve_forks(sock: socket.socket) -> int:
    """The fork server's life; returns only in a freshly forked worker: its number."""
    me = os.getpid()
    # A Ctrl-C or a hang-up reaches the whole process group: the parent decides, not us.
    for sig in _KEPT:
        signal.signal(sig, signal.SIG_IGN)
    watched: dict[int, tuple[int, int]] = {}  # pidfd -> (number, PID)
    while True:
        ready, _, _ = select.select([sock.fileno(), *watched], [], [])
        for fd in ready:
            if fd != sock.fileno():
                _report_exit(sock, watched.pop(fd), fd)
                continue
            request = sock.recv(_MESSAGE).decode().split()
            if not request:  # the parent closed its end: stopping, or gone
                os._exit(0)
            number = int(request[1])
            pid = _fork_worker(me)
            if pid == 0:
                sock.close()
                for pidfd in watched:
                    os.close(pidfd)
                for sig, handler in _KEPT.items():
                    signal.signal(sig, handler)
                return number
            if pid < 0:
                _send(sock, f"failed {number}")
                continue
            _send(sock, f"started {number} {pid}")
            watched[os.pidfd_open(pid)] = (number, pid)


def _fork_worker(server: int) -> int:
    _flush_before_fork()
    try:
        pid = os.fork()
    except OSError:
        return -1
    if pid == 0:
        die_with(server)
    return pid


def _report_exit(sock: socket.socket, worker: tuple[int, int], pidfd: int) -> None:
    number, pid = worker
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    _send(sock, f"exited {number} {pid} {os.waitstatus_to_exitcode(status)}")


def _send(sock: socket.socket, message: str) -> None:
    try:
        sock.sendall(message.encode())
    except OSError:  # the parent is gone: PR_SET_PDEATHSIG ends us too
        os._exit(0)


def _flush_before_fork() -> None:
    """Write out buffered output once, or the child would write it again.

    A closed stream (None) has nothing to flush, and one that cannot be
    written (full, reader gone) must not stop the fork either.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.flush()


def die_with(parent: int) -> None:
    """Have the kernel send us SIGTERM when ``parent`` exits; exit now if it has."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def forward(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to every worker still running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def describe_exit(code: int) -> str:
    """``exited with status 3`` or ``was killed by signal 9 (SIGKILL)``."""
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = "?"
    return f"was killed by signal {-code} ({name})"


def restart_delay(previous: float | None, ran_for: float) -> float:
    """Seconds before restarting a worker that died after running ``ran_for`` seconds.

    Doubles from :data:`RESTART_DELAY` (``previous`` None: its first death) to
    :data:`RESTART_DELAY_MAX`, and starts over after a run that long.
    """
    if previous is None or ran_for >= RESTART_DELAY_MAX:
        return RESTART_DELAY
    return min(previous * 2, RESTART_DELAY_MAX)


class Supervisor:
    """In the parent's loop: restarts the workers that die, and stops them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: ForkServer) -> None:
        self.loop = loop
        self.server = server
        self.workers = dict(server.workers)  # number -> PID of the running ones
        self.pids = list(self.workers.values())  # live: signal forwarding reads it each time
        self.restarts = 0
        self._started_at = dict.fromkeys(self.workers, loop.time())
        self._delays: dict[int, float] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._stopping = False
        self._all_exited = asyncio.Event()
        loop.add_reader(server.sock.fileno(), self._on_message)

    def _on_message(self) -> None:
        try:
            message = self.server.sock.recv(_MESSAGE).decode().split()
        except OSError:
            message = []
        match message:
            case ["started", number, pid]:
                self._started(int(number), int(pid))
            case ["exited", number, pid, code]:
                self._exited(int(number), int(pid), int(code))
            case ["failed", number]:
                self._schedule(int(number), 0.0, f"worker {number} could not be forked")
            case _:  # EOF: the fork server died, and its workers with it
                self.loop.remove_reader(self.server.sock.fileno())
                if not self._stopping:
                    log.error("the worker fork server died; workers are not restarted")
                self.workers.clear()
                self.pids.clear()
                self._all_exited.set()

    def _started(self, number: int, pid: int) -> None:
        self.workers[number] = pid
        self.pids.append(pid)
        self._started_at[number] = self.loop.time()
        self.restarts += 1
        log.info("worker %d restarted (pid %d)", number, pid)

    def _exited(self, number: int, pid: int, code: int) -> None:
        self.workers.pop(number, None)
        with contextlib.suppress(ValueError):
            self.pids.remove(pid)
        if not self.workers:
            self._all_exited.set()
        if self._stopping:
            return
        how = f"worker {number} (pid {pid}) {describe_exit(code)}"
        if code in _ASKED_TO_STOP:
            log.info("%s; not restarted", how)
            return
        self._schedule(number, self.loop.time() - self._started_at.get(number, 0.0), how)

    def _schedule(self, number: int, ran_for: float, how: str) -> None:
        delay = self._next_delay(number, ran_for)
        log.warning("%s; restarting it in %.1f s", how, delay)
        self._timers[number] = self.loop.call_later(delay, self._restart, number)

    def _next_delay(self, number: int, ran_for: float) -> float:
        self._delays[number] = delay = restart_delay(self._delays.get(number), ran_for)
        return delay

    def _restart(self, number: int) -> None:
        self._timers.pop(number, None)
        if self._stopping:
            return
        try:
            self.server.sock.send(f"spawn {number}".encode())
        except OSError as exc:
            log.error("worker %d cannot be restarted: %s", number, exc)

    async def stop(self) -> None:
        """Stop every worker: SIGTERM, wait up to :data:`REAP_TIMEOUT` s, then SIGKILL."""
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        if self.workers:
            self._all_exited.clear()
            forward(list(self.workers.values()), signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_exited.wait(), REAP_TIMEOUT)
        for number, pid in self.workers.items():
            log.warning(
                "worker %d (pid %d) did not stop in %.1f s; killing it", number, pid, REAP_TIMEOUT
            )
            forward([pid], signal.SIGKILL)
        if self.server.sock.fileno() >= 0:
            self.loop.remove_reader(self.server.sock.fileno())
