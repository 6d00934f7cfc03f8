"""UDP listener: a non-blocking socket drained from a loop reader callback.

We create and configure the socket ourselves (large receive buffer, broadcast
when asked) and hand it to the loop with ``add_reader`` instead of a datagram
transport: measured here, a socket drained until empty from the reader
callback costs a fraction of the stock transport per packet on both asyncio and
uvloop, and it never queues replies in user space (a full send buffer drops
the reply, as UDP would).

The handler is one plain call per datagram: ``handler(data, source) -> bytes |
None``. It must not raise; if it does anyway (a bug), the error is logged and
counted, and the listener keeps serving.

Repeats. A service may also give a ``repeats`` callable returning its table
of exact repeats (``datagram[2:] -> reply[2:]``, filled by its own fast path,
or None). When the compiled module ``responder.net._udploop`` is built (it is,
wherever a C compiler was present at install), the drain loop runs in C and
answers a datagram found in that table without entering Python at all; any
other datagram goes to ``handler`` as usual. The pure Python loop below is
the reference and the fallback; ``COZEN_PURE_PYTHON=1`` in the environment
selects it.

Guard. A service may also give a ``guard`` callable returning its
:class:`~responder.net.guard.ListenerGuard` (or None). Both loops then drop
a datagram from a reflection source before the handler or the repeats see
it, and pass every answer through the service's rate limiter, which may
drop it or replace it by its truncated form (protocols/ratelimit.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from protocols.repeats import Repeats
from responder.net import tap as _tap
from responder.net.freebind import set_freebind
from responder.net.guard import ListenerGuard, packed_address
from responder.net.ttl import set_ip_ttl

try:
    from responder.net import _udploop
except ImportError:  # built without a C compiler: the Python loop serves alone
    _udploop = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

Address = tuple[str, int]
DatagramHandler = Callable[[bytes, Address], bytes | None]
RepeatSource = Callable[[], Repeats | None]
GuardSource = Callable[[], ListenerGuard | None]

COMPILED_AVAILABLE = _udploop is not None
COMPILED_DEFAULT = COMPILED_AVAILABLE and os.environ.get("COZEN_PURE_PYTHON", "") in ("", "0")


def udp_loop_name() -> str:
    """Which drain loop new listeners run: "compiled" or "python" (for logs and /status)."""
    return "compiled" if COMPILED_DEFAULT else "python"


RECEIVE_BUFFER = 4 * 1024 * 1024  # rides out a few-ms stall at 100k qps
MAX_DATAGRAM = 65535
DRAIN_LIMIT = 256  # datagrams per wake-up, so one busy socket cannot starve the loop
NO_COUNTS = (0, 0, 0, 0, 0)  # compiled loop: received, answered, dropped, errno, repeated


@dataclass(slots=True)
class Counters:
    received: int = 0
    answered: int = 0
    dropped_send: int = 0  # replies the kernel refused; compiled loop: also datagrams lost
    handler_bugs: int = 0
    repeats_answered: int = 0  # of answered: by the compiled loop from ``repeats``, no Python


def bind_udp(
    host: str,
    port: int,
    *,
    broadcast: bool = False,
    reuse_addr: bool = False,
    reuse_port: bool = False,
    freebind: bool = False,
    ip_ttl: int | None = None,
) -> socket.socket:
    """Create a non-blocking UDP socket bound to ``(host, port)``.

    ``ip_ttl`` sets the TTL / hop limit of what it sends (:mod:`responder.net.ttl`).

    ``freebind`` binds even while ``host`` is on no interface (see
    :mod:`responder.net.freebind`).

    ``reuse_addr`` is off by default: on Linux it lets two UDP sockets share a
    port silently, and a second daemon must fail to bind instead. Sockets that
    must coexist with a wildcard or broadcast bind (NBNS) ask for it.

    Raises:
        OSError: the address cannot be bound (in use, not local, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if broadcast:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        if freebind:
            set_freebind(sock)
        if ip_ttl is not None:
            set_ip_ttl(sock, ip_ttl)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.setblocking(False)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


class UdpListener:
    """Serves ``handler`` on one bound socket until :meth:`close`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        handler: DatagramHandler,
        *,
        repeats: RepeatSource | None = None,
        guard: GuardSource | None = None,
        compiled: bool | None = None,
    ) -> None:
        """``compiled``: run the compiled loop; None means when built and not switched off.

        Raises:
            ValueError: ``compiled`` is True but the compiled module is not built.
        """
        if compiled and not COMPILED_AVAILABLE:
            raise ValueError("the compiled UDP loop (responder.net._udploop) is not built")
        self.loop = loop
        self.sock = sock
        self.handler = handler
        self.repeats = repeats
        self.guard = guard
        self.compiled = COMPILED_DEFAULT if compiled is None else compiled
        self.counters = Counters()
        self.local_address: Address = sock.getsockname()[:2]
        self._fd = sock.fileno()
        self._counts = array("q", NO_COUNTS)  # the compiled loop overwrites all five each call
        loop.add_reader(self._fd, self._drain_compiled if self.compiled else self._drain)

    def _drain_compiled(self) -> None:
        # Recording: every answer through Python, so none is sent unseen (responder/net/tap.py).
        if _tap.current is not None:
            self._drain()
            return
        repeats = None if self.repeats is None else self.repeats()
        # drain fills ``counts`` even when it raises (out of memory at the end), so
        # this wake-up's counts are never lost; the exception then goes to the loop,
        # as it would from the Python loop.
        guard = None if self.guard is None else self.guard()
        tables = () if guard is None else (guard.compiled(),)
        counts = self._counts
        try:
            failures, errors = _udploop.drain(
                self._fd, repeats, self.handler, DRAIN_LIMIT, counts, *tables
            )
        finally:
            received, answered, dropped, recv_errno, repeated = counts
            counters = self.counters
            counters.received += received
            counters.answered += answered
            counters.dropped_send += dropped
            counters.repeats_answered += repeated
        for data, error in failures or ():
            self._handler_failed(data, error)
        for error in errors or ():  # each lost one datagram, counted as dropped
            log.warning("udp %s: datagram lost: %s", self.local_address, error, exc_info=error)
        if recv_errno:  # logged as the Python loop logs the same OSError
            exc = OSError(recv_errno, os.strerror(recv_errno))
            log.debug("udp %s: receive error %s", self.local_address, exc)
        if guard is not None:
            guard.log_changes(self.loop.time())

    def _drain(self) -> None:
        guard = None if self.guard is None else self.guard()
        tap = _tap.current
        if guard is None and tap is None:
            self._drain_plain()
            return
        self._drain_checked(guard, tap)
        if guard is not None:
            guard.log_changes(self.loop.time())

    def _drain_plain(self) -> None:
        # The reference loop: locals only, counters written back once per wake-up.
        # Python cannot use ``repeats`` faster than the handler's own fast path does.
        recvfrom, sendto, handler = self.sock.recvfrom, self.sock.sendto, self.handler
        received = answered = dropped = 0
        try:
            for _ in range(DRAIN_LIMIT):
                try:
                    data, source = recvfrom(MAX_DATAGRAM)
                except (BlockingIOError, InterruptedError):
                    return
                except OSError as exc:  # e.g. ICMP errors reported on the socket
                    log.debug("udp %s: receive error %s", self.local_address, exc)
                    return
                received += 1
                try:
                    reply = handler(data, source)
                except Exception as exc:
                    self._handler_failed(data, exc)
                    continue
                if reply is not None:
                    try:
                        sendto(reply, source)
                        answered += 1
                    except OSError:
                        dropped += 1
        finally:
            counters = self.counters
            counters.received += received
            counters.answered += answered
            counters.dropped_send += dropped

    def _drain_checked(self, guard: ListenerGuard | None, tap: _tap.Tap | None) -> None:
        # The reference loop with the guard (sources checked before the handler, every
        # answer through the limiter) and/or the tap (what came in and went out, reported).
        recvfrom, handler, counters = self.sock.recvfrom, self.handler, self.counters
        table = None if guard is None else guard.python()
        local = self.local_address
        for _ in range(DRAIN_LIMIT):
            try:
                data, source = recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.debug("udp %s: receive error %s", local, exc)
                return
            counters.received += 1
            if tap is not None:
                tap.datagram(source[:2], local, data)
            packed = packed_address(source[0])
            if table is not None and table.check_source(packed, source[1]):
                continue
            try:
                reply = handler(data, source)
            except Exception as exc:
                self._handler_failed(data, exc)
                continue
            if reply is not None and guard is not None and table is not None and table.limiting:
                reply = guard.limit(table, data, packed, reply)
            if reply is None:
                continue
            try:
                self.sock.sendto(reply, source)
            except OSError:
                counters.dropped_send += 1
                continue
            counters.answered += 1
            if tap is not None:
                tap.datagram(local, source[:2], reply)

    def _handler_failed(self, data: bytes, error: BaseException) -> None:
        self.counters.handler_bugs += 1
        log.error(
            "udp %s: handler failed on %d bytes", self.local_address, len(data), exc_info=error
        )

    def sendto(self, data: bytes, destination: Address) -> bool:
        """Send an unsolicited datagram (registrations); False if it was dropped."""
        try:
            self.sock.sendto(data, destination)
        except OSError as exc:
            log.debug("udp %s: send to %s failed: %s", self.local_address, destination, exc)
            return False
        if _tap.current is not None:
            _tap.current.datagram(self.local_address, destination, data)
        return True

    async def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.loop.remove_reader(self._fd)
            self.sock.close()
