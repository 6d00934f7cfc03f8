"""TcpListener on real loopback sockets, on both loops: sessions, limits, eviction."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Callable

from responder.net.tcp import TcpLimits, TcpListener, bind_tcp
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


def limits(max_connections: int, idle_timeout: float) -> Callable[[], TcpLimits]:
    fixed = TcpLimits(max_connections, idle_timeout)
    return lambda: fixed


@contextlib.asynccontextmanager
async def upper_listener(max_connections: int, idle_timeout: float) -> AsyncIterator[TcpListener]:
    """A started listener on HOST (any port) serving :class:`Upper`; closed on the way out."""
    loop = asyncio.get_running_loop()
    factory = lambda peer, local: Upper()  # noqa: E731
    listener = TcpListener(loop, bind_tcp(HOST, 0), factory, limits(max_connections, idle_timeout))
    await listener.start()
    try:
        yield listener
    finally:
        await listener.close()


def test_tcp_listener_session_replies_and_closes(loop_kind):
    async def scenario() -> None:
        async with upper_listener(4, 5) as listener:
            port = listener.local_address[1]
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

    run_on(loop_kind, scenario)


def test_tcp_idle_connections_time_out(loop_kind):
    async def scenario() -> None:
        async with upper_listener(4, 0.2) as listener:
            reader, writer = await asyncio.open_connection(HOST, listener.local_address[1])
            assert await asyncio.wait_for(reader.read(), 3) == b""
            writer.close()
            assert not listener.connections

    run_on(loop_kind, scenario)


def test_tcp_flood_of_idle_connections_does_not_lock_out_new_clients(loop_kind):
    async def scenario() -> None:
        async with upper_listener(8, 30) as listener:
            port = listener.local_address[1]
            idle = [await asyncio.open_connection(HOST, port) for _ in range(20)]
            try:
                assert await tcp_exchange(port, b"fresh", 5) == b"FRESH"
                assert len(listener.connections) <= 8
                assert listener.evicted >= 12
            finally:
                for _, writer in idle:
                    writer.close()

    run_on(loop_kind, scenario)


def test_tcp_limits_are_read_live(loop_kind):
    """A reload changes the limits of listeners that stay open (no patching of each one)."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        current = [TcpLimits(8, 30)]
        listener = TcpListener(
            loop, bind_tcp(HOST, 0), lambda peer, local: Upper(), lambda: current[0]
        )
        await listener.start()
        port = listener.local_address[1]
        idle = [await asyncio.open_connection(HOST, port) for _ in range(4)]
        try:
            assert await tcp_exchange(port, b"one", 3) == b"ONE"
            assert listener.evicted == 0
            current[0] = TcpLimits(2, 30)
            assert await tcp_exchange(port, b"two", 3) == b"TWO"
            assert listener.evicted >= 2
        finally:
            for _, writer in idle:
                writer.close()
            await listener.close()

    run_on(loop_kind, scenario)


class OneAtATime:
    """A session that answers one byte per call and says when more wait (``pending``)."""

    def __init__(self) -> None:
        self.closed = False
        self.buffer = b""
        self.calls: list[bytes] = []

    @property
    def pending(self) -> bool:
        return bool(self.buffer)

    def receive_data(self, data: bytes) -> bytes:
        self.calls.append(data)
        self.buffer += data
        head, self.buffer = self.buffer[:1], self.buffer[1:]
        return head.upper()


def test_a_session_backlog_is_answered_one_batch_per_turn(loop_kind):
    sessions: list[OneAtATime] = []

    def factory(peer, local):
        sessions.append(OneAtATime())
        return sessions[-1]

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = TcpListener(loop, bind_tcp(HOST, 0), factory, limits(4, 5))
        await listener.start()
        port = listener.local_address[1]
        try:
            payload = bytes(range(97, 123)) * 40  # 1,040 messages in one segment
            assert await tcp_exchange(port, payload, len(payload)) == payload.upper()
            [session] = sessions
            # one answer per call: the segments' calls, and continuations for the rest
            assert len(session.calls) == len(payload)
            assert b"".join(session.calls) == payload
            assert session.calls.count(b"") > len(payload) // 2
        finally:
            await listener.close()

    run_on(loop_kind, scenario)


def test_a_connection_reset_before_it_is_accepted_is_dropped_quietly(loop_kind, caplog):
    """Its peer name is gone by connection_made: no traceback, no leftover, serving goes on."""

    async def scenario() -> None:
        async with upper_listener(4, 5) as listener:
            port = listener.local_address[1]
            # connected and reset before the loop runs again: it waits in the accept queue
            client = socket.create_connection((HOST, port))
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            assert await tcp_exchange(port, b"next", 4) == b"NEXT"
            for _ in range(200):  # the standard loop accepts it, then reads the reset: gone too
                if not listener.connections:
                    break
                await asyncio.sleep(0.01)
            assert listener.connections == {}

    caplog.set_level("ERROR")
    run_on(loop_kind, scenario)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
