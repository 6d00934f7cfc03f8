"""The recorder: the listeners' tap, a bounded queue and a writer thread writing pcapng.

On the event loop (:class:`Recorder`, the tap of :mod:`responder.net.tap`)
each report costs a filter check and one ``deque.append`` of a small tuple:
no packet is built and no file touched there. When ``queue`` records are
waiting, a new one is dropped and counted instead; the loop never waits.

The writer thread (:class:`_Writer`) wakes every few milliseconds, takes
what is queued, builds the IP packets (UDP as they were, TCP connections as
a synthesized conversation, :mod:`protocols.capture.tcp`) and writes
Enhanced Packet Blocks (:mod:`protocols.capture.pcapng`). It rotates the
file after a size or a time (the full one is renamed ``FILE.YYYYmmddTHHMMSS.N``
and a new one begun), reopens it on request (SIGHUP, after logrotate moved
it) and, at each close, writes an Interface Statistics Block with the number
of records dropped so far.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from protocols.capture import pcapng
from protocols.capture.packets import udp_packet
from protocols.capture.tcp import Conversation
from responder.capture.options import NO_FILTER, NO_ROTATION, CaptureFilter, Rotation

log = logging.getLogger(__name__)

Address = tuple[str, int]
POLL_SECONDS = 0.005
APPLICATION = "cozen-responder"

# (time, kind, key, first address, second address, payload); kinds: datagram, open, data, close
Record = tuple[float, str, int, Address, Address, bytes]


@dataclass(slots=True)
class CaptureCounts:
    """What /status and /metrics report about recording."""

    queued: int = 0
    written: int = 0
    dropped: int = 0
    files: int = 0
    write_errors: int = 0


class Recorder:
    """The tap listeners call while recording; see the module docstring."""

    def __init__(
        self,
        path: str,
        *,
        ports: dict[int, str],
        capture_filter: CaptureFilter = NO_FILTER,
        rotation: Rotation = NO_ROTATION,
        queue: int = 65536,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``ports``: which protocol each local port serves (for the filter).

        Raises:
            OSError: the file cannot be created.
        """
        self.counts = CaptureCounts()
        self.path = path
        self._limit = queue
        self._queue: collections.deque[Record] = collections.deque()
        self._clock = clock
        self._ports = ports
        self._filter = capture_filter
        self._streams: set[int] = set()  # connections being recorded
        self._writer = _Writer(path, rotation, self._queue, self.counts)
        self.hold = threading.Event()  # set: the writer thread stalls (tests)

    def start(self) -> None:
        """Start the writer thread."""
        self._writer.start(self.hold)

    def stop(self) -> None:
        """Write what is queued, the statistics block, and close the file."""
        self._writer.stop()

    def reopen(self) -> None:
        """Close and reopen the file at the next writer wake-up (logrotate's SIGHUP)."""
        self._writer.reopen = True

    def status(self) -> dict[str, object]:
        """/status ``capture``: the file, records queued, written and dropped, files, errors."""
        c = self.counts
        return {
            "file": self.path,
            "queued": len(self._queue),
            "written": c.written,
            "dropped": c.dropped,
            "files": c.files,
            "write_errors": c.write_errors,
        }

    def _wanted(self, one: Address, other: Address) -> bool:
        f = self._filter
        if f.protocols:
            protocol = self._ports.get(one[1]) or self._ports.get(other[1])
            if protocol not in f.protocols:
                return False
        if f.networks:
            addresses = {ipaddress.ip_address(one[0]), ipaddress.ip_address(other[0])}
            return any(a in n for a in addresses for n in f.networks)
        return True

    def _put(self, record: Record) -> None:
        if len(self._queue) >= self._limit:
            self.counts.dropped += 1
        else:
            self._queue.append(record)

    def datagram(self, source: Address, destination: Address, data: bytes) -> None:
        filtering = self._filter.protocols or self._filter.networks
        if filtering and not self._wanted(source, destination):
            return
        self._put((self._clock(), "datagram", 0, source, destination, data))

    def stream_open(self, key: object, client: Address, server: Address) -> None:
        if not self._wanted(client, server):
            return
        self._streams.add(id(key))
        self._put((self._clock(), "open", id(key), client, server, b""))

    def stream_data(self, key: object, sender: Address, data: bytes) -> None:
        if id(key) in self._streams:
            self._put((self._clock(), "data", id(key), sender, sender, data))

    def stream_close(self, key: object, closer: Address, *, reset: bool = False) -> None:
        if id(key) in self._streams:
            self._streams.discard(id(key))
            kind = "reset" if reset else "close"
            self._put((self._clock(), kind, id(key), closer, closer, b""))


class _Writer:
    """The thread that turns records into pcapng blocks and writes them."""

    def __init__(
        self,
        path: str,
        rotation: Rotation,
        queue: collections.deque[Record],
        counts: CaptureCounts,
    ) -> None:
        self.path = path
        self.rotation = rotation
        self.queue = queue
        self.counts = counts
        self.reopen = False
        self._conversations: dict[int, Conversation] = {}
        self._file: IO[bytes] | None = None
        self._opened_at = 0.0
        self._size = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._open()  # in the caller: an unwritable path fails at start, loudly

    def start(self, hold: threading.Event) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(hold,), name="pcap-writer", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close()

    def _run(self, hold: threading.Event) -> None:
        while not self._stopping.is_set():
            if hold.is_set():
                self._stopping.wait(POLL_SECONDS)
                continue
            if not self.queue:
                self._stopping.wait(POLL_SECONDS)
            self._flush()
        self._flush()

    def _flush(self) -> None:
        if self.reopen:
            self.reopen = False
            self._close()
            self._open_again()
        queue = self.queue
        for _ in range(min(len(queue), 4096)):
            record = queue.popleft()
            self._write(
                b"".join(pcapng.enhanced_packet(record[0], p) for p in self._packets(record))
            )
            self.counts.written += 1
            self._maybe_rotate()
        self._maybe_rotate()
        self._sync()

    def _packets(self, record: Record) -> list[bytes]:
        _, kind, key, first, second, payload = record
        if kind == "datagram":
            return [udp_packet(first, second, payload)]
        if kind == "open":
            isns = random.getrandbits(32), random.getrandbits(32)
            opened = self._conversations[key] = Conversation(first, second, *isns)
            return opened.open()
        conversation = self._conversations.get(key)
        if conversation is None:
            return []
        if kind == "data":
            return conversation.send(first, payload)
        del self._conversations[key]
        return conversation.reset(first) if kind == "reset" else conversation.close(first)

    def _write(self, data: bytes) -> None:
        if self._file is None:
            return
        try:
            self._file.write(data)
            self._size += len(data)
        except OSError as exc:
            self._failed(exc)

    def _sync(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        self.counts.write_errors += 1
        if self.counts.write_errors == 1 or self.counts.write_errors % 1000 == 0:
            log.warning(
                "capture %s: write failed (%d so far): %s", self.path, self.counts.write_errors, exc
            )

    def _maybe_rotate(self) -> None:
        size, seconds = self.rotation.size, self.rotation.seconds
        due = (size and self._size >= size) or (
            seconds and time.time() - self._opened_at >= seconds
        )
        if not due:
            return
        self._close()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        try:
            os.replace(self.path, f"{self.path}.{stamp}.{self.counts.files}")
        except OSError as exc:
            log.warning("capture %s: cannot rotate: %s", self.path, exc)
        self._open_again()

    def _open_again(self) -> None:
        try:
            self._open()
        except OSError as exc:  # records are counted as written but lost until the next reopen
            self._failed(exc)

    def _open(self) -> None:
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in _close, long-lived
        self._opened_at = time.time()
        self._size = 0
        self.counts.files += 1
        header = pcapng.section_header(APPLICATION) + pcapng.interface_description("cozen")
        self._write(header)  # connections going on continue in the new file, without SYN

    def _close(self) -> None:
        if self._file is None:
            return
        dropped = self.counts.dropped
        note = f"{APPLICATION}: {dropped} records dropped (writer queue full)"
        self._write(pcapng.interface_statistics(time.time(), dropped, note))
        try:
            self._file.close()
        except OSError as exc:
            log.warning("capture %s: close failed: %s", self.path, exc)
        self._file = None
