"""The UDP/TCP adapters and the listener set, on real loopback sockets, on both loops."""

from __future__ import annotations

import asyncio

import asyncio_dgram
import pytest

from responder.net.listeners import BindError, ListenerSet
from responder.net.tcp import TcpListener, bind_tcp
from responder.net.udp import UdpListener, bind_udp
from tests.helpers import run_on

HOST = "127.0.0.77"


class Upper:
    """A tiny stream session: upper-cases each line; 'bye' closes."""

    def __init__(self) -> None:
        self.closed = False

    def receive_data(self, data: bytes) -> bytes:
        if b"bye" in data:
            self.closed = True
            return b"BYE"
        if b"boom" in data:
            raise RuntimeError("session bug")
        return data.upper()


async def tcp_exchange(port: int, payload: bytes, expect: int) -> bytes:
    reader, writer = await asyncio.open_connection(HOST, port)
    writer.write(payload)
    data = await asyncio.wait_for(reader.readexactly(expect), 5)
    writer.close()
    return data


def test_udp_listener_answers_and_survives_handler_bug(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        def handler(data: bytes, source: tuple[str, int]) -> bytes | None:
            if data == b"bug":
                raise RuntimeError("handler bug")
            return None if data == b"quiet" else data[::-1]

        listener = UdpListener(loop, bind_udp(HOST, 0), handler)
        client = await asyncio_dgram.connect(listener.local_address)
        try:
            for payload in (b"bug", b"quiet", b"abc"):
                await client.send(payload)
            data, _ = await asyncio.wait_for(client.recv(), 5)
            assert data == b"cba"
            assert listener.counters.handler_bugs == 1
            assert listener.counters.received == 3
            assert listener.counters.answered == 1
        finally:
            client.close()
            listener.close()

    run_on(loop_kind, scenario)


def test_tcp_listener_session_replies_and_closes(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = TcpListener(
            loop, bind_tcp(HOST, 0), lambda peer, local: Upper(), max_connections=4, idle_timeout=5
        )
        await listener.start()
        port = listener.local_address[1]
        try:
            assert await tcp_exchange(port, b"hello", 5) == b"HELLO"
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"bye")
            assert await asyncio.wait_for(reader.read(), 5) == b"BYE"  # then EOF
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"boom")
            assert await asyncio.wait_for(reader.read(), 5) == b""  # a bug closes, no crash
            writer.close()
            assert await tcp_exchange(port, b"again", 5) == b"AGAIN"
        finally:
            await listener.close()

    run_on(loop_kind, scenario)


def test_tcp_idle_connections_time_out(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = TcpListener(
            loop,
            bind_tcp(HOST, 0),
            lambda peer, local: Upper(),
            max_connections=4,
            idle_timeout=0.2,
        )
        await listener.start()
        try:
            reader, writer = await asyncio.open_connection(HOST, listener.local_address[1])
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            assert not listener.connections
        finally:
            await listener.close()

    run_on(loop_kind, scenario)


def test_tcp_flood_of_idle_connections_does_not_lock_out_new_clients(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = TcpListener(
            loop, bind_tcp(HOST, 0), lambda peer, local: Upper(), max_connections=8, idle_timeout=30
        )
        await listener.start()
        port = listener.local_address[1]
        idle = [await asyncio.open_connection(HOST, port) for _ in range(20)]
        try:
            assert await tcp_exchange(port, b"fresh", 5) == b"FRESH"
            assert len(listener.connections) <= 8
            assert listener.evicted >= 12
        finally:
            for _, writer in idle:
                writer.close()
            await listener.close()

    run_on(loop_kind, scenario)


def test_listener_set_bind_failure_changes_nothing(loop_kind):
    async def scenario() -> None:
        loop = asyncio.get_running_loop()

        async def open_one(endpoint: tuple[str, int]) -> UdpListener:
            try:
                return UdpListener(loop, bind_udp(*endpoint), lambda d, s: None)
            except OSError as exc:
                raise BindError("test", *endpoint, exc) from None

        async def close_one(listener: UdpListener) -> None:
            listener.close()

        blocker = bind_udp("127.0.0.79", 5300)
        listeners: ListenerSet[tuple[str, int], UdpListener] = ListenerSet(open_one, close_one)
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
