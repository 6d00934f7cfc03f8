"""TCP listener: one sans-IO session per connection, with limits.

Each connection owns a session object from ``protocols/`` whose
``receive_data(bytes) -> bytes`` returns what to send and whose ``closed``
says the connection must end after that. This module adds only what a
network server needs around it:

* a cap on concurrent connections per listener; when it is reached, the
  connection idle the longest is closed to make room, so a flood of idle or
  half-sent connections never locks out a new client;
* an idle timeout (no bytes received for ``idle_timeout`` seconds: close);
* back-pressure: while the peer does not read our replies, we stop reading
  its requests, so a pipelining client cannot grow our buffers without bound;
* a turn per batch: a session may answer only part of what it holds per
  call (protocols/dns/stream.py, protocols/smb/session.py) and say so with a
  true ``pending``. We then stop reading and call ``receive_data(b"")`` again
  on a later turn of the loop, so one segment of thousands of tiny messages
  never holds the loop for longer than one batch.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from responder.net import tap as _tap
from responder.net.freebind import set_freebind
from responder.net.ttl import set_ip_ttl

log = logging.getLogger(__name__)

Address = tuple[str, int]


class StreamSession(Protocol):
    @property
    def closed(self) -> bool: ...

    def receive_data(self, data: bytes) -> bytes: ...


SessionFactory = Callable[[Address, Address], StreamSession]


@dataclass(frozen=True, slots=True)
class TcpLimits:
    """Per-listener limits; a listener reads its service's current ones at each use."""

    max_connections: int
    idle_timeout: float  # seconds without received bytes


def bind_tcp(
    host: str,
    port: int,
    *,
    backlog: int = 512,
    reuse_port: bool = False,
    freebind: bool = False,
    ip_ttl: int | None = None,
) -> socket.socket:
    """Create a listening, non-blocking TCP socket on ``(host, port)``.

    ``reuse_port`` lets the worker processes of one daemon share the port;
    ``freebind`` binds even while ``host`` is on no interface; ``ip_ttl`` sets
    the TTL / hop limit of the listener and its connections.

    Raises:
        OSError: the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if freebind:
            set_freebind(sock)
        if ip_ttl is not None:
            set_ip_ttl(sock, ip_ttl)
        sock.setblocking(False)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


class TcpListener:
    """Accepts connections on ``sock`` and runs a session for each."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        factory: SessionFactory,
        limits: Callable[[], TcpLimits],
    ) -> None:
        """``limits`` is read whenever a limit applies, so a reload changes them at once."""
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.limits = limits
        self.local_address: Address = sock.getsockname()[:2]
        self.connections: dict[_Connection, None] = {}  # insertion-ordered set
        self.evicted = 0
        self.accepted = 0  # connections admitted since the listener opened
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await self.loop.create_server(lambda: _Connection(self), sock=self.sock)

    def admit(self, connection: _Connection) -> None:
        self.accepted += 1
        while len(self.connections) >= self.limits().max_connections:
            oldest = min(self.connections, key=lambda c: c.last_activity)
            self.evicted += 1
            oldest.close(abort=True)
        self.connections[connection] = None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None


class _Connection(asyncio.Protocol):
    def __init__(self, listener: TcpListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.session: StreamSession | None = None
        self.last_activity = listener.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.more: asyncio.Handle | None = None  # the next batch of a session's backlog
        self.reading = True
        self.write_paused = False
        self.tap: _tap.Tap | None = None  # set while recording (responder/net/tap.py)
        self.peer: Address = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(high=256 * 1024)
        peername = transport.get_extra_info("peername")
        if peername is None:  # reset while it waited to be accepted: nobody to answer
            transport.abort()
            return
        peer = self.peer = peername[:2]
        self.tap = _tap.current
        if self.tap is not None:
            self.tap.stream_open(self, peer, self.listener.local_address)
        self.listener.admit(self)
        self.session = self.listener.factory(peer, self.listener.local_address)
        self._arm_timer(self.listener.limits().idle_timeout)

    def data_received(self, data: bytes) -> None:
        self.last_activity = self.listener.loop.time()
        if self.tap is not None:
            self.tap.stream_data(self, self.peer, data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        assert self.transport is not None and self.session is not None
        try:
            reply = self.session.receive_data(data)
        except Exception:
            log.exception("tcp %s: session failed; closing", self.listener.local_address)
            self.close()
            return
        if reply:
            self.transport.write(reply)
            if self.tap is not None:
                self.tap.stream_data(self, self.listener.local_address, reply)
        if self.session.closed:
            self.close()
        else:
            self._settle()

    def _continue(self) -> None:
        self.more = None
        if self.transport is not None and not self.transport.is_closing():
            self._feed(b"")

    def _settle(self) -> None:
        """Read while the peer reads our replies and no backlog waits; schedule the backlog."""
        backlog = bool(getattr(self.session, "pending", False))
        self._set_reading(not (backlog or self.write_paused))
        if backlog and not self.write_paused and self.more is None:
            self.more = self.listener.loop.call_soon(self._continue)

    def _set_reading(self, on: bool) -> None:
        transport = self.transport
        if on == self.reading or transport is None or transport.is_closing():
            return
        self.reading = on
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()

    def pause_writing(self) -> None:
        self.write_paused = True
        self._settle()

    def resume_writing(self) -> None:
        self.write_paused = False
        self._settle()

    def _arm_timer(self, delay: float) -> None:
        self.timer = self.listener.loop.call_later(delay, self._check_idle)

    def _check_idle(self) -> None:
        idle_for = self.listener.loop.time() - self.last_activity
        idle_timeout = self.listener.limits().idle_timeout
        if idle_for >= idle_timeout:
            self.close(abort=True)
        else:
            self._arm_timer(idle_timeout - idle_for)

    def close(self, *, abort: bool = False) -> None:
        """End the connection: flush what is queued, or with ``abort`` drop it."""
        if self.transport is not None and not self.transport.is_closing():
            if abort:  # the peer may never read: do not wait on its window
                self.transport.abort()
            else:
                self.transport.close()
        self._forget(self.listener.local_address)  # abort() too closes with FIN, not RST

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget(self.peer, reset=isinstance(exc, ConnectionResetError))

    def _forget(self, closer: Address, *, reset: bool = False) -> None:
        if self.tap is not None:
            self.tap.stream_close(self, closer, reset=reset)
            self.tap = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.more is not None:
            self.more.cancel()
            self.more = None
        self.listener.connections.pop(self, None)
