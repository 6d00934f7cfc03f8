"""Opening listeners, and keeping a set of them in step with the config.

Each service (DNS, NBNS, SMB, health) wants one listener per endpoint. It
opens one with :func:`open_udp` or :func:`open_tcp`, which bind, start, and
turn any bind failure into a :class:`BindError` naming the protocol, the
address and the reason. On start and on every reload the service hands the
endpoints it wants to :meth:`ListenerSet.update`, which opens the missing ones
first and closes the stale ones only after every new one is bound. If any
bind fails, the ones just opened are closed again and the error propagates:
the old set keeps serving untouched, which is what makes a reload atomic.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Hashable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from responder.net.tcp import SessionFactory, TcpLimits, TcpListener, bind_tcp
from responder.net.ttl import set_ip_ttl
from responder.net.udp import DatagramHandler, GuardSource, RepeatSource, UdpListener, bind_udp


class Listener(Protocol):
    sock: socket.socket

    async def close(self) -> None: ...


# Listeners opened between two turns of the event loop: 1,000 nodes mean 2,000 SMB
# listeners, ~80 ms of socket calls that would otherwise hold back every answer.
OPEN_BATCH = 64

K = TypeVar("K", bound=Hashable)
L = TypeVar("L", bound=Listener)


class ListenerSet(Generic[K, L]):
    def __init__(self, open_one: Callable[[K], Awaitable[L]]) -> None:
        self._open_one = open_one
        self.active: dict[K, L] = {}
        self._ip_ttl: int | None = None  # what set_ip_ttl last gave every listener

    async def update(self, wanted: Iterable[K]) -> None:
        """Make the active set equal ``wanted``.

        Raises:
            OSError: a new listener could not be bound; nothing was changed.
        """
        wanted_keys = list(dict.fromkeys(wanted))
        opened: dict[K, L] = {}
        try:
            for key in wanted_keys:
                if key not in self.active:
                    opened[key] = await self._open_one(key)
                    if len(opened) % OPEN_BATCH == 0:
                        await asyncio.sleep(0)  # let the services already serving answer
        except BaseException:
            for listener in opened.values():
                await listener.close()
            raise
        keep = set(wanted_keys)  # once: a set per key made a 1,000-node reload quadratic
        stale = [key for key in self.active if key not in keep]
        self.active.update(opened)
        for key in stale:
            await self.active.pop(key).close()

    async def close(self) -> None:
        await self.update(())

    def set_ip_ttl(self, ttl: int) -> None:
        """Give every active listener's socket ``ttl`` (a reload of ``[daemon] ip_ttl``).

        Listeners are opened with the TTL in force (``open_udp``/``open_tcp``), so only a
        changed TTL touches the sockets: a reload of 1,000 nodes keeps 3,000 of them.
        Connections already accepted keep theirs; new ones inherit the listener's.

        Raises:
            OSError: the kernel refused the value.
        """
        if ttl == self._ip_ttl:
            return
        for listener in self.active.values():
            set_ip_ttl(listener.sock, ttl)
        self._ip_ttl = ttl


class BindError(OSError):
    """A listener could not be bound; the message names protocol, address and reason."""

    def __init__(self, what: str, host: str, port: int, exc: OSError) -> None:
        super().__init__(f"{what}: cannot bind {host}:{port}: {exc.strerror or exc}")


async def open_udp(
    loop: asyncio.AbstractEventLoop,
    what: str,
    endpoint: tuple[str, int],
    handler: DatagramHandler,
    *,
    repeats: RepeatSource | None = None,
    guard: GuardSource | None = None,
    broadcast: bool = False,
    reuse_addr: bool = False,
    reuse_port: bool = False,
    freebind: bool = False,
    ip_ttl: int | None = None,
) -> UdpListener:
    """Bind ``endpoint`` and serve ``handler`` on it; ``what`` names it in errors.

    Raises:
        BindError: the address cannot be bound.
    """
    try:
        sock = bind_udp(
            *endpoint,
            broadcast=broadcast,
            reuse_addr=reuse_addr,
            reuse_port=reuse_port,
            freebind=freebind,
            ip_ttl=ip_ttl,
        )
    except OSError as exc:
        raise BindError(what, *endpoint, exc) from None
    return UdpListener(loop, sock, handler, repeats=repeats, guard=guard)


async def open_tcp(
    loop: asyncio.AbstractEventLoop,
    what: str,
    endpoint: tuple[str, int],
    factory: SessionFactory,
    limits: Callable[[], TcpLimits],
    *,
    reuse_port: bool = False,
    freebind: bool = False,
    ip_ttl: int | None = None,
) -> TcpListener:
    """Bind ``endpoint``, listen, and run a ``factory`` session per connection.

    Raises:
        BindError: the address cannot be bound.
    """
    try:
        sock = bind_tcp(*endpoint, reuse_port=reuse_port, freebind=freebind, ip_ttl=ip_ttl)
    except OSError as exc:
        raise BindError(what, *endpoint, exc) from None
    listener = TcpListener(loop, sock, factory, limits)
    await listener.start()
    return listener


async def update_together(*changes: tuple[ListenerSet[Any, Any], Iterable[Hashable]]) -> None:
    """Update several listener sets as one: all of them, or (on a failed bind) none.

    Raises:
        BindError: a new address could not be bound; every set is as it was.
    """
    done: list[tuple[ListenerSet[Any, Any], list[Hashable]]] = []
    try:
        for listeners, wanted in changes:
            previous = list(listeners.active)
            await listeners.update(wanted)
            done.append((listeners, previous))
    except BindError:
        for listeners, previous in reversed(done):
            await listeners.update(previous)
        raise
