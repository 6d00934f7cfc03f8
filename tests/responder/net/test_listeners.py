"""Opening listeners and keeping sets of them in step: bind new first, roll back on failure."""

from __future__ import annotations

import asyncio
import socket

import pytest

from responder.net.listeners import (
    OPEN_BATCH,
    BindError,
    ListenerSet,
    open_tcp,
    open_udp,
    update_together,
)
from responder.net.tcp import TcpLimits
from responder.net.udp import UdpListener, bind_udp
from tests.helpers import run_on

LIMITS = TcpLimits(4, 5)


class Closed:
    """A session that ends every connection at once."""

    closed = True

    def __init__(self, peer: tuple[str, int], local: tuple[str, int]) -> None:
        pass

    def receive_data(self, data: bytes) -> bytes:
        return b""


async def open_test_udp(endpoint: tuple[str, int]) -> UdpListener:
    return await open_udp(asyncio.get_running_loop(), "test", endpoint, lambda d, s: None)


def test_listener_set_bind_failure_changes_nothing(loop_kind):
    async def scenario() -> None:
        blocker = bind_udp("127.0.0.79", 5300)
        listeners: ListenerSet[tuple[str, int], UdpListener] = ListenerSet(open_test_udp)
        try:
            await listeners.update([("127.0.0.78", 5300)])
            before = dict(listeners.active)
            with pytest.raises(BindError, match=r"127\.0\.0\.79:5300"):
                await listeners.update([("127.0.0.80", 5300), ("127.0.0.79", 5300)])
            assert listeners.active == before
            # the half-opened 127.0.0.80 was released again
            bind_udp("127.0.0.80", 5300).close()
            await listeners.update([("127.0.0.81", 5300)])
            assert list(listeners.active) == [("127.0.0.81", 5300)]
        finally:
            blocker.close()
            await listeners.close()

    run_on(loop_kind, scenario)


def test_open_names_protocol_address_and_reason(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        # 198.18.0.250 is on no interface of the suite's namespace: the bind itself fails
        with pytest.raises(BindError, match=r"^dns/udp: cannot bind 198\.18\.0\.250:53: "):
            await open_udp(loop, "dns/udp", ("198.18.0.250", 53), lambda d, s: None)
        held = await open_tcp(loop, "smb/tcp", ("127.0.0.82", 0), Closed, lambda: LIMITS)
        try:
            port = held.local_address[1]
            with pytest.raises(BindError, match=rf"^nbss/tcp: cannot bind 127\.0\.0\.82:{port}: "):
                await open_tcp(loop, "nbss/tcp", ("127.0.0.82", port), Closed, lambda: LIMITS)
        finally:
            await held.close()

    run_on(loop_kind, scenario)


def test_update_together_is_all_or_nothing(loop_kind):
    async def scenario() -> None:
        first: ListenerSet[tuple[str, int], UdpListener] = ListenerSet(open_test_udp)
        second: ListenerSet[tuple[str, int], UdpListener] = ListenerSet(open_test_udp)
        blocker = bind_udp("127.0.0.85", 5300)
        try:
            await update_together((first, [("127.0.0.83", 5300)]), (second, []))
            with pytest.raises(BindError):
                await update_together(
                    (first, [("127.0.0.84", 5300)]), (second, [("127.0.0.85", 5300)])
                )
            # the first set went back to what it had, and 127.0.0.84 is free again
            assert list(first.active) == [("127.0.0.83", 5300)]
            assert second.active == {}
            bind_udp("127.0.0.84", 5300).close()
        finally:
            blocker.close()
            await first.close()
            await second.close()

    run_on(loop_kind, scenario)


def test_a_large_update_lets_the_loop_serve_between_batches(loop_kind):
    """Opening 1,000 nodes' listeners must not hold back answers already being served."""

    class Fake:
        sock = None

        async def close(self) -> None:
            pass

    async def scenario() -> None:
        opened = 0
        seen_while_opening: list[int] = []

        async def open_fake(key: int) -> Fake:
            nonlocal opened
            opened += 1  # no await here: only the set itself may hand the loop over
            return Fake()

        async def other_service() -> None:
            while opened < count:
                seen_while_opening.append(opened)
                await asyncio.sleep(0)

        count = 3 * OPEN_BATCH
        listeners: ListenerSet[int, Fake] = ListenerSet(open_fake)
        other = asyncio.ensure_future(other_service())
        await asyncio.sleep(0)
        await listeners.update(range(count))
        await other
        assert len(listeners.active) == count
        # the other task ran between batches, never in the middle of one
        assert [n for n in seen_while_opening if 0 < n < count] == [OPEN_BATCH, 2 * OPEN_BATCH]

    run_on(loop_kind, scenario)


def test_only_a_changed_ttl_touches_the_sockets(loop_kind):
    """A reload keeping [daemon] ip_ttl must not make a system call per kept socket."""

    def ttl_of(listener: UdpListener) -> int:
        return listener.sock.getsockopt(socket.IPPROTO_IP, socket.IP_TTL)

    async def open_with_ttl(endpoint: tuple[str, int]) -> UdpListener:
        loop = asyncio.get_running_loop()
        return await open_udp(loop, "test", endpoint, lambda d, s: None, ip_ttl=77)

    async def scenario() -> None:
        listeners: ListenerSet[tuple[str, int], UdpListener] = ListenerSet(open_with_ttl)
        try:
            await listeners.update([("127.0.0.86", 0)])
            listeners.set_ip_ttl(77)
            kept = listeners.active[("127.0.0.86", 0)]
            kept.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 5)  # a marker, left alone
            await listeners.update([("127.0.0.86", 0), ("127.0.0.87", 0)])
            listeners.set_ip_ttl(77)
            assert ttl_of(kept) == 5  # untouched
            assert ttl_of(listeners.active[("127.0.0.87", 0)]) == 77  # opened with it
            listeners.set_ip_ttl(64)  # a changed TTL reaches every socket
            assert [ttl_of(x) for x in listeners.active.values()] == [64, 64]
        finally:
            await listeners.close()

    run_on(loop_kind, scenario)
