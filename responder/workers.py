"""Worker processes: ``[daemon] workers = N`` runs N processes on the same ports.

The command line forks N-1 workers after the config has been validated and
before any event loop exists; the parent is worker 0 and runs every
service. The extra workers run only the services that may run once per
worker (``per_worker`` in :mod:`responder.app`: DNS); every process binds its own
DNS sockets with SO_REUSEPORT, so the kernel spreads datagrams and
connections over them (by a hash of the source address and port). Workers
share nothing at run time: each one reloads the config file itself when
the parent forwards SIGHUP. The worker count is read at start only.

The parent forwards SIGTERM/SIGINT/SIGHUP to the workers and, once its own
services are stopped, waits for them briefly and kills stragglers. A worker
asks the kernel for SIGTERM when the parent dies, so none outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REAP_TIMEOUT = 1.5  # seconds; the parent as a whole must stop within 2 s


def spawn(count: int) -> tuple[int, list[int]]:
    """Fork ``count`` workers; return this process's worker number and its workers' PIDs.

    The parent gets ``(0, pids)``; worker N (1..count) gets ``(N, [])``.

    Raises:
        OSError: fork failed (the workers already forked are stopped first).
    """
    parent = os.getpid()
    pids: list[int] = []
    _flush_before_fork()
    for number in range(1, count + 1):
        try:
            pid = os.fork()
        except OSError:
            reap(pids)
            raise
        if pid == 0:
            _die_with(parent)
            return number, []
        pids.append(pid)
    return 0, pids


def _flush_before_fork() -> None:
    """Write out buffered output once, or the child would write it again.

    A closed stream (None) has nothing to flush, and one that cannot be
    written (full, reader gone) must not stop the fork either.
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.flush()


def _die_with(parent: int) -> None:
    """Have the kernel send us SIGTERM when the parent exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def forward(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to every worker still running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def reap(pids: list[int], timeout: float = REAP_TIMEOUT) -> None:
    """Stop the workers: SIGTERM, wait up to ``timeout`` seconds, then SIGKILL."""
    forward(pids, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    waiting = set(pids)
    while waiting and time.monotonic() < deadline:
        waiting -= {pid for pid in waiting if _exited(pid)}
        if waiting:
            time.sleep(0.01)
    for pid in waiting:
        log.warning("worker %d did not stop in %.1f s; killing it", pid, timeout)
        forward([pid], signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def _exited(pid: int) -> bool:
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return done == pid
