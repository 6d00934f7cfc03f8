"""Worker processes: ``[daemon] workers = N`` runs N processes on the same ports.

The parent is worker 0 and runs every service; N-1 workers run only the
services that may run once per worker (``per_worker`` in :mod:`responder.app`:
DNS). Every process binds its own DNS sockets with SO_REUSEPORT, so the
kernel spreads datagrams and connections over them (by a hash of the source
address and port), and when one process dies the kernel hands its share to
the others at once. Workers share nothing at run time: each one reloads the
config file itself when the parent forwards SIGHUP. The worker count is read
at start only.

Supervision. A :class:`Supervisor` in the parent's event loop starts each
worker as a fresh program, ``python -m responder run ... --worker N``, the
parent's own command line plus the hidden worker options (fork and exec, as
:func:`asyncio.create_subprocess_exec` does, never a bare fork: forking a
process whose event loop runs would copy the loop's threads, locks and file
descriptors in whatever state they are). The loop reaps the children
asynchronously (its child watcher: SIGCHLD in uvloop, a waiting thread or a
pidfd in asyncio), so nothing blocks serving. A worker that dies
otherwise than asked (any signal but SIGTERM/SIGINT, or a non-zero exit) is
logged and started again after a delay that doubles from
:data:`RESTART_DELAY` up to :data:`RESTART_DELAY_MAX`, and starts over once a
worker has run :data:`RESTART_DELAY_MAX` seconds. A worker that exits cleanly
was stopped on purpose (the parent forwarded SIGTERM, or an operator sent it
one) and stays stopped, as systemd's ``Restart=on-failure`` would have it.

The parent forwards SIGTERM/SIGINT/SIGHUP to the workers and, once its own
services are stopped, waits for them briefly (:data:`REAP_TIMEOUT`) and kills
stragglers. A worker asks the kernel for SIGTERM when the parent dies
(prctl PR_SET_PDEATHSIG), so none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterable, Sequence
from typing import Any

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REAP_TIMEOUT = 1.5  # seconds; the parent as a whole must stop within 2 s
RESTART_DELAY = 0.5  # seconds before the first restart of a worker that died
RESTART_DELAY_MAX = 30.0
_ASKED_TO_STOP = (0, -signal.SIGTERM, -signal.SIGINT)


def worker_argv(argv: Sequence[str], number: int) -> list[str]:
    """The command line of worker ``number``: the parent's own, run as that worker."""
    return [
        sys.executable,
        "-m",
        "responder",
        *argv,
        "--worker",
        str(number),
        "--supervisor",
        str(os.getpid()),
    ]


def die_with(parent: int) -> None:
    """Have the kernel send us SIGTERM when ``parent`` (our supervisor) exits.

    If it is gone already (before prctl took effect), exit at once.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os._exit(0)


def forward(pids: Iterable[int], sig: int) -> None:
    """Send ``sig`` to every worker still running."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def describe_exit(returncode: int) -> str:
    """``exited with status 3`` or ``was killed by signal 9 (SIGKILL)``."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = "?"
    return f"was killed by signal {-returncode} ({name})"


class Supervisor:
    """Starts the workers, restarts any that dies, and stops them all."""

    def __init__(self, count: int, argv: Sequence[str]) -> None:
        self.count = count
        self.argv = list(argv)
        self.pids: list[int] = []  # live: the signal forwarding reads it at each signal
        self.restarts = 0
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._delays: dict[int, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Start every worker; one that cannot be started is retried as if it had died."""
        for number in range(1, self.count + 1):
            try:
                await self._spawn(number)
            except OSError as exc:
                self._track(self._retry(number, f"could not be started ({exc})", 0.0))

    async def _spawn(self, number: int) -> None:
        proc = await asyncio.create_subprocess_exec(
            *worker_argv(self.argv, number), stdin=asyncio.subprocess.DEVNULL
        )
        self._procs[number] = proc
        self.pids.append(proc.pid)
        self._track(self._watch(number, proc, asyncio.get_running_loop().time()))

    def _track(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, number: int, proc: asyncio.subprocess.Process, began: float) -> None:
        returncode = await proc.wait()
        with contextlib.suppress(ValueError):
            self.pids.remove(proc.pid)
        if self._stopping:
            return
        how = f"(pid {proc.pid}) {describe_exit(returncode)}"
        if returncode in _ASKED_TO_STOP:
            log.info("worker %d %s; not restarted", number, how)
            return
        await self._retry(number, how, asyncio.get_running_loop().time() - began)

    async def _retry(self, number: int, how: str, ran_for: float) -> None:
        """Start worker ``number`` again after its backoff delay, until it runs."""
        while True:
            delay = self._next_delay(number, ran_for)
            log.warning("worker %d %s; restarting it in %.1f s", number, how, delay)
            await asyncio.sleep(delay)  # stop() cancels it
            try:
                await self._spawn(number)
            except OSError as exc:
                how, ran_for = f"could not be restarted ({exc})", 0.0
                continue
            self.restarts += 1
            log.info("worker %d restarted (pid %d)", number, self._procs[number].pid)
            return

    def _next_delay(self, number: int, ran_for: float) -> float:
        previous = self._delays.get(number)
        if previous is None or ran_for >= RESTART_DELAY_MAX:
            delay = RESTART_DELAY
        else:
            delay = min(previous * 2, RESTART_DELAY_MAX)
        self._delays[number] = delay
        return delay

    async def stop(self) -> None:
        """Stop every worker: SIGTERM, wait up to :data:`REAP_TIMEOUT` seconds, then SIGKILL."""
        self._stopping = True
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                task.cancel()
        running = [p for p in self._procs.values() if p.returncode is None]
        forward([p.pid for p in running], signal.SIGTERM)
        waiting = [asyncio.ensure_future(p.wait()) for p in running]
        if not waiting:
            return
        _, late = await asyncio.wait(waiting, timeout=REAP_TIMEOUT)
        for proc in running:
            if proc.returncode is None:
                log.warning("worker %d did not stop in %.1f s; killing it", proc.pid, REAP_TIMEOUT)
                forward([proc.pid], signal.SIGKILL)
        if late:
            await asyncio.wait(late)
