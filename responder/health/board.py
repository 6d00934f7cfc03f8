"""The shared memory through which worker processes publish their counters.

Worker processes (``[daemon] workers > 1``, see :mod:`responder.workers`)
share nothing but their ports; only worker 0 serves /metrics. So that the
exposition counts every worker's work, the command line maps one anonymous
shared region (``mmap(-1)``: MAP_SHARED | MAP_ANONYMOUS) *before* forking;
every process inherits it. Each worker N > 0 owns slot N and rewrites it every
:data:`PUBLISH_INTERVAL` seconds with a JSON snapshot of its per-worker
services' counters (:func:`worker_counters`); worker 0 reads the other slots at
scrape time and adds them to its own live counters. Nothing is added to the
answer path: the counters are the ones the listeners already keep, read by a
timer. A worker's numbers are therefore at most :data:`PUBLISH_INTERVAL`
seconds old in the exposition.

A slot is ``[sequence u64][length u32][payload]``; the writer makes the
sequence odd while it writes (a seqlock), and a reader retries a slot whose
sequence was odd or changed while it read.

The payload (:func:`worker_counters`) says its :data:`VERSION`; :func:`merge`
leaves out a snapshot of another version, and adds rows of different
lengths index by index (a longer row widens the total), so a reader never
mixes up two layouts. Version 2 rows:

- ``dns_udp``: ``address -> [received, answered, send dropped, handler bugs,
  answered from repeats by the compiled loop]``;
- ``dns_tcp``: ``address -> [open connections, evicted, accepted]``;
- ``dns_queries``: ``"protocol|path|qtype|outcome" -> [answers]``, the
  service's counts (:mod:`protocols.dns.outcome`): at most a few hundred
  keys, as qtypes outside a fixed set count as ``other``, so a slot of
  :data:`SLOT_SIZE` holds them with thousands of listeners to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mmap
import struct
from collections.abc import Callable, Iterable
from typing import Any

SLOT_SIZE = 256 * 1024  # bytes per worker: room for a few thousand listeners
VERSION = 2  # of the snapshot layout (see the module docstring)
PUBLISH_INTERVAL = 0.5  # seconds
_HEAD = struct.Struct("<QI")
_RETRIES = 100

Snapshot = dict[str, Any]


class WorkerBoard:
    """One slot per worker process in a shared anonymous mapping."""

    def __init__(self, workers: int) -> None:
        """Map the region; call before forking so that every worker shares it.

        Raises:
            OSError: the mapping could not be created.
        """
        self.workers = workers
        self._map = mmap.mmap(-1, SLOT_SIZE * workers)

    def write(self, worker: int, snapshot: Snapshot) -> None:
        """Publish ``snapshot`` in ``worker``'s slot (dropped if it does not fit).

        Raises:
            IndexError: ``worker`` has no slot.
        """
        if not 0 <= worker < self.workers:
            raise IndexError(f"no slot for worker {worker}")
        payload = json.dumps(snapshot, separators=(",", ":")).encode()
        if len(payload) > SLOT_SIZE - _HEAD.size:
            return
        base = worker * SLOT_SIZE
        sequence = _HEAD.unpack_from(self._map, base)[0]
        _HEAD.pack_into(self._map, base, sequence + 1, 0)
        self._map[base + _HEAD.size : base + _HEAD.size + len(payload)] = payload
        _HEAD.pack_into(self._map, base, sequence + 2, len(payload))

    def read(self, worker: int) -> Snapshot | None:
        """``worker``'s latest snapshot, or None if it has published none (or kept writing)."""
        base = worker * SLOT_SIZE
        for _ in range(_RETRIES):
            before, length = _HEAD.unpack_from(self._map, base)
            if before % 2:
                continue
            start = base + _HEAD.size
            payload = self._map[start : start + length]
            if _HEAD.unpack_from(self._map, base)[0] == before:
                return json.loads(payload) if length else None
        return None

    def others(self) -> list[Snapshot]:
        """Every worker's snapshot but worker 0's (worker 0 reads its own counters live)."""
        found = (self.read(worker) for worker in range(1, self.workers))
        return [snapshot for snapshot in found if snapshot is not None]


def worker_counters(services: Iterable[object]) -> Snapshot:
    """The per-worker counters of one process: the DNS service's (see :mod:`metrics`).

    Raises:
        Nothing: it only reads counters.
    """
    from responder.services.dns import DnsService

    snapshot: Snapshot = {"version": VERSION, "dns_udp": {}, "dns_tcp": {}, "dns_queries": {}}
    for service in services:
        if isinstance(service, DnsService):
            for (host, port), udp in service.udp.active.items():
                c = udp.counters
                row = [c.received, c.answered, c.dropped_send, c.handler_bugs, c.repeats_answered]
                snapshot["dns_udp"][f"{host}:{port}"] = row
            for (host, port), tcp in service.tcp.active.items():
                row = [len(tcp.connections), tcp.evicted, tcp.accepted]
                snapshot["dns_tcp"][f"{host}:{port}"] = row
            for protocol, counts in zip(("udp", "tcp"), service.counts, strict=True):
                for key, (count,) in list(counts.items()):
                    snapshot["dns_queries"]["|".join((protocol, *key))] = [count]
            if service.guard is not None:  # drops by reason, in COUNTER_NAMES order
                snapshot["guard"] = {"dns": list(service.guard.counts())}
    return snapshot


def merge(snapshots: Iterable[Snapshot]) -> Snapshot:
    """Add up the snapshots of several workers, per row (a listener, a query label).

    A snapshot of another :data:`VERSION` is left out.
    """
    total: Snapshot = {"dns_udp": {}, "dns_tcp": {}, "dns_queries": {}}
    for snapshot in snapshots:
        if snapshot.get("version") != VERSION:
            continue
        for kind, rows in snapshot.items():
            if not isinstance(rows, dict):
                continue
            for address, values in rows.items():
                into = total.setdefault(kind, {}).setdefault(address, [])
                into.extend([0] * (len(values) - len(into)))
                for index, value in enumerate(values):
                    into[index] += value
    return total


class Publisher:
    """In worker N > 0: rewrite slot N from ``counters()`` every :data:`PUBLISH_INTERVAL`."""

    def __init__(self, board: WorkerBoard, worker: int, counters: Callable[[], Snapshot]) -> None:
        self._board = board
        self._worker = worker
        self._counters = counters
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            self._board.write(self._worker, self._counters())
            await asyncio.sleep(PUBLISH_INTERVAL)

    async def stop(self) -> None:
        """Stop publishing (the slot keeps the last snapshot)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
