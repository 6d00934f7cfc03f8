"""UdpListener on real loopback sockets, on both loops."""

from __future__ import annotations

import asyncio

import asyncio_dgram

from responder.net.udp import UdpListener, bind_udp
from tests.helpers import run_on

HOST = "127.0.0.77"


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
            await listener.close()

    run_on(loop_kind, scenario)
